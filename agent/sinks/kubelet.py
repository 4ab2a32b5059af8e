"""The discovered kubelet, rendered: lines above ``check``'s table, the JSON ``kubelet``
object and ``discover``'s output. Pure: no I/O, no clock.

JSON shape (schema version 1, additive): ``kubelet`` maps each setting's kubelet name
to ``{"value": …, "source": "…"}``; ``kubelet_found`` and ``kubelet_problems`` sit
beside it.
"""

from __future__ import annotations

from typing import Any

from agent.kubelet import iso
from agent.model import KubeletSettings, Sourced

LABELS = {
    "certDir": "cert dir", "nodeName": "node name", "config": "config",
    "configDir": "config dir", "kubeconfig": "kubeconfig",
    "bootstrapKubeconfig": "bootstrap kubeconfig", "rotateCertificates": "rotateCertificates",
    "serverTLSBootstrap": "serverTLSBootstrap",
    "RotateKubeletServerCertificate": "gate RotateKubeletServerCertificate",
    "tlsCertFile": "tlsCertFile", "tlsPrivateKeyFile": "tlsPrivateKeyFile",
    "clientCAFile": "clientCAFile", "address": "address", "port": "port",
}


def _process(k: KubeletSettings) -> dict[str, Sourced[object]]:
    proc = f"{k.host_root.rstrip('/')}/proc" if k.host_root != "/" else "/proc"
    where = f"{proc}/{k.pid}" if k.pid is not None else "discovery"
    return {
        "pid": Sourced(k.pid, where),
        "startedAt": Sourced(iso(k.started_at) if k.started_at else None, f"{where}/stat"),
        "binary": Sourced(k.binary, f"{where}/cmdline" if k.pid is not None else
                          (k.unit or "discovery")),
        "unit": Sourced(k.unit, "systemd search paths"),
        "hostRoot": Sourced(k.host_root, "agent flag --host-root"),
    }


def settings(k: KubeletSettings) -> dict[str, Sourced[object]]:
    """The process facts, then every setting, in a stable order."""
    return {**_process(k), **k.settings()}


def _text(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_lines(k: KubeletSettings) -> list[str]:
    """``KUBELET …`` then one ``  <setting> <value> (<source>)`` line each, then notes."""
    lines = [f"KUBELET {k.describe()}"]
    if k.started_at is not None:
        lines[0] += f", started {iso(k.started_at)}"
    width = max(len(v) for v in LABELS.values())
    for name, s in k.settings().items():
        lines.append(f"  {LABELS[name]:<{width}}  {_text(s.value)} ({s.source})")
    lines += [f"  note: {p}" for p in k.problems]
    return lines


def kubelet_to_dict(k: KubeletSettings | None) -> dict[str, Any] | None:
    """The JSON ``kubelet`` object: ``{setting: {value, source}}`` (null: not discovered)."""
    if k is None:
        return None
    return {name: {"value": s.value, "source": s.source} for name, s in settings(k).items()}


def status_fields(k: KubeletSettings | None) -> dict[str, Any]:
    """``kubelet``, ``kubelet_found`` and ``kubelet_problems`` for the JSON status."""
    return {"kubelet": kubelet_to_dict(k),
            "kubelet_found": None if k is None else k.found,
            "kubelet_problems": [] if k is None else list(k.problems)}
