"""Play a scenario on the virtual clock: kubelet, cluster and agent, instant by instant.

The instants that matter: every 5 minutes (the daemon's idle re-evaluation,
``MAX_IDLE_SECONDS``), each instant the agent's ``next_change`` names, each kubelet
rotation attempt and certificate arrival, each CSR transition and each fault boundary.
At each one the kubelet plays what is due, then the agent evaluates with its real code
and publishes; the :class:`~bench.sim.series.SeriesStore` records what Prometheus would
have scraped (scrape mode: the agent's /metrics plus ``up``; textfile mode: the last file
node_exporter re-serves, which outlives a dead agent).
"""

from __future__ import annotations

import heapq
import math
import random
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from agent.sinks.metrics import LAST_EVALUATION as _LAST
from bench.sim.agent import AgentSim
from bench.sim.cluster import Cluster
from bench.sim.kubelet import Kubelet
from bench.sim.series import SeriesKey, SeriesStore
from bench.sim.world import EPOCH, MINUTE, Scenario, inside

TICK = 5 * MINUTE  # the daemon re-evaluates at least this often
LAST_EVALUATION = _LAST.name
JOBS = {"scrape": "kubelet-cert-agent", "textfile": "node"}


@dataclass
class NodeRun:
    """What happened on one node: the truth the oracle scores against."""

    name: str
    kubelet: Kubelet
    agent_evaluations: int = 0


def _boundaries(s: Scenario) -> list[float]:
    edges: list[float] = []
    for windows in (s.kubelet_down, s.agent_down, s.api_down, s.signer_down, s.textfile_full):
        for a, b in windows:
            edges += [EPOCH + a, EPOCH + b]
    for one in (s.client_rbac_removed, s.kill_kubelet_mid_swap):
        if one is not None:
            edges.append(EPOCH + one)
    return edges


def _around_deadline(s: Scenario, kubelet: Kubelet) -> Scenario:
    """Fault windows given relative to the first client rotation deadline, made absolute."""
    deadline = kubelet.managers["client"].deadline - EPOCH
    if s.signer_down_around is not None:
        a, b = s.signer_down_around
        s = replace(s, signer_down=(*s.signer_down, (deadline + a, deadline + b)))
    if s.kubelet_down_around is not None:
        a, b = s.kubelet_down_around
        s = replace(s, kubelet_down=(*s.kubelet_down, (deadline + a, deadline + b)))
    return s


def _up(job: str, instance: str, scenario: str, value: float) -> dict[SeriesKey, float]:
    labels = (("instance", instance), ("job", job), ("scenario", scenario))
    return {("up", labels): value}


def simulate(s: Scenario, keep: frozenset[str], store: SeriesStore
             ) -> tuple[Scenario, list[NodeRun]]:
    """Run ``s`` and record its series in ``store``; returns the scenario with every
    fault window absolute, and the nodes' truth."""
    workdir = Path(tempfile.mkdtemp(prefix=f"sim-{s.name}-"))
    try:
        return _simulate(s, keep, store, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _setup(s: Scenario, keep: frozenset[str], workdir: Path
           ) -> tuple[Scenario, Cluster, list[NodeRun], list[AgentSim]]:
    cluster = Cluster(s)
    rng = random.Random(s.seed)
    runs = []
    for i in range(s.nodes):
        name = f"{s.node_prefix}-{i:03d}"
        kubelet = Kubelet(s, cluster, workdir / name, name, random.Random(rng.random()))
        kubelet.install()
        runs.append(NodeRun(name, kubelet))
    s = _around_deadline(s, runs[0].kubelet)
    cluster.scenario = s
    agents = []
    for run in runs:
        run.kubelet.scenario = s
        labels = {"instance": run.name, "job": JOBS[s.collection], "scenario": s.name}
        agents.append(AgentSim(run.kubelet, cluster, keep, labels))
    return s, cluster, runs, agents


@dataclass
class _Node:
    """One node's kubelet and agent played together at each instant."""

    s: Scenario
    run: NodeRun
    agent: AgentSim
    store: SeriesStore
    agent_was_up: bool = False
    unwritten: bool = False  # a textfile write failed: the next publication is complete

    def play(self, t: float, due: list[float]) -> None:
        """Everything due at ``t``; pushes the instants that then matter onto ``due``."""
        s, kubelet, agent = self.s, self.run.kubelet, self.agent
        kubelet.set_up(not inside(t, s.kubelet_down) and t >= kubelet.crashed_until, t)
        kubelet.step(t)
        up = not inside(t, s.agent_down)
        if up and (not self.agent_was_up or kubelet.agent_restarts == t):
            agent.start(t)  # (re)started: a fresh process, no snapshot yet
            kubelet.agent_restarts = None
        self.agent_was_up = up
        self._publish(t, up, due)
        if kubelet.crashed_until > t:
            _push(due, kubelet.crashed_until)
        _push(due, kubelet.next_event())

    def _publish(self, t: float, up: bool, due: list[float]) -> None:
        s, agent = self.s, self.agent
        job, source = JOBS[s.collection], f"{s.name}/{self.run.name}"
        full = s.collection == "textfile" and inside(t, s.textfile_full)
        if up and full:  # the agent evaluates, the write fails: node_exporter serves the old file
            if agent.needs_evaluation(t):
                agent.evaluate(t)
                self.run.agent_evaluations += 1
                _push(due, agent.next_change(t) or math.inf)
            self.unwritten = True
        elif up and not agent.needs_evaluation(t) and not self.unwritten:
            self.store.heartbeat(source, t, LAST_EVALUATION, agent.clock(t))
        elif up:
            samples = agent.evaluate(t)
            self.run.agent_evaluations += 1
            if s.collection == "scrape":
                samples.update(_up(job, self.run.name, s.name, 1.0))
            self.store.publish(source, t, samples)
            self.unwritten = False
            _push(due, agent.next_change(t) or math.inf)
        elif s.collection == "scrape":
            self.store.publish(source, t, _up(job, self.run.name, s.name, 0.0))
        # textfile mode with the agent down: node_exporter keeps serving the last file


def _simulate(s: Scenario, keep: frozenset[str], store: SeriesStore,
              workdir: Path) -> tuple[Scenario, list[NodeRun]]:
    store.heartbeat_name = LAST_EVALUATION
    s, cluster, runs, agents = _setup(s, keep, workdir)
    nodes = [_Node(s, run, agent, store) for run, agent in zip(runs, agents, strict=True)]
    end = EPOCH + s.span
    heap: list[float] = [*sorted(set(_boundaries(s))), EPOCH]
    heapq.heapify(heap)
    seen_csrs = 0
    t = EPOCH
    while t <= end:
        for node in nodes:
            node.play(t, heap)
        for csr in cluster.csrs[seen_csrs:]:  # the API server's answers change at these
            for x in csr.changes():
                _push(heap, x)
        seen_csrs = len(cluster.csrs)
        store.tick(t)
        t = _next(heap, t)
    store.refresh(end)
    return s, runs


def _push(heap: list[float], at: float) -> None:
    """Queue a finite instant (the heap holds each instant the loop must stop at)."""
    if not math.isinf(at):
        heapq.heappush(heap, at)


def _next(heap: list[float], t: float) -> float:
    """The next instant after ``t``: the earliest queued one, at most one TICK away."""
    tick = EPOCH + (math.floor((t - EPOCH) / TICK) + 1) * TICK
    while heap and heap[0] <= t:
        heapq.heappop(heap)
    return min(tick, heap[0]) if heap else tick
