"""The kubelet's own rotation: ROTATION_OVERDUE and ROTATION_DISABLED.

The kubelet draws its rotation deadline uniformly in ``[nb + 0.7 T, nb + 0.9 T]``;
nobody outside it can know the instant, so only the end of the window is judged: from
``nb + 0.9 T`` on (inclusive) until expiry (then it is CERT_EXPIRED), a certificate the
kubelet rotates itself and still serves as current means rotation is failing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from agent import codes
from agent.checks.common import client_expiry, rotation_managed
from agent.kubelet import ROLE_NAMES, ROTATING_ROLES, duration, iso
from agent.model import (
    DEFAULT_SOURCE,
    CertFile,
    CertInfo,
    Finding,
    Policy,
    Severity,
    Snapshot,
)


def _managed(snapshot: Snapshot) -> Iterator[tuple[CertFile, CertInfo]]:
    """Client and server files the kubelet renews itself, with the leaf to judge."""
    for role in ROTATING_ROLES:
        cf = snapshot.cert(role)
        if cf is not None and cf.leaf is not None and rotation_managed(snapshot, cf):
            yield cf, cf.leaf


def overdue(snapshot: Snapshot, now: datetime) -> Iterator[Finding]:
    """ROTATION_OVERDUE for each managed certificate past 90 % of its life, not expired."""
    for cf, leaf in _managed(snapshot):
        end = leaf.rotation_window_end
        if end <= now < leaf.not_after:
            yield Finding(
                codes.ROTATION_OVERDUE, Severity.WARNING,
                f"the kubelet should have rotated its {ROLE_NAMES[cf.role]} {cf.path} by "
                f"{iso(end)} (window {iso(leaf.rotation_window_start)} to {iso(end)}, "
                f"{duration(now - end)} ago; expires {iso(leaf.not_after)}): look in "
                "`journalctl -u kubelet` for \"certificate request was not signed\" and check "
                "this node's CSRs (`kubectl get csr`)",
                cf.path)


def disabled(snapshot: Snapshot) -> Iterator[Finding]:
    """ROTATION_DISABLED when the kubelet config says rotateCertificates: false."""
    cfg = snapshot.kubelet_config
    if cfg.rotate_certificates is not False:
        return
    expires = client_expiry(snapshot)
    where = f"in {cfg.path}" if cfg.path else "(no kubelet config)"
    if snapshot.kubelet is not None:
        source = snapshot.kubelet.rotate_certificates.source
        where = "by default (neither a flag nor the config sets it)" \
            if source == DEFAULT_SOURCE else f"({source})"
    yield Finding(
        codes.ROTATION_DISABLED, Severity.WARNING,
        f"rotateCertificates is false {where}: the kubelet will not renew its client "
        f"certificate{expires}; set rotateCertificates: true in the kubelet config (or "
        "--rotate-certificates) and restart the kubelet",
        cfg.path)


def check(snapshot: Snapshot, now: datetime, policy: Policy) -> Iterator[Finding]:
    yield from overdue(snapshot, now)
    yield from disabled(snapshot)


def deadlines(snapshot: Snapshot, policy: Policy) -> Iterator[datetime]:
    """The end of each managed certificate's rotation window."""
    for _, leaf in _managed(snapshot):
        yield leaf.rotation_window_end
