"""Facts about a snapshot that several checks share: which certificate the kubelet
serves, which files are live, what "missing" means, and how to word instants.

Every helper is pure. Time conventions used by all checks (so that
:func:`agent.checks.next_change` can return the exact instants): a condition that
starts at an instant ``t`` holds for every ``now >= t`` (expired, expiring soon,
rotation overdue, CSR stale, issue timeout) and a condition that ends at ``t`` holds
for ``now < t`` (not yet valid).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

from agent import kubelet
from agent.kubelet import (
    KUBELET_ROLES,
    ROLE_NAMES,
    ROTATING_ROLES,
    SERVING_ROLES,
    generation_name,
    is_missing,
    served_role,
    updated_name,
)
from agent.model import CertFile, CsrInfo, KeyMatch, Role, Snapshot

# Files of trust anchors: several CAs side by side are normal (a rotation in progress).
BUNDLE_ROLES = frozenset({Role.TRUST_ANCHOR, Role.KUBEADM_CA})


def swap_in_progress(snapshot: Snapshot, role: Role) -> bool:
    """A ``kubelet-<role>-updated.pem`` exists: the kubelet is between steps 3 and 4."""
    wanted = updated_name(role)
    return any(os.path.basename(p) == wanted for p in snapshot.updated_links)


def swap_interrupted(cf: CertFile) -> bool:
    """``-current.pem`` is missing and the certificate was read through ``-updated.pem``
    (the live generation until the kubelet's next start renames the link into place)."""
    return cf.link is not None and os.path.basename(cf.link.path) == updated_name(cf.role)


def in_swap_gap(snapshot: Snapshot) -> bool:
    """Some ``-current.pem`` is missing while its ``-updated.pem`` exists (swap step 3-4)."""
    return any(cf.role in ROTATING_ROLES and (
        swap_interrupted(cf) or (is_missing(cf) and swap_in_progress(snapshot, cf.role)))
        for cf in snapshot.certs)


def kubelet_not_found(snapshot: Snapshot) -> bool:
    """Discovery found no kubelet process, no unit and nothing at the default paths."""
    return snapshot.kubelet is not None and not snapshot.kubelet.found


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


def describe(cf: CertFile) -> str:
    """``kubeadm certificate apiserver (/etc/kubernetes/pki/apiserver.crt)`` or
    ``watched certificate /x.pem``: how messages name a file."""
    if cf.name:
        return f"{ROLE_NAMES[cf.role]} {cf.name} ({cf.path})"
    return f"{ROLE_NAMES[cf.role]} {cf.path}"


def kubelet_owned(cf: CertFile) -> bool:
    """The kubelet's own files (critical when broken), as opposed to watched/anchors."""
    return cf.role in KUBELET_ROLES


def client_rotation_managed(snapshot: Snapshot) -> bool:
    """The kubelet renews its client certificate unless rotateCertificates is false."""
    return kubelet.rotation_managed(Role.CLIENT, snapshot.kubelet_config.rotate_certificates,
                                    snapshot.kubelet_config.server_tls_bootstrap)


def rotation_managed(snapshot: Snapshot, cf: CertFile) -> bool:
    """The kubelet itself renews this certificate in its 70-90 % window."""
    cfg = snapshot.kubelet_config
    return kubelet.rotation_managed(cf.role, cfg.rotate_certificates, cfg.server_tls_bootstrap)


def has_valid_serving_cert(snapshot: Snapshot, now: datetime) -> bool:
    """The served certificate exists, is within its validity, matches its key and is not
    the self-signed fallback while serverTLSBootstrap is on."""
    cf = snapshot.cert(served_role(snapshot))
    if cf is None or cf.leaf is None or cf.key_match is KeyMatch.MISMATCH:
        return False
    if not cf.leaf.not_before <= now < cf.leaf.not_after:
        return False
    return not (cf.self_signed and snapshot.kubelet_config.server_tls_bootstrap is True)


def csr_path(csr: CsrInfo) -> str:
    """A path-like reference kubectl accepts: ``csr/<name>``."""
    return f"csr/{csr.name}"


def history_file(snapshot: Snapshot, role: Role) -> str | None:
    """The newest ``kubelet-<role>-<timestamp>.pem`` in the cert dir, if known."""
    for h in snapshot.history:
        if h.role is role and h.newest:
            return os.path.join(snapshot.cert_dir, generation_name(role, h.newest))
    return None


def client_expiry(snapshot: Snapshot, subject: str = "it") -> str:
    """`` (<subject> expires <instant>)`` for the client certificate, or "" if unknown."""
    client = snapshot.cert(Role.CLIENT)
    if client is None or client.leaf is None:
        return ""
    return f" ({subject} expires {kubelet.iso(client.leaf.not_after)})"
