"""The agent's real code at a virtual instant: snapshot, checks, collector exposition.

:class:`AgentSim` does what the daemon does on each evaluation, with the virtual ``now``:
``build_snapshot`` on the node's real temp dir (only when the kubelet changed a file;
otherwise the last snapshot with fresh API data), ``merge_stale``, ``judge`` and the real
collector's text exposition (``render``), parsed back with prometheus_client's parser.
The API thread is replaced by the simulated API server's answer (``ApiState``): this
node's serving CSRs, or an UNREACHABLE error that grows by one failure a minute.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime

from agent.checks import DEFAULT_POLICY, judge, next_change
from agent.config import SourceSettings
from agent.model import (
    AgentState,
    AgentStats,
    ApiError,
    ApiProblem,
    ApiState,
    CsrInfo,
    Evaluation,
    Snapshot,
)
from agent.sinks import metrics
from agent.snapshot import build_snapshot, merge_stale
from bench.sim.cluster import Cluster
from bench.sim.kubelet import Kubelet
from bench.sim.series import SeriesKey, parse_exposition
from bench.sim.world import to_datetime

SERVER = "https://kube-apiserver.sim:6443"
API_POLL = 60.0  # the agent's --csr-interval


def _failures(api: ApiState) -> int:
    """Consecutive API failures, capped where the checks stop caring."""
    if api.error is None:
        return 0
    return min(api.error.consecutive_failures, DEFAULT_POLICY.api_failures_before_unreachable)


class AgentSim:
    """One node's agent; ``evaluate(t)`` returns what its exposition says at ``t``."""

    def __init__(self, kubelet: Kubelet, cluster: Cluster, keep: frozenset[str],
                 labels: dict[str, str]) -> None:
        self.kubelet = kubelet
        self.cluster = cluster
        self.keep = keep
        self.labels = labels
        root = kubelet.root
        watch = root / "watch"
        self.sources = SourceSettings(
            cert_dir=kubelet.cert_dir, kubelet_config=root / "config.yaml",
            watch_paths=(watch,) if watch.exists() else (), node_name=kubelet.node)
        self.started: float | None = None
        self.skew = kubelet.scenario.clock_skew
        self.evaluations = 0
        self._snapshot: Snapshot | None = None
        self._api: ApiState | None = None
        self._csrs: tuple[CsrInfo, ...] = ()
        self._down_since: float | None = None
        self._cache: tuple[object, dict[SeriesKey, float]] | None = None
        self.last: Evaluation | None = None
        self._due: float | None = None
        self._csrs_seen: tuple[CsrInfo, ...] = ()
        self._failures_seen = 0

    def clock(self, t: float) -> float:
        """The node's clock at true instant ``t`` (the agent reads only this one)."""
        return t + self.skew

    def start(self, t: float) -> None:
        self.started = self.clock(t)
        self._snapshot = None
        self._cache = None
        self.kubelet.changed = True

    def _api_state(self, t: float) -> ApiState:
        if self.cluster.reachable(t):
            self._down_since = None
            self._csrs = self.cluster.serving_csrs(self.kubelet.node, t)
            return ApiState(SERVER, last_success=to_datetime(self.clock(t)), csrs=self._csrs,
                            identity_username=f"system:node:{self.kubelet.node}",
                            identity_groups=("system:nodes", "system:authenticated"))
        if self._down_since is None:
            self._down_since = t
        failures = 1 + int((t - self._down_since) // API_POLL)
        last = self._api.last_success if self._api is not None else None
        return ApiState(SERVER, last_success=last, csrs=self._csrs,
                        error=ApiError(ApiProblem.UNREACHABLE, "connect timed out",
                                       consecutive_failures=failures,
                                       since=to_datetime(self._down_since)))

    def needs_evaluation(self, t: float) -> bool:
        """False when nothing the verdict depends on can have changed since the last one:
        no file changed, same API answer, and ``next_change`` not reached (its contract)."""
        if self._snapshot is None or self.kubelet.changed or self._due is None:
            return True
        api = self._api_state(t)
        same_api = api.csrs == self._csrs_seen and _failures(api) == self._failures_seen
        return not same_api or self.clock(t) >= self._due

    def evaluate(self, t: float) -> dict[SeriesKey, float]:
        now = to_datetime(self.clock(t))
        self._api = self._api_state(t)
        self._csrs_seen, self._failures_seen = self._api.csrs, _failures(self._api)
        if self._snapshot is None or self.kubelet.changed:
            fresh = build_snapshot(self.sources, now, self._api)
            self._snapshot = merge_stale(self._snapshot, fresh, now)
            self.kubelet.changed = False
        else:
            self._snapshot = replace(self._snapshot, taken_at=now, api=self._api)
        evaluation = judge(self._snapshot, now)
        self.last = evaluation
        self.evaluations += 1
        key = (self._snapshot.certs, self._snapshot.anchors, evaluation.findings,
               self._csrs, self._api.error is None)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, self._render(evaluation, now))
        samples = dict(self._cache[1])
        for name, labels in list(samples):
            if name == metrics.LAST_EVALUATION.name:
                samples[(name, labels)] = self.clock(t)
        return samples

    def _render(self, evaluation: Evaluation, now: datetime) -> dict[SeriesKey, float]:
        started = to_datetime(self.started) if self.started is not None else None
        state = AgentState(evaluation, AgentStats(started_at=started,
                                                  evaluations_total=self.evaluations,
                                                  last_evaluation=now))
        return parse_exposition(metrics.render(state).decode(), self.keep, self.labels)

    def next_change(self, t: float) -> float | None:
        if self._snapshot is None:
            return None
        at = next_change(self._snapshot, to_datetime(self.clock(t)))
        self._due = at.timestamp() if at is not None else math.inf
        return at.timestamp() - self.skew if at is not None else None  # back to true time
