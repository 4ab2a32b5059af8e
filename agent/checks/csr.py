"""This node's serving CSRs (``kubernetes.io/kubelet-serving``), from ``snapshot.api``.

Each rotation attempt makes a new key and a new CSR, so a node nobody approves leaves a
trail of Pending CSRs and only the NEWEST is still wanted. What counts is the kubelet's
point of view, computed once by :func:`trail` (pure, any signer: the client-renewal
checks use it too):

- the last issue is the newest Issued CSR, or the certificate on disk when it is newer
  (kube-controller-manager deletes issued CSRs after an hour, the certificate stays);
- the newest CSR made after it is the one that counts; the node is *now* waiting only if
  that CSR is Pending, and has been since the first Pending CSR after the last issue
  (earlier when its serving certificate went overdue before that);
- every other Pending CSR is abandoned: history, never a reason for a page.

Findings:
- SERVING_CSR_PENDING: one finding, when the node has waited at least
  ``csr_stale_after``. Critical when the node has no valid serving certificate on disk,
  else a warning.
- SERVING_CSR_SUSPICIOUS: per Pending CSR whose request does not name this node.
- SERVING_CSR_DENIED / SERVING_CSR_FAILED: the CSR that counts is Denied / Failed.
- SERVING_CSR_NOT_ISSUED: the CSR that counts has been Approved without a certificate for
  at least ``issue_timeout`` (since its condition, else since creation); same severity
  rule as PENDING: the node is stuck exactly as if nobody approved.

With ``api.error`` set the last known CSRs are still judged (stale but visible).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import NameOID

from agent import codes
from agent.checks.common import csr_path, has_valid_serving_cert, rotation_managed
from agent.kubelet import SERVING_SIGNER, Sans, duration, iso, names_node, node_user
from agent.model import CsrInfo, CsrState, CsrTrail, Finding, Policy, Role, Severity, Snapshot

SIGNER = SERVING_SIGNER
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


def trail(csrs: Iterable[CsrInfo], signer: str, *, issued_at: datetime | None = None,
          needed_since: datetime | None = None) -> CsrTrail:
    """Where the node stands with ``signer``'s CSRs (pure; see the module docstring).

    ``issued_at``: when the certificate the node holds was issued, if known (its
    notBefore); ``needed_since``: when that certificate went overdue, if it has. CSRs of
    other signers are ignored; ties in creation time are broken by name.
    """
    mine = sorted((c for c in csrs if c.signer == signer), key=lambda c: (c.created, c.name))
    issues = [c.created for c in mine if c.state is CsrState.ISSUED]
    last_issued = max([*issues, *([issued_at] if issued_at else [])], default=None)
    since_issue = [c for c in mine if last_issued is None or c.created > last_issued]
    newest = since_issue[-1] if since_issue else None
    waiting = newest is not None and newest.state is CsrState.PENDING
    pending = tuple(c for c in since_issue if c.state is CsrState.PENDING) if waiting else ()
    since = min([pending[0].created, *([needed_since] if needed_since else [])]
                ) if pending else None
    abandoned = tuple(c for c in mine if c.state is CsrState.PENDING
                      and not (waiting and c is newest))
    return CsrTrail(signer=signer, last_issued=last_issued, newest=newest, waiting=waiting,
                    since=since, pending=pending, abandoned=abandoned)


def serving_trail(snapshot: Snapshot, now: datetime) -> CsrTrail | None:
    """:func:`trail` for this node's serving CSRs (None when offline)."""
    if snapshot.api is None:
        return None
    issued_at, overdue = _serving_cert_times(snapshot)
    return trail(snapshot.api.csrs, SIGNER, issued_at=issued_at,
                 needed_since=overdue if overdue is not None and overdue <= now else None)


def _serving_cert_times(snapshot: Snapshot) -> tuple[datetime | None, datetime | None]:
    """(notBefore, end of the rotation window) of the kubelet's rotated serving cert."""
    cf = snapshot.cert(Role.SERVER)
    if cf is None or cf.leaf is None:
        return None, None
    overdue = cf.leaf.rotation_window_end if rotation_managed(snapshot, cf) else None
    return cf.leaf.not_before, overdue


def _listed(csrs: tuple[CsrInfo, ...]) -> str:
    names = [c.name for c in reversed(csrs)]  # newest first: the likeliest confused
    return ", ".join(names[:MAX_LISTED]) + (
        f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def _pending(snapshot: Snapshot, waited: CsrTrail, now: datetime, policy: Policy
             ) -> Iterator[Finding]:
    newest, since = waited.newest, waited.since
    if newest is None or since is None or now - since < policy.csr_stale_after:
        return
    older = waited.abandoned
    abandoned = (f"; {len(older)} older pending CSR(s) ({_listed(older)}) were abandoned by "
                 "the kubelet: approving them does nothing" if older else "")
    warning = ("; but it looks SUSPICIOUS (see SERVING_CSR_SUSPICIOUS): do not approve it "
               "blindly" if suspicions(newest, snapshot.node_name) else "")
    yield Finding(
        codes.SERVING_CSR_PENDING, _severity(snapshot, now),
        f"serving CSR {newest.name} has been Pending since {iso(newest.created)} "
        f"(the node has waited {duration(now - since)}, since {iso(since)}); it requests "
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


def denied(code: str, kind: str, newest: CsrInfo) -> Finding:
    """The CSR that counts was denied (serving or client renewal alike): the kubelet
    makes a new one, so the fix is the approver's policy."""
    reason = newest.reason or "no reason given"
    return Finding(
        code, Severity.WARNING,
        f"the newest {kind} {newest.name} was denied ({reason}): the kubelet retries with "
        "a new CSR; fix the approver's policy and approve the next one (`kubectl get csr`)",
        csr_path(newest))


def _newest_state(snapshot: Snapshot, newest: CsrInfo, now: datetime, policy: Policy
                  ) -> Iterator[Finding]:
    reason = newest.reason or "no reason given"
    if newest.state is CsrState.DENIED:
        yield denied(codes.SERVING_CSR_DENIED, "serving CSR", newest)
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
    waited = serving_trail(snapshot, now)
    if snapshot.api is None or waited is None:
        return
    yield from _suspicious(snapshot.api.csrs, snapshot.node_name)
    if waited.waiting:
        yield from _pending(snapshot, waited, now, policy)
    elif waited.newest is not None:
        yield from _newest_state(snapshot, waited.newest, now, policy)


def deadlines(snapshot: Snapshot, policy: Policy) -> Iterator[datetime]:
    """When the node's wait becomes stale, and when the CSR that counts, Approved, times out."""
    if snapshot.api is None:
        return
    issued_at, overdue = _serving_cert_times(snapshot)
    waited = trail(snapshot.api.csrs, SIGNER, issued_at=issued_at)
    newest = waited.newest
    if waited.waiting and waited.since is not None:
        yield waited.since + policy.csr_stale_after
        if overdue is not None and overdue < waited.since:  # waiting since overdue, then
            yield overdue + policy.csr_stale_after
    elif newest is not None and newest.state is CsrState.APPROVED:
        yield (newest.state_since or newest.created) + policy.issue_timeout
