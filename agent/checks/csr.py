"""This node's serving CSRs (``kubernetes.io/kubelet-serving``), from ``snapshot.api``.

Each rotation attempt makes a new key and a new CSR, so a node nobody approves leaves a
trail of Pending CSRs and only the NEWEST is still wanted. Hence:

- SERVING_CSR_PENDING: one finding, when the newest CSR is Pending and some Pending CSR
  is at least ``csr_stale_after`` old. Older Pending ones behind a newer CSR in another
  state are abandoned and raise nothing. Critical when the node has no valid serving
  certificate on disk, else a warning.
- SERVING_CSR_SUSPICIOUS: per Pending CSR whose request does not name this node.
- SERVING_CSR_DENIED / SERVING_CSR_FAILED: the newest CSR is Denied / Failed (warning).
- SERVING_CSR_NOT_ISSUED: the newest CSR has been Approved without a certificate for at
  least ``issue_timeout`` (since its condition, else since creation); same severity rule
  as PENDING: the node is stuck exactly as if nobody approved.

With ``api.error`` set the last known CSRs are still judged (stale but visible).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from agent import codes
from agent.checks.common import csr_path, has_valid_serving_cert, newest_csr
from agent.kubelet import Sans, duration, iso, names_node, node_user
from agent.model import CsrInfo, CsrState, Finding, Policy, Severity, Snapshot

SIGNER = "kubernetes.io/kubelet-serving"
MAX_LISTED = 5  # keep the one-line message readable on nodes with a long trail


def _subject_is(subject: str, node: str) -> bool:
    """Structural RFC 4514 comparison (attribute order and escaping do not matter)."""
    try:
        name = x509.Name.from_rfc4514_string(subject)
    except ValueError:
        return False
    got = sorted((a.oid.dotted_string, str(a.value)) for a in name)
    wanted = sorted([(NameOID.COMMON_NAME.dotted_string, node_user(node)),
                     (NameOID.ORGANIZATION_NAME.dotted_string, "system:nodes")])
    return got == wanted


def suspicions(csr: CsrInfo, node: str) -> list[str]:
    """Why a serving CSR should not be approved blindly (empty: it looks right)."""
    reasons = []
    if csr.request_error:
        reasons.append(f"its request cannot be decoded ({csr.request_error})")
    if node and csr.request_subject is not None and not _subject_is(csr.request_subject, node):
        reasons.append(f"subject {csr.request_subject!r} is not "
                       f"CN={node_user(node)},O=system:nodes")
    if csr.request_other_sans:
        reasons.append(f"it asks for {', '.join(csr.request_other_sans)}")
    if node and csr.request_error is None and not names_node(
            node, csr.request_dns_names, csr.request_ip_addresses):
        reasons.append(f"none of its names is {node}")
    return reasons


def _sans(csr: CsrInfo) -> str:
    names = Sans(csr.request_dns_names, csr.request_ip_addresses, csr.request_other_sans)
    return ", ".join(names.labels()) or "no names"


def _severity(snapshot: Snapshot, now: datetime) -> Severity:
    return Severity.WARNING if has_valid_serving_cert(snapshot, now) else Severity.CRITICAL


def _pending(snapshot: Snapshot, csrs: tuple[CsrInfo, ...], newest: CsrInfo, now: datetime,
             policy: Policy) -> Iterator[Finding]:
    pending = sorted((c for c in csrs if c.state is CsrState.PENDING),
                     key=lambda c: (c.created, c.name))
    if not any(now - c.created >= policy.csr_stale_after for c in pending):
        return
    older = [c.name for c in pending if c is not newest]
    older.reverse()  # newest first: the most recently abandoned are the likeliest confused
    listed = ", ".join(older[:MAX_LISTED]) + (
        f" and {len(older) - MAX_LISTED} more" if len(older) > MAX_LISTED else "")
    abandoned = (f"; {len(older)} older pending CSR(s) ({listed}) were abandoned by the "
                 "kubelet: approving them does nothing" if older else "")
    warning = ("; but it looks SUSPICIOUS (see SERVING_CSR_SUSPICIOUS): do not approve it "
               "blindly" if suspicions(newest, snapshot.node_name) else "")
    yield Finding(
        codes.SERVING_CSR_PENDING, _severity(snapshot, now),
        f"serving CSR {newest.name} has been Pending since {iso(newest.created)} "
        f"(the node has waited {duration(now - pending[0].created)}); it requests "
        f"{_sans(newest)}: approve it with `kubectl certificate approve {newest.name}`"
        f"{warning}{abandoned}", None)


def _suspicious(csrs: tuple[CsrInfo, ...], node: str) -> Iterator[Finding]:
    for csr in csrs:
        reasons = suspicions(csr, node)
        if csr.state is CsrState.PENDING and reasons:
            yield Finding(
                codes.SERVING_CSR_SUSPICIOUS, Severity.WARNING,
                f"pending serving CSR {csr.name} from {csr.username or 'unknown user'} "
                f"({_sans(csr)}): {'; '.join(reasons)}; do not approve blindly: inspect it "
                f"(`kubectl get csr {csr.name} -o yaml`) and deny it if it is not this "
                f"kubelet's (`kubectl certificate deny {csr.name}`)", csr_path(csr))


def _newest_state(snapshot: Snapshot, newest: CsrInfo, now: datetime, policy: Policy
                  ) -> Iterator[Finding]:
    reason = newest.reason or "no reason given"
    if newest.state is CsrState.DENIED:
        yield Finding(
            codes.SERVING_CSR_DENIED, Severity.WARNING,
            f"the newest serving CSR {newest.name} was denied ({reason}): the kubelet retries "
            "with a new CSR; fix the approver's policy and approve the next one "
            "(`kubectl get csr`)", csr_path(newest))
    elif newest.state is CsrState.FAILED:
        yield Finding(
            codes.SERVING_CSR_FAILED, Severity.WARNING,
            f"the signer failed the newest serving CSR {newest.name} ({reason}): check "
            f"kube-controller-manager's logs, or your custom signer for {SIGNER}; the kubelet "
            "retries with a new CSR", csr_path(newest))
    elif newest.state is CsrState.APPROVED:
        since = newest.state_since or newest.created
        if now - since >= policy.issue_timeout:
            yield Finding(
                codes.SERVING_CSR_NOT_ISSUED, _severity(snapshot, now),
                f"serving CSR {newest.name} was approved at {iso(since)} "
                f"({duration(now - since)} ago) but no certificate was issued: no signer runs "
                f"for {SIGNER}; kube-controller-manager needs --cluster-signing-cert-file and "
                "--cluster-signing-key-file, or the custom signer is down", csr_path(newest))


def check(snapshot: Snapshot, now: datetime, policy: Policy) -> Iterator[Finding]:
    """CSR findings from the last known API data (nothing when offline)."""
    if snapshot.api is None:
        return
    csrs = snapshot.api.csrs
    yield from _suspicious(csrs, snapshot.node_name)
    newest = newest_csr(csrs)
    if newest is None:
        return
    if newest.state is CsrState.PENDING:
        yield from _pending(snapshot, csrs, newest, now, policy)
    else:
        yield from _newest_state(snapshot, newest, now, policy)


def deadlines(snapshot: Snapshot, policy: Policy) -> Iterator[datetime]:
    """When a Pending CSR becomes stale and an Approved one times out."""
    if snapshot.api is None:
        return
    for csr in snapshot.api.csrs:
        if csr.state is CsrState.PENDING:
            yield csr.created + policy.csr_stale_after
        elif csr.state is CsrState.APPROVED:
            yield (csr.state_since or csr.created) + policy.issue_timeout
