"""One discovery: process, else unit, else defaults; agent flags on top. Never raises.

The command line comes from the running kubelet (``/proc/<pid>/cmdline`` of the oldest
process named ``kubelet``); when none runs (crash-looping on an expired certificate is
exactly when the agent matters) from ``kubelet.service`` as systemd would start it.
Everything is read under ``host_root``; every path reported is a host path.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path

from agent.config import MAX_FILE_BYTES, ApiSettings, Settings, SourceSettings, dialable
from agent.config import KubeletAccess as KubeletProbeDefaults
from agent.model import DEFAULT_SOURCE as DEFAULT
from agent.model import KubeletSettings, Sourced
from agent.sources.discovery import derive, pflags, procscan, units
from agent.sources.discovery.hostfs import read_host, resolve, under
from agent.sources.discovery.kubeletconf import read_config

DEFAULT_CONFIG = "/var/lib/kubelet/config.yaml"  # kubeadm's, used only with no kubelet found


@dataclass(frozen=True)
class Request:
    """What the agent was told. ``config``: None = discover, "" = the kubelet has none."""

    host_root: str = "/"
    cert_dir: str | None = None
    config: str | None = None
    node_name: str | None = None
    kubeconfig: str | None = None
    max_file_bytes: int = MAX_FILE_BYTES


def host_name(root: str, gethostname: Callable[[], str] = socket.gethostname) -> Sourced[str]:
    """The host's name: ``gethostname()`` on the host, ``/etc/hostname`` under a host root."""
    if root not in ("", "/"):
        data, error = read_host(root, "/etc/hostname", 4096)
        if error is None and data and data.strip():
            return Sourced(data.decode(errors="replace").strip(), "/etc/hostname")
    return Sourced(gethostname(), "host name")


def _command(scan: procscan.KubeletProcessScan, unit: units.UnitCommand,
             problems: list[str]) -> tuple[list[tuple[str, str]], str | None]:
    """(arguments with origins, binary): the process's, else the unit's."""
    if scan.argv is not None:
        origin = f"kubelet pid {scan.found[0].pid}"
        return [(w, origin) for w in scan.argv[1:]], scan.argv[0]
    if scan.problem:
        problems.append(scan.problem + "; using the unit instead")
    if unit.argv:
        return list(unit.argv[1:]), unit.argv[0][0]
    return [], None


def _config_path(req: Request, flags: pflags.ParsedFlags, have_command: bool,
                 root: str) -> Sourced[str | None]:
    if req.config is not None:
        return Sourced(req.config or None, "agent flag --kubelet-config")
    given = derive.flag_value(flags, "config")
    if given is not None:
        return Sourced(given.value or None, given.source)
    if not have_command and os.path.isfile(resolve(root, DEFAULT_CONFIG)):
        return Sourced(DEFAULT_CONFIG, "default path (kubeadm's), no kubelet command line found")
    return Sourced(None, DEFAULT)


@dataclass(frozen=True)
class Command:
    """Where the kubelet's command line comes from: the costly half of discovery (a
    process scan, the unit files), which the daemon keeps until the process or a unit
    file changes."""

    scan: procscan.KubeletProcessScan
    unit: units.UnitCommand
    words: tuple[tuple[str, str], ...]  # arguments after argv[0], with their origins
    binary: str | None
    problems: tuple[str, ...]


def find_command(req: Request, pids: Collection[int] | None = None) -> Command:
    """The running kubelet's command line, else the unit's. Never raises."""
    root = os.path.abspath(req.host_root)
    problems: list[str] = []
    scan = procscan.scan(under(root, "/proc"), pids)
    unit = units.read_unit(root)
    problems.extend(unit.problems)
    words, binary = _command(scan, unit, problems)
    return Command(scan, unit, tuple(words), binary, tuple(problems))


def settle(req: Request, command: Command,
           gethostname: Callable[[], str] = socket.gethostname) -> KubeletSettings:
    """The settings from a command line: flags, the config and its drop-ins (read now),
    defaults, and the agent's flags on top. Never raises."""
    root = os.path.abspath(req.host_root)
    scan, unit, binary = command.scan, command.unit, command.binary
    problems = list(command.problems)
    flags = pflags.parse(command.words)
    problems.extend(flags.problems)
    config = _config_path(req, flags, bool(command.words or binary), root)
    config_dir = derive.path_setting(flags, "config-dir")
    merged = read_config(root, config.value, config_dir.value, req.max_file_bytes)
    cert_dir = derive.cert_dir(flags, req.cert_dir)
    found = bool(scan.found or unit.unit or req.cert_dir or merged.present
                 or os.path.isdir(resolve(root, derive.DEFAULT_CERT_DIR)))
    known = bool(command.words or binary) or merged.present
    inputs = [*unit.inputs, *merged.files, *(x for x in (config.value, config_dir.value) if x)]
    return KubeletSettings(
        host_root=root, found=found, cert_dir=cert_dir,
        node_name=derive.node_name(flags, req.node_name, host_name(root, gethostname)),
        config=config, config_dir=config_dir,
        kubeconfig=derive.path_setting(flags, "kubeconfig", req.kubeconfig, "--kubeconfig"),
        bootstrap_kubeconfig=derive.path_setting(flags, "bootstrap-kubeconfig"),
        rotate_certificates=derive.bool_setting(flags, "rotate-certificates", merged,
                                                "rotateCertificates", problems, known=known),
        server_tls_bootstrap=derive.bool_setting(flags, "rotate-server-certificates", merged,
                                                 "serverTLSBootstrap", problems, known=known),
        rotate_server_gate=derive.gate_setting(flags, merged),
        tls_cert_file=derive.config_path_setting(flags, "tls-cert-file", merged,
                                                 "tlsCertFile", problems),
        tls_private_key_file=derive.config_path_setting(flags, "tls-private-key-file", merged,
                                                        "tlsPrivateKeyFile", problems),
        client_ca_file=derive.config_path_setting(flags, "client-ca-file", merged,
                                                  "authentication.x509.clientCAFile", problems),
        address=derive.address_setting(flags, merged),
        port=derive.port_setting(flags, merged, problems),
        pid=scan.found[0].pid if scan.found else None,
        started_at=scan.started_at, binary=binary, unit=unit.unit,
        other_pids=tuple(p.pid for p in scan.found[1:]),
        config_files=merged.files, config_error=merged.error, command_known=known,
        inputs=tuple(dict.fromkeys(inputs)),
        looked=(f"{under(root, '/proc')} (no process named kubelet)",
                *(f"{b}/{units.UNIT}" for b in units.SEARCH_PATHS),
                derive.DEFAULT_CERT_DIR, DEFAULT_CONFIG),
        problems=tuple(problems))


def discover(req: Request, *, pids: Collection[int] | None = None,
             gethostname: Callable[[], str] = socket.gethostname) -> KubeletSettings:
    """Discover the kubelet under ``req.host_root``. ``pids`` limits the process scan
    (tests on a shared machine); None scans every process."""
    return settle(req, find_command(req, pids), gethostname)


def effective_api(api: ApiSettings, k: KubeletSettings) -> ApiSettings:
    """The API settings with the kubeconfig discovery chose (the agent's --kubeconfig, else
    the kubelet's), read under the host root. Without either, the API client tries its
    default kubeconfig paths."""
    if not k.kubeconfig.value:
        return api
    return replace(api, kubeconfig=Path(resolve(k.host_root, k.kubeconfig.value)))


def effective_sources(sources: SourceSettings, k: KubeletSettings) -> SourceSettings:
    """The discovered node name, and the discovered serving address/port, kubeconfig and
    bootstrap kubeconfig wherever the agent's own flag left the default (read under the
    host root)."""
    kl = sources.kubelet
    untouched = KubeletProbeDefaults()
    if (kl.endpoint_source == "default" and (kl.host, kl.port) == (untouched.host, untouched.port)
            and k.port.value):
        kl = replace(kl, host=dialable(k.address.value), port=k.port.value,
                     endpoint_source=f"{k.address.source}; {k.port.source}")
    if kl.kubeconfig_source == "default" and kl.kubeconfig is None and k.kubeconfig.value:
        kl = replace(kl, kubeconfig=Path(resolve(k.host_root, k.kubeconfig.value)),
                     kubeconfig_source=k.kubeconfig.source)
    if (kl.bootstrap_source == "default" and k.bootstrap_kubeconfig.value
            and kl.bootstrap_kubeconfig == untouched.bootstrap_kubeconfig):
        kl = replace(kl, bootstrap_kubeconfig=Path(resolve(k.host_root,
                                                           k.bootstrap_kubeconfig.value)),
                     bootstrap_source=k.bootstrap_kubeconfig.source)
    return replace(sources, node_name=k.node_name.value,
                   kubelet=replace(kl, host_root=k.host_root))


def effective(configured: Settings, k: KubeletSettings) -> Settings:
    """The configured settings with what discovery found filled in."""
    return replace(configured, sources=effective_sources(configured.sources, k),
                   api=effective_api(configured.api, k))
