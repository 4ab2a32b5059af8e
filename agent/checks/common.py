"""Facts about a snapshot that several checks share: which certificate the kubelet
serves, which files are live, what "missing" means, and how to word instants.

Every helper is pure. Time conventions used by all checks (so that
:func:`agent.checks.next_change` can return the exact instants): a condition that
starts at an instant ``t`` holds for every ``now >= t`` (expired, expiring soon,
rotation overdue, CSR stale, issue timeout) and a condition that ends at ``t`` holds
for ``now < t`` (not yet valid).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from agent.model import (
    CertFile,
    CsrInfo,
    KeyMatch,
    LinkProblem,
    ProbeOutcome,
    ReadProblem,
    Role,
    Snapshot,
)
from agent.sources.certdir import updated_name

ROLE_NAMES: dict[Role, str] = {
    Role.CLIENT: "kubelet client certificate",
    Role.SERVER: "kubelet serving certificate",
    Role.SELF_SIGNED: "kubelet self-signed serving certificate",
    Role.TLS_CERT_FILE: "kubelet tlsCertFile",
    Role.TRUST_ANCHOR: "trust anchor",
    Role.WATCHED: "watched certificate",
    Role.SERVED: "certificate served by the kubelet on",
    Role.KUBECONFIG_CLIENT: "client certificate of the kubelet's kubeconfig",
    Role.KUBECONFIG_CA: "CA of the kubelet's kubeconfig",
}
KUBELET_ROLES = frozenset({Role.CLIENT, Role.SERVER, Role.SELF_SIGNED, Role.TLS_CERT_FILE,
                           Role.KUBECONFIG_CLIENT})
SERVING_ROLES = frozenset({Role.SERVER, Role.SELF_SIGNED, Role.TLS_CERT_FILE})


def iso(at: datetime) -> str:
    """``2025-01-02T03:04:05Z``: an instant in UTC, to the second."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(span: timedelta) -> str:
    """A human span with its two largest units: ``3d 4h``, ``4h 12m``, ``12m 5s``, ``42s``."""
    seconds = max(0, int(abs(span.total_seconds())))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def node_identity(node: str) -> str:
    return f"system:node:{node}"


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def names_node(node: str, dns_names: tuple[str, ...], ip_addresses: tuple[str, ...]) -> bool:
    """True when the node name is among the DNS SANs (or, for an IP node name, the IP SANs)."""
    if is_ip(node):
        wanted = ipaddress.ip_address(node)
        return any(is_ip(a) and ipaddress.ip_address(a) == wanted for a in ip_addresses)
    return node.lower().rstrip(".") in {n.lower().rstrip(".") for n in dns_names}


def swap_in_progress(snapshot: Snapshot, role: Role) -> bool:
    """A ``kubelet-<role>-updated.pem`` exists: the kubelet is between steps 3 and 4."""
    wanted = updated_name(role)
    return any(os.path.basename(p) == wanted for p in snapshot.updated_links)


def in_swap_gap(snapshot: Snapshot) -> bool:
    """Some ``-current.pem`` is missing while its ``-updated.pem`` exists (swap step 3-4)."""
    return any(cf.role in (Role.CLIENT, Role.SERVER) and is_missing(cf)
               and swap_in_progress(snapshot, cf.role) for cf in snapshot.certs)


def is_missing(cf: CertFile) -> bool:
    """No entry at all: a MISSING link, or a plain path that does not exist."""
    if cf.link is not None:
        return cf.link.problem is LinkProblem.MISSING
    return cf.leaf is None and cf.read_error is not None and (
        cf.read_error.problem is ReadProblem.NOT_FOUND)


def served_role(snapshot: Snapshot) -> Role:
    """The certificate the kubelet serves on :10250.

    serverTLSBootstrap true -> the rotated ``kubelet-server-current.pem``; false (also
    when a config that was read cleanly leaves it out: the kubelet's default) ->
    tlsCertFile if set, else the self-signed ``kubelet.crt``. When the kubelet config is
    unknown, a present ``kubelet-server-current.pem``, or a serving port that answers with
    ``internal_error`` (only a bootstrapping kubelet does), means bootstrap is in use.
    """
    cfg = snapshot.kubelet_config
    if cfg.server_tls_bootstrap is True:
        return Role.SERVER
    config_known = cfg.present and cfg.error is None
    if cfg.server_tls_bootstrap is None and not config_known:
        server = snapshot.cert(Role.SERVER)
        if server is not None and not is_missing(server):
            return Role.SERVER
        probe = snapshot.probe
        if probe is not None and probe.outcome is ProbeOutcome.INTERNAL_ERROR:
            return Role.SERVER
    return Role.TLS_CERT_FILE if cfg.tls_cert_file else Role.SELF_SIGNED


def served_file(snapshot: Snapshot) -> CertFile | None:
    """The file the kubelet should serve, when it was read (not stale)."""
    cf = snapshot.cert(served_role(snapshot))
    if cf is None or cf.leaf is None or cf.stale_since is not None:
        return None
    return cf


def served_matches_file(snapshot: Snapshot, served: CertFile) -> bool:
    """The served leaf is the file's leaf (SHA-256 fingerprint)."""
    cf = served_file(snapshot)
    return (cf is not None and cf.leaf is not None and served.leaf is not None
            and cf.leaf.fingerprint_sha256 == served.leaf.fingerprint_sha256)


def judged_certs(snapshot: Snapshot) -> Iterator[CertFile]:
    """Every file the checks judge: client, the served certificate, watched files and
    trust anchors. Serving files the kubelet does not serve are leftovers, and history
    is never judged."""
    served = served_role(snapshot)
    for cf in snapshot.certs:
        if cf.role in SERVING_ROLES and cf.role is not served:
            continue
        yield cf
    yield from snapshot.anchors


def kubelet_owned(cf: CertFile) -> bool:
    """The kubelet's own files (critical when broken), as opposed to watched/anchors."""
    return cf.role in KUBELET_ROLES


def client_rotation_managed(snapshot: Snapshot) -> bool:
    """The kubelet renews its client certificate unless rotateCertificates is false."""
    return snapshot.kubelet_config.rotate_certificates is not False


def rotation_managed(snapshot: Snapshot, cf: CertFile) -> bool:
    """The kubelet itself renews this certificate in its 70-90 % window."""
    if cf.role is Role.CLIENT:
        return client_rotation_managed(snapshot)
    if cf.role is Role.SERVER:
        return snapshot.kubelet_config.server_tls_bootstrap is True
    return False


def has_valid_serving_cert(snapshot: Snapshot, now: datetime) -> bool:
    """The served certificate exists, is within its validity, matches its key and is not
    the self-signed fallback while serverTLSBootstrap is on."""
    cf = snapshot.cert(served_role(snapshot))
    if cf is None or cf.leaf is None or cf.key_match is KeyMatch.MISMATCH:
        return False
    if not cf.leaf.not_before <= now < cf.leaf.not_after:
        return False
    return not (cf.self_signed and snapshot.kubelet_config.server_tls_bootstrap is True)


def newest_csr(csrs: tuple[CsrInfo, ...]) -> CsrInfo | None:
    """The CSR the kubelet made last (ties broken by name, deterministically)."""
    return max(csrs, key=lambda c: (c.created, c.name), default=None)


def csr_path(csr: CsrInfo) -> str:
    """A path-like reference kubectl accepts: ``csr/<name>``."""
    return f"csr/{csr.name}"


def history_file(snapshot: Snapshot, role: Role) -> str | None:
    """The newest ``kubelet-<role>-<timestamp>.pem`` in the cert dir, if known."""
    for h in snapshot.history:
        if h.role is role and h.newest:
            return os.path.join(snapshot.cert_dir, f"kubelet-{role.value}-{h.newest}.pem")
    return None
