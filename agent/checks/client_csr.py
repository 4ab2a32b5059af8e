"""This node's client-certificate renewals (``kubernetes.io/kube-apiserver-client-kubelet``).

The same kubelet's-eye view as the serving CSRs (:func:`agent.checks.csr.trail`: the
newest CSR after the last issue counts, the rest are abandoned), over
``api.client_csrs`` and the client certificate on disk:

- CLIENT_CSR_PENDING: the node has waited ``csr_stale_after`` for its renewal;
- CLIENT_CSR_DENIED: the renewal that counts was denied;
- CLIENT_CSR_NOT_ISSUED: it was approved ``issue_timeout`` ago without a certificate, or
  the signer failed it.

A warning while the client certificate on disk is valid; critical once it is not (the
node has dropped out).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from agent import codes
from agent.checks.common import csr_path, rotation_managed
from agent.checks.csr import denied, trail
from agent.kubelet import CLIENT_SIGNER, duration, iso
from agent.model import CsrInfo, CsrState, CsrTrail, Finding, Policy, Role, Severity, Snapshot

APPROVAL = ("kube-controller-manager auto-approves it only if its csrapproving controller "
            "runs and group system:nodes may create certificatesigningrequests/selfnodeclient "
            "(see CLIENT_RENEWAL_NOT_AUTHORIZED)")


def _severity(snapshot: Snapshot, now: datetime) -> Severity:
    cf = snapshot.cert(Role.CLIENT)
    valid = cf is not None and cf.leaf is not None and cf.leaf.not_before <= now < (
        cf.leaf.not_after)
    return Severity.WARNING if valid else Severity.CRITICAL


def client_trail(snapshot: Snapshot, now: datetime | None) -> CsrTrail | None:
    """:func:`trail` for this node's client renewals (None when offline); with ``now``,
    waiting counts from when the client certificate went overdue, if earlier."""
    if snapshot.api is None:
        return None
    cf = snapshot.cert(Role.CLIENT)
    issued_at = overdue = None
    if cf is not None and cf.leaf is not None:
        issued_at = cf.leaf.not_before
        end = cf.leaf.rotation_window_end
        if now is not None and rotation_managed(snapshot, cf) and end <= now:
            overdue = end
    return trail(snapshot.api.client_csrs, CLIENT_SIGNER, issued_at=issued_at,
                 needed_since=overdue)


def _pending(snapshot: Snapshot, waited: CsrTrail, now: datetime,
             policy: Policy) -> Iterator[Finding]:
    newest, since = waited.newest, waited.since
    if newest is None or since is None or now - since < policy.csr_stale_after:
        return
    yield Finding(
        codes.CLIENT_CSR_PENDING, _severity(snapshot, now),
        f"client-certificate renewal CSR {newest.name} has been Pending since "
        f"{iso(newest.created)} (the node has waited {duration(now - since)}): {APPROVAL}; "
        f"approve it with `kubectl certificate approve {newest.name}`", None)


def _settled(snapshot: Snapshot, newest: CsrInfo, now: datetime,
             policy: Policy) -> Iterator[Finding]:
    reason = newest.reason or "no reason given"
    if newest.state is CsrState.DENIED:
        yield denied(codes.CLIENT_CSR_DENIED, "client-certificate renewal CSR", newest)
        return
    since = newest.state_since or newest.created
    if newest.state is CsrState.FAILED or (
            newest.state is CsrState.APPROVED and now - since >= policy.issue_timeout):
        what = (f"the signer failed it ({reason})" if newest.state is CsrState.FAILED else
                f"it was approved at {iso(since)} ({duration(now - since)} ago) but no "
                "certificate was issued")
        yield Finding(
            codes.CLIENT_CSR_NOT_ISSUED, _severity(snapshot, now),
            f"client-certificate renewal CSR {newest.name}: {what}: no signer runs for "
            f"{CLIENT_SIGNER}; kube-controller-manager needs --cluster-signing-cert-file and "
            "--cluster-signing-key-file (and its csrsigning controller)", csr_path(newest))


def check(snapshot: Snapshot, now: datetime, policy: Policy) -> Iterator[Finding]:
    waited = client_trail(snapshot, now)
    if waited is None:
        return
    if waited.waiting:
        yield from _pending(snapshot, waited, now, policy)
    elif waited.newest is not None:
        yield from _settled(snapshot, waited.newest, now, policy)


def deadlines(snapshot: Snapshot, policy: Policy) -> Iterator[datetime]:
    """When the wait becomes stale and when the renewal that counts, Approved, times out."""
    waited = client_trail(snapshot, None)
    if waited is None:
        return
    newest = waited.newest
    if waited.waiting and waited.since is not None:
        yield waited.since + policy.csr_stale_after
    elif newest is not None and newest.state is CsrState.APPROVED:
        yield (newest.state_since or newest.created) + policy.issue_timeout
