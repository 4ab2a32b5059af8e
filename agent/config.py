"""Command-line flags shared by ``check`` and ``run``, and the settings they produce.

One place defines every flag (so ``check`` and ``run`` agree, and the packaged
``/etc/default/kubelet-cert-agent`` can document them all). Parsing turns the
argparse namespace into frozen settings; nothing here touches the filesystem.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal

from agent.kubeadm import default_dir as default_kubeadm_dir
from agent.model import Policy

DEFAULT_CERT_DIR = "/var/lib/kubelet/pki"
DEFAULT_KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
DEFAULT_KUBECONFIGS = (
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/kubelet.kubeconfig",
    "/var/lib/kubelet/kubeconfig",
)
DEFAULT_BOOTSTRAP_KUBECONFIG = "/etc/kubernetes/bootstrap-kubelet.conf"
DEFAULT_KUBELET_HOST = "127.0.0.1"
DEFAULT_KUBELET_PORT = 10250
DEFAULT_LISTEN = "127.0.0.1:9731"
# The thresholds' defaults live in one place, the model's Policy: flags and --help read them.
_P = Policy()
MAX_FILE_BYTES = 1 << 20  # read at most 1 MiB of any input file


DISCOVER: Literal["discover"] = "discover"


@dataclass(frozen=True)
class KubeletAccess:
    """How the agent reaches the kubelet and what it authenticates with, each fact with
    where it came from (the discovered settings themselves are agent.model.KubeletSettings).

    The one place the kubelet's serving endpoint, --kubeconfig and --bootstrap-kubeconfig
    are decided: today from flags and defaults (``kubelet_settings``); kubelet discovery
    (issue #10) replaces that function and nothing else needs to change.
    """

    host: str = DEFAULT_KUBELET_HOST  # where to dial (never 0.0.0.0 / ::)
    port: int = DEFAULT_KUBELET_PORT
    endpoint_source: str = "default"
    kubeconfig: Path | None = None  # None: the first existing of DEFAULT_KUBECONFIGS
    kubeconfig_source: str = "default"
    bootstrap_kubeconfig: Path | None = Path(DEFAULT_BOOTSTRAP_KUBECONFIG)
    bootstrap_source: str = "default"
    probe: bool = True  # --no-probe turns the serving-port probe off
    probe_timeout: float = 3.0
    host_root: str = "/"  # --host-root: paths inside the kubeconfig are read under it

    @property
    def endpoint(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class SourceSettings:
    """Where the local inputs live.

    ``cert_dir`` None, ``kubelet_config`` DISCOVER and ``node_name`` "" mean: take them
    from the kubelet as discovered (``kubelet_config`` None: the kubelet has no config
    file). Kubelet paths are host paths, read under ``host_root``.
    """

    cert_dir: Path | None = None
    kubelet_config: Path | Literal["discover"] | None = DISCOVER
    ca_files: tuple[Path, ...] = ()
    watch_paths: tuple[Path, ...] = ()
    watch_recursive: tuple[Path, ...] = ()
    # kubeadm control plane: inventoried when DIR looks like one (sources.kubeadm), or
    # always when the operator named the dir (then what is missing is reported); None: --no-kubeadm.
    kubeadm_dir: Path | None = Path(default_kubeadm_dir())
    kubeadm_explicit: bool = False
    node_name: str = ""
    max_file_bytes: int = MAX_FILE_BYTES
    host_root: Path = Path("/")
    kubelet: KubeletAccess = KubeletAccess()


@dataclass(frozen=True)
class ApiSettings:
    """How to reach the API server (issue: serving CSRs)."""

    offline: bool = False
    kubeconfig: Path | None = None  # None: try DEFAULT_KUBECONFIGS in order
    server: str | None = None  # overrides the kubeconfig's server
    token_file: Path | None = None
    api_ca_file: Path | None = None
    insecure: bool = False
    csr_interval: float = 60.0
    connect_timeout: float = 3.0
    read_timeout: float = 10.0


@dataclass(frozen=True)
class DaemonSettings:
    """Only for ``run``."""

    listen: str = DEFAULT_LISTEN
    textfile_dir: Path | None = None
    poll: float | None = None  # seconds; None = inotify
    settle: float = 2.0
    log_format: str = "json"


@dataclass(frozen=True)
class Settings:
    sources: SourceSettings
    api: ApiSettings
    policy: Policy
    daemon: DaemonSettings


def _number(text: str, upper: float) -> float:
    """A finite number in (0, ``upper``]: nan, inf and 1e308 never reach a timedelta."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number: {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text!r}")
    if value > upper:
        raise argparse.ArgumentTypeError(f"must be at most {upper:g}: {text!r}")
    return value


def _bounded(upper: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        return _number(text, upper)

    parse.__name__ = "number"  # argparse names the type in "invalid number value"
    return parse


MAX_DAYS = 3650.0  # ten years: more is a typo, and days * 86400 must stay a valid timedelta
MAX_SECONDS = 7 * 86400.0
_days = _bounded(MAX_DAYS)
_seconds = _bounded(MAX_SECONDS)


def _fraction(text: str) -> float:
    value = _number(text, 1.0)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1: {text!r}")
    return value


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("local inputs")
    g.add_argument("--host-root", default="/", metavar="DIR",
                   help="read the host under DIR: its /proc, systemd units, kubelet config, "
                        "cert dir and kubeconfig; absolute symlinks resolve under DIR and "
                        "output shows host paths (default: %(default)s; e.g. /host in a "
                        "container that mounts the host there)")
    g.add_argument("--cert-dir", default=None, metavar="DIR",
                   help="the kubelet's --cert-dir (default: discovered from the running "
                        "kubelet or its systemd unit, else " + DEFAULT_CERT_DIR + ")")
    g.add_argument("--kubelet-config", default=None, metavar="FILE",
                   help="the kubelet's --config file (default: discovered; '' if the kubelet "
                        "runs on flags only), read for serverTLSBootstrap, rotateCertificates, "
                        "tlsCertFile and clientCAFile")
    g.add_argument("--ca-file", action="append", default=[], metavar="FILE",
                   help="a trusted cluster CA bundle (repeatable); clientCAFile is added "
                        "automatically. Without any, UNTRUSTED_ISSUER is not evaluated")
    g.add_argument("--watch", action="append", default=[], metavar="PATH",
                   help="extra certificate file or directory (non-recursive) to check for "
                        "expiry and readability, e.g. /etc/kubernetes/pki (repeatable)")
    g.add_argument("--watch-recursive", action="append", default=[], metavar="DIR",
                   help="like --watch DIR, and every directory below it (repeatable)")
    g.add_argument("--kubeadm-dir", default=None, metavar="DIR",
                   help="kubeadm's dir on a control-plane node: judge everything `kubeadm "
                        "certs check-expiration` lists (default: "
                        f"{default_kubeadm_dir()}, used when DIR/pki/ca.crt and "
                        "pki/apiserver.crt or manifests/kube-apiserver.yaml exist)")
    g.add_argument("--no-kubeadm", action="store_true",
                   help="do not look at the kubeadm control plane")
    g.add_argument("--node-name", default=None, metavar="NAME",
                   help="this node's name as the API server knows it (default: the kubelet's "
                        "--hostname-override, else the host name)")
    g.add_argument("--kubelet-endpoint", type=_endpoint, default=None, metavar="HOST:PORT",
                   help="the kubelet's serving address to probe with a TLS handshake "
                        "(default: the discovered address and port, else "
                        f"{DEFAULT_KUBELET_HOST}:{DEFAULT_KUBELET_PORT})")
    g.add_argument("--no-probe", action="store_true",
                   help="do not probe the kubelet's serving port")
    g.add_argument("--bootstrap-kubeconfig", default=DEFAULT_BOOTSTRAP_KUBECONFIG,
                   metavar="FILE",
                   help="the kubelet's --bootstrap-kubeconfig; its token is checked once a "
                        "day unless --offline; '' for none (default: discovered, else "
                        "%(default)s)")


def _endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r} (e.g. 127.0.0.1:10250)")
    return dialable(host), int(port)


def dialable(host: str) -> str:
    """The address to dial for a kubelet listening on ``host``: loopback for 'all'."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - parsing the kubelet's address, not binding
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def kubelet_settings(ns: argparse.Namespace) -> KubeletAccess:
    """The kubelet facts from the flags (kubelet discovery will take this over)."""
    endpoint = getattr(ns, "kubelet_endpoint", None)
    kubeconfig = getattr(ns, "kubeconfig", None)
    bootstrap = getattr(ns, "bootstrap_kubeconfig", DEFAULT_BOOTSTRAP_KUBECONFIG)
    return KubeletAccess(
        host=endpoint[0] if endpoint else DEFAULT_KUBELET_HOST,
        port=endpoint[1] if endpoint else DEFAULT_KUBELET_PORT,
        endpoint_source="--kubelet-endpoint" if endpoint else "default",
        kubeconfig=_opt_path(kubeconfig),
        kubeconfig_source="--kubeconfig" if kubeconfig else "default",
        bootstrap_kubeconfig=_opt_path(bootstrap),
        bootstrap_source=("default" if bootstrap == DEFAULT_BOOTSTRAP_KUBECONFIG
                          else "--bootstrap-kubeconfig"),
        probe=not getattr(ns, "no_probe", False),
        probe_timeout=getattr(ns, "probe_timeout", 3.0))  # not a flag: tests shorten it


def add_policy_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("thresholds")
    g.add_argument("--critical-days", type=_days, default=_P.critical_days,
                   metavar="DAYS",
                   help="CERT_EXPIRING_SOON is critical below min(DAYS, --critical-fraction "
                        "of the lifetime) left (default: %(default)s)")
    g.add_argument("--critical-fraction", type=_fraction, default=_P.critical_fraction, metavar="F",
                   help="(default: %(default)s)")
    g.add_argument("--warning-days", type=_days, default=_P.warning_days, metavar="DAYS",
                   help="CERT_EXPIRING_SOON is a warning below min(DAYS, --warning-fraction "
                        "of the lifetime) left (default: %(default)s)")
    g.add_argument("--warning-fraction", type=_fraction, default=_P.warning_fraction, metavar="F",
                   help="(default: %(default)s: 90 %% of the lifetime, where the kubelet's "
                        "rotation window ends, so a healthy node never warns)")
    g.add_argument("--csr-stale-after", type=_seconds,
                   default=_P.csr_stale_after.total_seconds(), metavar="SECONDS",
                   help="a serving CSR Pending longer than this raises SERVING_CSR_PENDING "
                        "(default: %(default)s)")
    g.add_argument("--issue-timeout", type=_seconds,
                   default=_P.issue_timeout.total_seconds(), metavar="SECONDS",
                   help="an approved CSR without a certificate after this raises "
                        "SERVING_CSR_NOT_ISSUED (default: %(default)s)")


def add_api_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("API server")
    g.add_argument("--offline", action="store_true",
                   help="do not contact the API server (file checks only)")
    g.add_argument("--kubeconfig", default=None, metavar="FILE",
                   help="kubeconfig to use (default: the kubelet's --kubeconfig as "
                        "discovered, else "
                        + ", then ".join(DEFAULT_KUBECONFIGS) + ")")
    g.add_argument("--server", default=None, metavar="URL",
                   help="API server URL, overriding the kubeconfig's")
    g.add_argument("--token-file", default=None, metavar="FILE",
                   help="bearer token file for a dedicated identity "
                        "(see packaging/kubernetes/rbac.yaml)")
    g.add_argument("--api-ca-file", default=None, metavar="FILE",
                   help="CA bundle to verify the API server, overriding the kubeconfig's")
    g.add_argument("--insecure", action="store_true",
                   help="allow insecure-skip-tls-verify in the kubeconfig (not recommended)")
    g.add_argument("--csr-interval", type=_seconds, default=60.0, metavar="SECONDS",
                   help="re-list period when watching is refused (default: %(default)s)")


def add_daemon_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("daemon")
    g.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help="address for /metrics, /healthz and /status (default: %(default)s)")
    g.add_argument("--textfile-dir", default=None, metavar="DIR",
                   help="write kubelet_cert_agent.prom here for node_exporter's textfile "
                        "collector (e.g. /var/lib/prometheus/node-exporter)")
    g.add_argument("--poll", type=_seconds, default=None, metavar="SECONDS",
                   help="poll instead of inotify (filesystems without inotify)")
    g.add_argument("--settle", type=_seconds, default=2.0, metavar="SECONDS",
                   help="a bad verdict about a file that just changed is published only after "
                        "it held this long (the kubelet's swap is not atomic) "
                        "(default: %(default)s)")
    g.add_argument("--log-format", choices=("json", "console"), default="json",
                   help="event log format on stdout (default: %(default)s)")


def _opt_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def settings_from_args(ns: argparse.Namespace) -> Settings:
    """Turn parsed flags into settings. Missing groups fall back to defaults."""
    host_root = Path(getattr(ns, "host_root", "/") or "/")
    sources = SourceSettings(
        cert_dir=_opt_path(ns.cert_dir),
        kubelet_config=DISCOVER if ns.kubelet_config is None else _opt_path(ns.kubelet_config),
        host_root=host_root,
        ca_files=tuple(Path(p) for p in getattr(ns, "ca_file", ())),
        watch_paths=tuple(Path(p) for p in getattr(ns, "watch", ())),
        watch_recursive=tuple(Path(p) for p in getattr(ns, "watch_recursive", [])),
        # the default kubeadm dir is a host path: under --host-root it is read there
        kubeadm_dir=None if getattr(ns, "no_kubeadm", False) else Path(
            getattr(ns, "kubeadm_dir", None)
            or host_root / default_kubeadm_dir().lstrip("/")),
        kubeadm_explicit=bool(getattr(ns, "kubeadm_dir", None)),
        node_name=ns.node_name or "",
        kubelet=kubelet_settings(ns),
    )
    policy = Policy(
        critical_days=getattr(ns, "critical_days", _P.critical_days),
        critical_fraction=getattr(ns, "critical_fraction", _P.critical_fraction),
        warning_days=getattr(ns, "warning_days", _P.warning_days),
        warning_fraction=getattr(ns, "warning_fraction", _P.warning_fraction),
        csr_stale_after=timedelta(seconds=getattr(ns, "csr_stale_after",
                                                  _P.csr_stale_after.total_seconds())),
        issue_timeout=timedelta(seconds=getattr(ns, "issue_timeout",
                                                _P.issue_timeout.total_seconds())),
    )
    api = ApiSettings(
        offline=getattr(ns, "offline", False),
        kubeconfig=_opt_path(getattr(ns, "kubeconfig", None)),
        server=getattr(ns, "server", None),
        token_file=_opt_path(getattr(ns, "token_file", None)),
        api_ca_file=_opt_path(getattr(ns, "api_ca_file", None)),
        insecure=getattr(ns, "insecure", False),
        csr_interval=getattr(ns, "csr_interval", 60.0),
    )
    daemon = DaemonSettings(
        listen=getattr(ns, "listen", DEFAULT_LISTEN),
        textfile_dir=_opt_path(getattr(ns, "textfile_dir", None)),
        poll=getattr(ns, "poll", None),
        settle=getattr(ns, "settle", 2.0),
        log_format=getattr(ns, "log_format", "json"),
    )
    return Settings(sources=sources, api=api, policy=policy, daemon=daemon)
