"""The cluster side: CSRs, the approver, the signer and kube-controller-manager's clean-up.

Each CSR's life is decided when it is created (the scenario's faults are known in
advance), so its state at any instant is a pure function: created -> Approved (client
renewals: at once when the selfnodeclient RBAC binding exists; serving: by hand after a
delay, or never) -> Issued (when the signer runs; certificates backdated 5 minutes and
valid for the signing duration) ; Pending ones are deleted after 24 h, finished ones
after 1 h (kube-controller-manager's csrcleaner).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import timedelta

from agent import pkigen
from agent.model import CsrInfo, CsrState
from bench.sim.world import EPOCH, HOUR, MINUTE, Scenario, Window, inside, to_datetime

BACKDATE = 5 * MINUTE
PENDING_TTL = 24 * HOUR
FINISHED_TTL = HOUR
AUTO_APPROVE_LAG = 2.0  # seconds: kube-controller-manager's csrapproving controller
SIGNERS = {"client": "kubernetes.io/kube-apiserver-client-kubelet",
           "server": "kubernetes.io/kubelet-serving"}


@dataclass(frozen=True)
class Csr:
    name: str
    role: str
    node: str
    created: float
    approved: float  # inf: never
    issued: float  # inf: never

    def state(self, t: float) -> CsrState | None:
        """The CSR's state at ``t``; None before creation or after clean-up."""
        if t < self.created:
            return None
        if t >= self.issued:
            return CsrState.ISSUED if t < self.issued + FINISHED_TTL else None
        if t >= self.approved:
            return CsrState.APPROVED if t < self.approved + FINISHED_TTL else None
        return CsrState.PENDING if t < self.created + PENDING_TTL else None

    def changes(self) -> tuple[float, ...]:
        """Every instant at which :meth:`state` changes."""
        return tuple(x for x in (self.created, self.approved, self.issued,
                                 self.created + PENDING_TTL, self.approved + FINISHED_TTL,
                                 self.issued + FINISHED_TTL) if not math.isinf(x))

    def info(self, t: float) -> CsrInfo | None:
        state = self.state(t)
        if state is None:
            return None
        since = {CsrState.ISSUED: self.issued, CsrState.APPROVED: self.approved}.get(state)
        return CsrInfo(name=self.name, created=to_datetime(self.created), state=state,
                       username=f"system:node:{self.node}", signer=SIGNERS[self.role],
                       state_since=to_datetime(since) if since is not None else None,
                       request_subject=f"CN=system:node:{self.node},O=system:nodes",
                       request_dns_names=(self.node,), request_ip_addresses=("127.0.0.1",))


def _first_outside(t: float, windows: tuple[Window, ...]) -> float:
    """The first instant >= t outside every window."""
    for a, b in sorted(windows):
        if EPOCH + a <= t < EPOCH + b:
            t = EPOCH + b
    return t


class Cluster:
    """The CA, the approver's policy and every CSR made so far."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.ca = pkigen.cluster_ca(to_datetime(EPOCH - 3 * 365 * 86400))
        self.csrs: list[Csr] = []
        self._created: list[float] = []  # creation instants, increasing (for bisect)
        self._listed: dict[str, tuple[float, float, tuple[CsrInfo, ...]]] = {}

    def _approval(self, role: str, t: float) -> float:
        s = self.scenario
        if role == "client":
            removed = s.client_rbac_removed
            allowed = removed is None or t < EPOCH + removed
            return t + AUTO_APPROVE_LAG if allowed else math.inf
        if s.serving_approval_delay is None:
            return math.inf
        return t + s.serving_approval_delay

    def submit(self, role: str, node: str, t: float) -> Csr:
        """A new CSR; its approval and issue instants follow from the scenario."""
        approved = self._approval(role, t)
        issued = math.inf if math.isinf(approved) else _first_outside(
            approved, self.scenario.signer_down) + 1.0
        csr = Csr(f"csr-{len(self.csrs):06d}", role, node, t, approved, issued)
        self.csrs.append(csr)
        self._created.append(t)
        self._listed.pop(node, None)
        return csr

    def sign(self, csr: Csr) -> pkigen.Issued:
        """The certificate the signer issues for ``csr`` (at ``csr.issued``)."""
        not_before = to_datetime(csr.issued - BACKDATE)
        lifetime = timedelta(seconds=self.scenario.signer_duration + BACKDATE)
        maker = pkigen.kubelet_client if csr.role == "client" else pkigen.kubelet_server
        return maker(self.ca, csr.node, not_before, lifetime)

    def reachable(self, t: float) -> bool:
        return not inside(t, self.scenario.api_down)

    def serving_csrs(self, node: str, t: float) -> tuple[CsrInfo, ...]:
        """This node's serving CSRs as the API server lists them at ``t``."""
        cached = self._listed.get(node)
        if cached is not None and cached[0] <= t < cached[1]:
            return cached[2]
        first = bisect.bisect_left(self._created, t - PENDING_TTL - 2 * FINISHED_TTL)
        mine = [c for c in self.csrs[first:] if c.role == "server" and c.node == node]
        listed = tuple(i for i in (c.info(t) for c in mine) if i is not None)
        until = min((x for c in mine for x in c.changes() if x > t), default=math.inf)
        self._listed[node] = (t, until, listed)
        return listed
