"""The kubelet's settings as discovered, each value with where it came from.

Immutable data only (no I/O). Paths are host paths: what the kubelet itself names,
even when the agent reads the host under ``--host-root``. A ``source`` is a short
phrase an operator can check: ``kubelet pid 812, --cert-dir``,
``/var/lib/kubelet/kubeadm-flags.env KUBELET_KUBEADM_ARGS, --hostname-override``,
``/etc/kubernetes/kubelet-config.yaml``, ``default``, ``agent flag --cert-dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from agent.model import ReadError

T_co = TypeVar("T_co", covariant=True)
DEFAULT = "default"


@dataclass(frozen=True)
class Sourced(Generic[T_co]):
    value: T_co
    source: str


@dataclass(frozen=True)
class KubeletSettings:
    """One discovery. ``found`` is False when there is no kubelet process, no unit and
    nothing at the default paths (KUBELET_NOT_FOUND)."""

    host_root: str
    found: bool
    cert_dir: Sourced[str]
    node_name: Sourced[str]
    config: Sourced[str | None]
    config_dir: Sourced[str | None]
    kubeconfig: Sourced[str | None]
    bootstrap_kubeconfig: Sourced[str | None]
    rotate_certificates: Sourced[bool | None]  # None: the config is unreadable
    server_tls_bootstrap: Sourced[bool | None]  # as configured (before the gate)
    rotate_server_gate: Sourced[bool]  # feature gate RotateKubeletServerCertificate
    tls_cert_file: Sourced[str | None]
    tls_private_key_file: Sourced[str | None]
    client_ca_file: Sourced[str | None]
    address: Sourced[str]
    port: Sourced[int | None]
    pid: int | None = None
    started_at: datetime | None = None
    binary: str | None = None  # argv[0] of the kubelet that runs / the unit's ExecStart
    unit: str | None = None  # host path of kubelet.service
    other_pids: tuple[int, ...] = ()  # more kubelet processes (the oldest is judged)
    config_files: tuple[str, ...] = ()  # --config then --config-dir drop-ins, as read
    config_error: ReadError | None = None
    inputs: tuple[str, ...] = ()  # host paths discovery depends on (to watch)
    looked: tuple[str, ...] = ()  # where it looked, for KUBELET_NOT_FOUND
    problems: tuple[str, ...] = ()  # sources that could not be used, in words

    @property
    def effective_server_tls_bootstrap(self) -> bool | None:
        """serverTLSBootstrap as the kubelet applies it: the feature gate can veto it."""
        value = self.server_tls_bootstrap.value
        return value and self.rotate_server_gate.value if value is not None else None

    def settings(self) -> dict[str, Sourced[object]]:
        """Every setting by its kubelet name (config field, or flag for flag-only ones)."""
        return {
            "certDir": self.cert_dir, "nodeName": self.node_name, "config": self.config,
            "configDir": self.config_dir, "kubeconfig": self.kubeconfig,
            "bootstrapKubeconfig": self.bootstrap_kubeconfig,
            "rotateCertificates": self.rotate_certificates,
            "serverTLSBootstrap": self.server_tls_bootstrap,
            "RotateKubeletServerCertificate": self.rotate_server_gate,
            "tlsCertFile": self.tls_cert_file, "tlsPrivateKeyFile": self.tls_private_key_file,
            "clientCAFile": self.client_ca_file, "address": self.address, "port": self.port,
        }

    def describe(self) -> str:
        """Which kubelet this is, in one line."""
        if self.pid is not None:
            more = (f"; {len(self.other_pids)} more kubelet processes "
                    f"({', '.join(map(str, self.other_pids))}), the oldest is judged"
                    if self.other_pids else "")
            unit = f", unit {self.unit}" if self.unit else ""
            return f"kubelet pid {self.pid} ({self.binary}){unit}{more}"
        if self.unit is not None:
            return f"kubelet not running; settings from unit {self.unit} ({self.binary})"
        if self.found:
            return "kubelet not running and no unit found; kubelet defaults and agent flags"
        return "no kubelet found"
