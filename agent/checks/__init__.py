"""Pure checks: a snapshot judged at an instant under a policy gives findings.

No I/O, no clock: ``now`` is a parameter. Each module judges one concern and yields
:class:`~agent.model.Finding`; :func:`evaluate` gathers them, keeps the worst of any
duplicate ``(code, path)`` and sorts them worst first (then code, path, message) so the
result is deterministic. :func:`next_change` tells a daemon when to look again although
no file changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from agent.checks import (
    apiserver,
    client_csr,
    csr,
    expiry,
    files,
    identity,
    kubeconfig,
    lifeline,
    rotation,
    served,
)
from agent.checks.common import kubelet_not_found
from agent.model import Evaluation, Finding, Policy, Snapshot

Check = Callable[[Snapshot, datetime, Policy], Iterable[Finding]]
Deadlines = Callable[[Snapshot, Policy], Iterable[datetime]]

CHECKS: tuple[Check, ...] = (
    files.check,
    expiry.check,
    rotation.check,
    identity.check,
    csr.check,
    client_csr.check,
    apiserver.check,
    served.check,
    kubeconfig.check,
    lifeline.check,
)
DEADLINES: tuple[Deadlines, ...] = (expiry.deadlines, rotation.deadlines, csr.deadlines,
                                    client_csr.deadlines, served.deadlines)
DEFAULT_POLICY = Policy()  # frozen, so one shared default is safe


def sort_key(f: Finding) -> tuple[int, str, str, str]:
    """Worst first, then by code, path and message."""
    return (-int(f.severity), f.code, f.path or "", f.message)


def evaluate(snapshot: Snapshot, now: datetime,
             policy: Policy = DEFAULT_POLICY) -> tuple[Finding, ...]:
    """Every finding about ``snapshot`` at ``now``, worst first, deterministic."""
    worst: dict[tuple[str, str | None], Finding] = {}
    # A host without a kubelet has nothing of the kubelet's to judge: KUBELET_NOT_FOUND
    # alone (files.check), never a missing certificate or a silent serving port.
    checks = (files.check,) if kubelet_not_found(snapshot) else CHECKS
    for check in checks:
        for f in check(snapshot, now, policy):
            key = (f.code, f.path)
            if key not in worst or sort_key(f) < sort_key(worst[key]):
                worst[key] = f
    return tuple(sorted(worst.values(), key=sort_key))


def judge(snapshot: Snapshot, now: datetime, policy: Policy = DEFAULT_POLICY) -> Evaluation:
    """The snapshot judged at ``now``: findings plus the overall status."""
    trails = (csr.serving_trail(snapshot, now), client_csr.client_trail(snapshot, now))
    return Evaluation(snapshot=snapshot, now=now, findings=evaluate(snapshot, now, policy),
                      csr_trails=tuple(t for t in trails if t is not None))


def next_change(snapshot: Snapshot, now: datetime,
                policy: Policy = DEFAULT_POLICY) -> datetime | None:
    """The earliest instant after ``now`` at which a verdict can change by itself.

    Candidates: each live leaf's notBefore, warning and critical threshold crossings and
    notAfter; the end of each kubelet-managed rotation window; each Pending CSR becoming
    stale and each Approved CSR's issue timeout. A finding that starts at an instant holds
    from that very instant on, so evaluating at the returned instant shows the change.
    None when nothing will change without new input.
    """
    future = [t for deadlines in DEADLINES for t in deadlines(snapshot, policy) if t > now]
    return min(future, default=None)
