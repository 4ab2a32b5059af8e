"""Plain immutable data that flows from the sources to the checks and the sinks.

Nothing here does I/O or reads the clock. Every instant is a timezone-aware UTC
``datetime``; every path is a ``str`` (absolute, as the agent saw it) so that a
snapshot can be rendered to JSON and metric labels without conversion.

A snapshot never holds private-key bytes: a key is reduced to the SHA-256 of its
*public* key (``spki_sha256``) at parse time, which is all that matching needs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Generic, TypeVar

# The kubelet draws its rotation deadline uniformly in [nb + 0.7 T, nb + 0.9 T]
# (client-go util/certificate, nextRotationDeadline).
ROTATION_WINDOW_START = 0.7
ROTATION_WINDOW_END = 0.9


class Severity(enum.IntEnum):
    """How bad a finding is; ordered so that ``max()`` gives the worst."""

    INFO = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class Status(enum.IntEnum):
    """Overall verdict; the value is the Nagios plugin exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


class Role(enum.StrEnum):
    """What a certificate is for, from the kubelet's point of view."""

    CLIENT = "client"  # <cert-dir>/kubelet-client-current.pem
    SERVER = "server"  # <cert-dir>/kubelet-server-current.pem
    SELF_SIGNED = "kubelet-crt"  # <cert-dir>/kubelet.crt, the self-signed fallback
    TLS_CERT_FILE = "tls-cert-file"  # tlsCertFile from the kubelet config
    TRUST_ANCHOR = "ca"  # clientCAFile / --ca-file
    WATCHED = "watched"  # --watch PATH (e.g. control-plane PKI)
    SERVED = "served"  # the chain the kubelet's serving port presents (TLS probe)
    KUBECONFIG_CLIENT = "kubeconfig-client"  # client cert the kubeconfig names, not -current.pem
    KUBECONFIG_CA = "kubeconfig-ca"  # certificate-authority(-data) of the kubelet's kubeconfig
    KUBECONFIG = "kubeconfig"  # the client certificate of a --watch kubeconfig
    KUBEADM = "kubeadm"  # a certificate `kubeadm certs check-expiration` lists
    KUBEADM_CA = "kubeadm-ca"  # one of kubeadm's CAs (ca, etcd-ca, front-proxy-ca)


class LinkProblem(enum.StrEnum):
    """What is wrong with a ``kubelet-<role>-current.pem`` entry."""

    MISSING = "missing"  # no entry at all
    DANGLING = "dangling"  # symlink whose target does not exist
    LOOP = "loop"  # symlink loop (ELOOP)
    NOT_A_LINK = "not-a-link"  # a regular file: the kubelet refuses to rotate it
    NOT_REGULAR = "not-regular"  # target is a FIFO, device, socket or directory


class ReadProblem(enum.StrEnum):
    """Why a certificate file could not be used. Values are stable (metric labels)."""

    NOT_FOUND = "not-found"
    PERMISSION_DENIED = "permission-denied"
    NOT_REGULAR = "not-regular"
    EMPTY = "empty"
    TOO_LARGE = "too-large"
    TRUNCATED = "truncated"  # a PEM block that starts but never ends
    GARBAGE = "garbage"  # neither PEM nor DER
    NO_CERTIFICATE = "no-certificate"  # valid PEM/DER but no certificate (e.g. only a key)
    BAD_CERTIFICATE = "bad-certificate"  # a CERTIFICATE block cryptography rejects
    CHANGED_DURING_READ = "changed-during-read"
    IO_ERROR = "io-error"


class KeyMatch(enum.StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    ABSENT = "absent"  # no key found where one was expected / nothing to compare
    UNREADABLE = "unreadable"  # a key was present but could not be parsed


@dataclass(frozen=True)
class ReadError:
    problem: ReadProblem
    detail: str  # one line for an operator; never contains file contents


@dataclass(frozen=True)
class Sans:
    """Subject alternative names, split the way the kubelet uses them.

    The kubelet only ever puts DNS names and IP addresses in its certificates and CSRs;
    every other GeneralName type lands in ``other`` as ``<type>:<value>`` so that a check
    can treat any of them as foreign.
    """

    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    other: tuple[str, ...] = ()

    def labels(self) -> tuple[str, ...]:
        """``DNS:n``, ``IP:a``, then the others, as openssl prints them."""
        return (tuple(f"DNS:{n}" for n in self.dns) + tuple(f"IP:{a}" for a in self.ips)
                + self.other)


@dataclass(frozen=True)
class CertDetails:
    """What a certificate says beyond its names, serial and validity.

    Only some checks and the JSON status read these; for the thousands of certificates of
    a ``--watch`` directory or a CA bundle they are derived on first use (see
    :attr:`CertInfo.details`), not at read time.
    """

    subject_cn: str | None = None
    subject_orgs: tuple[str, ...] = ()
    is_ca: bool = False  # basicConstraints CA:TRUE
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    other_sans: tuple[str, ...] = ()  # "email:x", "URI:y"
    key_usage: tuple[str, ...] = ()  # e.g. "digital_signature"
    ext_key_usage: tuple[str, ...] = ()  # e.g. "serverAuth", "clientAuth"
    key_algorithm: str = ""  # e.g. "EC P-256", "RSA 2048"
    spki_sha256: str = ""  # SHA-256 of the SubjectPublicKeyInfo DER ("" if unusable)
    # Set when an extension or the key could not be decoded on first use (a certificate
    # read eagerly is rejected for it instead): what is missing above, in our words.
    error: str | None = None


NO_DETAILS = CertDetails()


@dataclass(frozen=True)
class CertInfo:
    """One parsed X.509 certificate.

    The fields are what the metrics and the expiry/issuer checks need, computed at read
    time (names, serial, fingerprint, validity, self-issued). ``derive`` gives the rest
    (:class:`CertDetails`): the details themselves, or a function computing them from
    the certificate's (public) DER bytes, called once, on first use. It is left out of
    comparisons: the fingerprint already identifies the encoding they come from.
    """

    subject: str  # RFC 4514
    issuer: str  # RFC 4514
    serial: str  # lowercase hex, no leading 0x
    fingerprint_sha256: str  # lowercase hex
    not_before: datetime
    not_after: datetime
    self_issued: bool = False  # issuer == subject and its own key verifies it
    derive: CertDetails | Callable[[], CertDetails] = field(
        default=NO_DETAILS, compare=False, repr=False)

    @cached_property
    def details(self) -> CertDetails:
        # cached_property writes the instance __dict__ directly: allowed on a frozen
        # dataclass, and two threads racing here compute the same value.
        derive = self.derive
        return derive if isinstance(derive, CertDetails) else derive()

    @property
    def subject_cn(self) -> str | None:
        return self.details.subject_cn

    @property
    def subject_orgs(self) -> tuple[str, ...]:
        return self.details.subject_orgs

    @property
    def is_ca(self) -> bool:
        return self.details.is_ca

    @property
    def dns_names(self) -> tuple[str, ...]:
        return self.details.dns_names

    @property
    def ip_addresses(self) -> tuple[str, ...]:
        return self.details.ip_addresses

    @property
    def other_sans(self) -> tuple[str, ...]:
        return self.details.other_sans

    @property
    def key_usage(self) -> tuple[str, ...]:
        return self.details.key_usage

    @property
    def ext_key_usage(self) -> tuple[str, ...]:
        return self.details.ext_key_usage

    @property
    def key_algorithm(self) -> str:
        return self.details.key_algorithm

    @property
    def spki_sha256(self) -> str:
        return self.details.spki_sha256

    @property
    def lifetime(self) -> timedelta:
        return self.not_after - self.not_before

    @property
    def rotation_window_start(self) -> datetime:
        return self.not_before + self.lifetime * ROTATION_WINDOW_START

    @property
    def rotation_window_end(self) -> datetime:
        return self.not_before + self.lifetime * ROTATION_WINDOW_END

    @property
    def sans(self) -> tuple[str, ...]:
        return Sans(self.dns_names, self.ip_addresses, self.other_sans).labels()


@dataclass(frozen=True)
class LinkState:
    """A ``kubelet-<role>-current.pem`` entry as found on disk."""

    path: str
    is_symlink: bool
    target: str | None = None  # raw readlink(), absolute or relative
    resolved: str | None = None  # the final regular file, if any
    problem: LinkProblem | None = None


@dataclass(frozen=True)
class CertFile:
    """A certificate file the agent evaluates, with everything known about it."""

    role: Role
    path: str  # as configured (for links: the link path)
    target: str | None = None  # resolved file actually read
    link: LinkState | None = None
    size: int | None = None
    read_error: ReadError | None = None
    chain: tuple[CertInfo, ...] = ()  # every certificate in the file, file order
    leaf: CertInfo | None = None  # the end-entity certificate (chain[0] normally)
    key_path: str | None = None  # where the key was looked for, if not in the file
    key_match: KeyMatch = KeyMatch.ABSENT
    key_error: ReadError | None = None
    trusted: bool | None = None  # None: no trust anchor known
    self_signed: bool = False  # in the kubelet's sense (see domain notes)
    stale_since: datetime | None = None  # last good data kept after a read failure
    name: str | None = None  # kubeadm's name for it (admin.conf, apiserver, etcd-ca, ...)
    externally_managed: bool | None = None  # kubeadm: its CA's key is absent (None: n/a)


@dataclass(frozen=True)
class RoleHistory:
    """Timestamped generations ``kubelet-<role>-<YYYY-MM-DD-HH-MM-SS>.pem``."""

    role: Role
    count: int
    total_bytes: int
    oldest: str | None = None  # timestamp part of the file name
    newest: str | None = None
    previous_path: str | None = None  # the generation before the current one
    previous: CertInfo | None = None


@dataclass(frozen=True)
class KubeletConfigInfo:
    path: str | None
    present: bool = False
    error: ReadError | None = None
    server_tls_bootstrap: bool | None = None
    rotate_certificates: bool | None = None
    tls_cert_file: str | None = None
    tls_private_key_file: str | None = None
    client_ca_file: str | None = None


class CsrState(enum.StrEnum):
    PENDING = "Pending"
    APPROVED = "Approved"  # approved, no certificate yet
    ISSUED = "Issued"  # approved and status.certificate present
    DENIED = "Denied"
    FAILED = "Failed"


@dataclass(frozen=True)
class CsrInfo:
    """One of this node's ``kubernetes.io/kubelet-serving`` CSRs."""

    name: str
    created: datetime
    state: CsrState
    username: str
    signer: str
    state_since: datetime | None = None  # lastUpdateTime/lastTransitionTime of the condition
    reason: str = ""  # condition reason/message for Denied/Failed
    request_subject: str | None = None
    request_dns_names: tuple[str, ...] = ()
    request_ip_addresses: tuple[str, ...] = ()
    request_other_sans: tuple[str, ...] = ()
    request_error: str | None = None  # spec.request could not be decoded


@dataclass(frozen=True)
class CsrTrail:
    """Where the node stands with one signer's CSRs, as the kubelet sees it.

    Built by :func:`agent.checks.csr.trail`. Each rotation attempt makes a new key and a
    new CSR, so only the newest CSR made after the last issued certificate counts; every
    other Pending CSR is abandoned (its key is gone: approving it does nothing).
    """

    signer: str
    last_issued: datetime | None = None  # newest issue known (CSR list or certificate)
    newest: CsrInfo | None = None  # the newest CSR made after last_issued, if any
    waiting: bool = False  # that newest CSR is Pending: the node waits for approval now
    since: datetime | None = None  # when waiting: since when the node has been waiting
    pending: tuple[CsrInfo, ...] = ()  # when waiting: Pending CSRs since last_issued
    abandoned: tuple[CsrInfo, ...] = ()  # every Pending CSR but the one waited for

    def is_abandoned(self, csr: CsrInfo) -> bool:
        return any(c.name == csr.name for c in self.abandoned)


class ApiProblem(enum.StrEnum):
    AUTH_FAILED = "auth-failed"  # 401
    FORBIDDEN = "forbidden"  # 403
    UNREACHABLE = "unreachable"  # connect/TLS/timeout/5xx/garbage
    RATE_LIMITED = "rate-limited"  # 429
    NOT_CONFIGURED = "not-configured"  # no kubeconfig/credentials found
    BAD_RESPONSE = "bad-response"  # malformed JSON, unexpected shape


@dataclass(frozen=True)
class ApiError:
    problem: ApiProblem
    detail: str  # never headers, tokens or keys
    status_code: int | None = None
    consecutive_failures: int = 1
    since: datetime | None = None


class CredentialKind(enum.StrEnum):
    """Which credential the agent presents to the API server."""

    CERT_FILE = "client-certificate-file"  # client-certificate: <path>
    CERT_DATA = "client-certificate-data"  # embedded in the kubeconfig
    TOKEN_FILE = "token-file"  # noqa: S105 - a kind of credential, not a secret
    TOKEN = "token"  # noqa: S105 - embedded in the kubeconfig
    NONE = "none"


@dataclass(frozen=True)
class ApiCredential:
    """The credential in use and where it lives (a path, never the secret itself)."""

    kind: CredentialKind
    where: str  # the file, or the kubeconfig that embeds it


@dataclass(frozen=True)
class AccessReview:
    """A SelfSubjectAccessReview's answer: may this node create selfnodeclient CSRs?"""

    allowed: bool
    reason: str  # names the binding when allowed; empty when denied
    at: datetime


class BootstrapOutcome(enum.StrEnum):
    ABSENT = "absent"  # no bootstrap kubeconfig (kubeadm removes it after the join)
    CERTIFICATE = "certificate"  # it authenticates with a client certificate: not checked
    VALID = "valid"  # the API server accepts its token
    REJECTED = "rejected"  # 401: expired, deleted or unknown token
    UNUSABLE = "unusable"  # present but cannot be read or parsed


@dataclass(frozen=True)
class BootstrapCheck:
    """The bootstrap kubeconfig's credential, checked with a SelfSubjectReview."""

    path: str
    outcome: BootstrapOutcome
    at: datetime
    detail: str = ""  # never the token
    username: str | None = None  # e.g. system:bootstrap:abcdef


@dataclass(frozen=True)
class NodeAddresses:
    """``status.addresses`` of this node's own Node object: (type, address) pairs."""

    addresses: tuple[tuple[str, str], ...]
    at: datetime


@dataclass(frozen=True)
class ApiState:
    """What the API server last told the agent about this node."""

    server: str  # URL of the API server
    last_success: datetime | None = None
    csrs: tuple[CsrInfo, ...] = ()  # this node's serving CSRs only
    error: ApiError | None = None  # the current failure, if the last attempt failed
    identity_username: str | None = None  # from SelfSubjectReview
    identity_groups: tuple[str, ...] = ()
    requests_by_outcome: tuple[tuple[str, int], ...] = ()  # cumulative counters
    credential: ApiCredential | None = None  # what the server accepted or rejected
    client_csrs: tuple[CsrInfo, ...] = ()  # this node's kube-apiserver-client-kubelet CSRs
    client_csrs_known: bool = False  # the client CSRs were listed at least once
    renewal_review: AccessReview | None = None  # None: not asked (yet)
    bootstrap: BootstrapCheck | None = None  # None: not checked (yet)
    node: NodeAddresses | None = None  # None: not read (yet)

    @property
    def stale(self) -> bool:
        return self.error is not None


T_co = TypeVar("T_co", covariant=True)
DEFAULT_SOURCE = "default"  # the source of a value the kubelet defaults


@dataclass(frozen=True)
class Sourced(Generic[T_co]):
    value: T_co
    source: str


@dataclass(frozen=True)
class KubeletSettings:
    """The kubelet's settings as discovered, each value with where it came from.

    Paths are host paths (what the kubelet names), even under ``--host-root``. A source is
    a phrase an operator can check: ``kubelet pid 812, --cert-dir``,
    ``/var/lib/kubelet/kubeadm-flags.env KUBELET_KUBEADM_ARGS, --hostname-override``,
    ``/etc/kubernetes/kubelet-config.yaml``, ``default``, ``agent flag --cert-dir``.
    One discovery. ``found`` is False when there is no kubelet process, no unit and
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
    command_known: bool = False  # a command line or a config file was found
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
class ProbeOutcome(enum.StrEnum):
    """What a TLS handshake with the kubelet's serving port gave. Values are stable."""

    SERVED = "served"  # handshake completed: the served chain is known
    INTERNAL_ERROR = "internal-error"  # TLS alert internal_error: no serving certificate
    REFUSED = "refused"  # nothing listens: the kubelet is down or elsewhere
    TIMEOUT = "timeout"  # no handshake within the timeout
    NOT_TLS = "not-tls"  # something answered, but not a TLS server (plain HTTP, garbage)


@dataclass(frozen=True)
class ProbeResult:
    """One TLS handshake with the kubelet's serving port (no client certificate)."""

    endpoint: str  # host:port as dialled
    outcome: ProbeOutcome
    at: datetime
    detail: str = ""  # one line for an operator
    served: CertFile | None = None  # role SERVED, path https://host:port, when SERVED
    duration_seconds: float = 0.0

    @property
    def up(self) -> bool:
        """The port completed or refused a TLS handshake: a kubelet is listening."""
        return self.outcome in (ProbeOutcome.SERVED, ProbeOutcome.INTERNAL_ERROR)


class KubeconfigCertSource(enum.StrEnum):
    CURRENT = "current"  # client-certificate is kubelet-client-current.pem (or links to it)
    FILE = "file"  # another file: rotation never rewrites it
    EMBEDDED = "embedded"  # client-certificate-data
    NONE = "none"  # no client certificate (token, exec, nothing)


@dataclass(frozen=True)
class KubeconfigInfo:
    """The kubeconfig the kubelet authenticates with after its next start."""

    path: str | None  # None: none found
    present: bool = False
    error: ReadError | None = None
    cert_source: KubeconfigCertSource = KubeconfigCertSource.NONE
    cert_ref: str | None = None  # client-certificate as resolved (FILE/CURRENT)
    key_ref: str | None = None  # client-key as resolved
    key_embedded: bool = False
    client_trusted: bool | None = None  # the client cert in use chains to the kubeconfig CA


@dataclass(frozen=True)
class Snapshot:
    """Everything the sources saw at one instant. Checks read only this."""

    taken_at: datetime
    node_name: str
    cert_dir: str
    kubelet_config: KubeletConfigInfo
    certs: tuple[CertFile, ...] = ()  # client, server, kubelet.crt, tlsCertFile, watched
    anchors: tuple[CertFile, ...] = ()  # trust anchors (clientCAFile, --ca-file)
    history: tuple[RoleHistory, ...] = ()
    updated_links: tuple[str, ...] = ()  # transient -updated.pem links (swap in progress)
    api: ApiState | None = None  # None: offline / not asked
    kubelet: KubeletSettings | None = None  # None: not discovered (hand-built snapshots)
    kubeadm_dir: str | None = None  # the kubeadm dir inventoried (None: not a control plane)
    cert_dir_error: ReadError | None = None  # the cert dir is absent or cannot be listed
    cert_dir_identity: tuple[int, int] | None = None  # (st_dev, st_ino); None: not a dir
    probe: ProbeResult | None = None  # None: --no-probe / not probed
    kubeconfig: KubeconfigInfo | None = None  # None: not judged
    # False while the daemon's first scan of big --watch directories is still running:
    # this snapshot holds everything else, and the complete one follows.
    complete: bool = True

    def cert(self, role: Role) -> CertFile | None:
        """The first certificate file with this role, if any."""
        for c in self.certs:
            if c.role is role:
                return c
        return None


@dataclass(frozen=True)
class Finding:
    code: str  # from agent.codes: a stable contract
    severity: Severity
    message: str  # one line: what is wrong and what to do
    path: str | None = None


@dataclass(frozen=True)
class Policy:
    """Thresholds for the checks (all configurable from the command line)."""

    critical_days: float = 7.0
    critical_fraction: float = 0.05
    warning_days: float = 30.0
    warning_fraction: float = 0.10  # 90 % of the lifetime: the end of the rotation window
    csr_stale_after: timedelta = timedelta(minutes=10)
    issue_timeout: timedelta = timedelta(minutes=5)
    api_failures_before_unreachable: int = 3


@dataclass(frozen=True)
class Evaluation:
    """A snapshot judged at an instant."""

    snapshot: Snapshot
    now: datetime
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    csr_trails: tuple[CsrTrail, ...] = ()  # one per signer judged (empty when offline)

    def csr_trail(self, signer: str) -> CsrTrail | None:
        """The judged state of ``signer``'s CSRs (None: not judged, e.g. offline)."""
        return next((t for t in self.csr_trails if t.signer == signer), None)

    @property
    def status(self) -> Status:
        worst = max((f.severity for f in self.findings), default=Severity.INFO)
        if worst is Severity.CRITICAL:
            return Status.CRITICAL
        if worst is Severity.WARNING:
            return Status.WARNING
        return Status.OK


@dataclass(frozen=True)
class AgentStats:
    """The daemon's own counters, rendered as ``kubelet_cert_agent_*`` internals."""

    started_at: datetime | None = None
    evaluations_total: int = 0
    last_evaluation: datetime | None = None
    last_evaluation_duration_seconds: float = 0.0
    read_errors_total: tuple[tuple[str, int], ...] = ()  # (ReadProblem value, count)
    fs_events_total: int = 0
    rotations_total: tuple[tuple[str, int], ...] = ()  # (Role value, count)
    textfile_errors_total: int = 0


@dataclass(frozen=True)
class AgentState:
    """What a scrape renders: the published evaluation and the daemon's counters."""

    evaluation: Evaluation
    stats: AgentStats = field(default_factory=AgentStats)


Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Event:
    """One thing that happened, ready to be logged as a JSON line."""

    kind: str
    level: str = "info"  # "info" | "warning" | "error"
    fields: tuple[tuple[str, Scalar], ...] = ()

    def as_dict(self) -> dict[str, Scalar]:
        return dict(self.fields)


def event(kind: str, level: str = "info", **fields: Scalar | datetime) -> Event:
    """Build an event; datetimes become RFC 3339 strings, keys are kept sorted."""
    return Event(kind, level, tuple(sorted((k, _scalar(v)) for k, v in fields.items())))


def _scalar(value: Scalar | datetime) -> Scalar:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value
