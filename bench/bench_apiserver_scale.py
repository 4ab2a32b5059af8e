"""How hard 5,000 agents hit one API server, with the agent's REAL scheduling code.

Each simulated node runs ``agent.sources.apischedule.Scheduler`` (the object the CSR
monitor asks what to do next) and ``agent.sources.lifeline.Chores`` (the client-renewal
lifeline: client CSR list every 5 min, SelfSubjectAccessReview and bootstrap
SelfSubjectReview daily, Node hourly; run after each successful serving request, as the
monitor does: after a watch that ended normally and after the first list, never on the
relists of a reconnect) on a virtual clock; no sockets. The API server is a
model: lists succeed, a watch lasts the timeoutSeconds asked; during an outage every
request is refused. Figures:

* steady state: requests per second at the API server, and per node per minute
  (goal <= 1);
* API server restart: every watch is cut at t0, the server is down for OUTAGE seconds;
  optionally it then answers 429 (Retry-After) to half of the nodes for a while. The
  requests that reach it (429s included), per second, from the recovery until every
  node watches again: the spread (goal >= 60 s) and the worst second against the mean
  (goal <= 2x). Every scenario printed must meet every goal (exit status 1 otherwise).

Reproduce: .venv/bin/python bench/bench_apiserver_scale.py [--nodes 5000] [--seed 1]
  [--outage 30 ...] [--throttle OUTAGE:SECONDS:RETRY_AFTER ...]
"""

from __future__ import annotations

import argparse
import heapq
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.model import ApiProblem
from agent.sources.apiparse import Failure
from agent.sources.apischedule import Action, Scheduler, Step
from agent.sources.lifeline import Chores

REFUSED = Failure("unreachable", ApiProblem.UNREACHABLE, "connection refused")
CUT = Failure("unreachable", ApiProblem.UNREACHABLE, "stream cut")
OUTAGES = (10.0, 30.0, 60.0, 300.0, 900.0)
# (outage, then 429 to every other node for this long, with this Retry-After)
THROTTLES = ((30.0, 60.0, 30.0),)


@dataclass(frozen=True)
class Scenario:
    outage: float
    throttle: float = 0.0  # seconds after the recovery during which odd nodes get 429
    retry_after: float = 0.0

    def __str__(self) -> str:
        text = f"{self.outage:g} s down"
        if self.throttle:
            text += (f", then 429 Retry-After {self.retry_after:g} s to half the nodes "
                     f"for {self.throttle:g} s")
        return text


@dataclass
class Node:
    scheduler: Scheduler
    chores: Chores
    listed: bool = False  # a list succeeded once (chores run after the first one)
    watching_since: float | None = None
    next_timeout: int = 300  # timeoutSeconds of the next watch
    back_at: float = float("inf")  # first watch opened after the outage
    epoch: int = 0  # bumped when a watch is cut, so that its end event is ignored


@dataclass
class World:
    down_from: float = float("inf")
    down_until: float = float("-inf")
    throttle_until: float = float("-inf")
    retry_after: float = 0.0
    hits: Counter[int] = field(default_factory=Counter)  # second -> requests served
    refused: int = 0
    chores: int = 0  # lifeline requests among the hits
    queue: list[tuple[float, int, int, str]] = field(default_factory=list)

    def up(self, t: float) -> bool:
        return not self.down_from <= t < self.down_until

    def throttled(self, t: float, i: int) -> bool:
        return i % 2 == 1 and self.down_until <= t < self.throttle_until


def schedule(world: World, t: float, i: int, node: Node, step: Step) -> None:
    if step.action is Action.WATCH:
        node.next_timeout = step.watch_timeout
    heapq.heappush(world.queue, (t + step.delay, i, node.epoch, step.action.value))


def run(nodes: int, scenario: Scenario, seed: int, interval: float) -> dict[str, float]:
    rng = random.Random(seed)
    world = World()
    chore_rng = random.Random(seed + 1)  # apart, so the schedulers draw as without chores
    fleet = [Node(Scheduler(interval, random.Random(rng.random())),
                  Chores(rng=random.Random(chore_rng.random()))) for _ in range(nodes)]
    for i in range(nodes):  # agents started over the first ten minutes
        heapq.heappush(world.queue, (rng.uniform(0, 600), i, 0, "list"))
    warm, t0, horizon = 3600.0, 7200.0, 7200.0 + 1800.0
    recovery = t0 + scenario.outage
    world.down_from, world.down_until = t0, recovery
    world.throttle_until = recovery + scenario.throttle
    world.retry_after = scenario.retry_after
    restarted = False
    while world.queue:
        t, i, epoch, what = heapq.heappop(world.queue)
        if t > horizon:
            break
        if not restarted and t >= t0:
            restarted = True
            for j, node in enumerate(fleet):  # every watch is cut by the restart
                if node.watching_since is not None:
                    node.watching_since, node.epoch = None, node.epoch + 1
                    schedule(world, t0, j, node, node.scheduler.watch_failed(CUT, True))
        node = fleet[i]
        if epoch != node.epoch:
            continue  # the end of a watch that was cut
        step_what, _, timeout = what.partition(":")
        if step_what == "end":
            node.watching_since = None
            chores(world, t, node)
            schedule(world, t, i, node, node.scheduler.watch_ended(float(timeout),
                                                                   int(timeout)))
            continue
        dispatch(world, t, i, node, step_what)
    return summarise(world, fleet, (warm, t0, recovery))


def dispatch(world: World, t: float, i: int, node: Node, what: str) -> None:
    s = node.scheduler
    if not world.up(t):
        world.refused += 1
        step = s.list_failed(REFUSED) if what == "list" else s.watch_failed(REFUSED, False)
        schedule(world, t, i, node, step)
        return
    world.hits[int(t)] += 1
    if world.throttled(t, i):
        busy = Failure("rate-limited", ApiProblem.RATE_LIMITED, "429", 429, world.retry_after)
        step = s.list_failed(busy) if what == "list" else s.watch_failed(busy, False)
        schedule(world, t, i, node, step)
        return
    if what == "list":
        if not node.listed:
            node.listed = True
            chores(world, t, node)
        schedule(world, t, i, node, s.listed())
        return
    node.watching_since = t
    if t >= world.down_until:  # the first watch opened after the recovery
        node.back_at = min(node.back_at, t)
    timeout = node.next_timeout
    heapq.heappush(world.queue, (t + timeout, i, node.epoch, f"end:{timeout}"))


def chores(world: World, t: float, node: Node) -> None:
    """The lifeline's due chores after a successful serving request: each one request."""
    due = node.chores.due(t)
    world.hits[int(t)] += len(due)
    world.chores += len(due)
    for task in due:
        node.chores.done(task, t)


def summarise(world: World, fleet: list[Node], times: tuple[float, float, float]
              ) -> dict[str, float]:
    """Steady rate over [warm, t0); the reconnect period runs from the recovery until
    the last node watches again."""
    warm, t0, recovery = times
    nodes = len(fleet)
    steady = sum(n for s, n in world.hits.items() if warm <= s < t0) / (t0 - warm)
    back = sorted(n.back_at for n in fleet)
    t99 = back[int(0.99 * nodes) - 1]
    window = [world.hits.get(s, 0) for s in range(int(recovery), int(back[-1]) + 1)]
    mean = sum(window) / max(len(window), 1)
    return {"steady_rps": steady, "per_node_per_min": steady * 60 / nodes,
            "spread_s": back[-1] - recovery, "p99_s": t99 - recovery,
            "mean_rps": mean, "worst_rps": max(window),
            "ratio": max(window) / mean if mean else float("inf"),
            "refused": world.refused}


def parse_throttle(text: str) -> Scenario:
    outage, throttle, retry_after = (float(x) for x in text.split(":"))
    return Scenario(outage, throttle, retry_after)


def report(r: dict[str, float], scenario: Scenario) -> bool:
    """Print one scenario's figures; True when it meets every goal (strictly)."""
    ok = r["per_node_per_min"] <= 1 and r["spread_s"] >= 60 and r["ratio"] <= 2
    print(f"restart, {scenario}: steady {r['per_node_per_min']:.2f} req/node/min; "
          f"all nodes watching again within {r['spread_s']:.2f} s of the recovery "
          f"(99 % within {r['p99_s']:.1f} s), mean {r['mean_rps']:.1f} req/s, worst "
          f"second {r['worst_rps']} req/s = {r['ratio']:.2f}x the mean; "
          f"{r['refused']} refused connections during the outage "
          f"[{'ok' if ok else 'GOAL MISSED'}]")
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=5000)
    p.add_argument("--outage", type=float, action="append", default=[])
    p.add_argument("--throttle", type=parse_throttle, action="append", default=[],
                   metavar="OUTAGE:SECONDS:RETRY_AFTER")
    p.add_argument("--interval", type=float, default=60.0, help="--csr-interval")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    scenarios = [Scenario(o) for o in args.outage] + args.throttle
    if not scenarios:
        scenarios = [Scenario(o) for o in OUTAGES] + [Scenario(*t) for t in THROTTLES]
    print(f"{args.nodes} nodes, --csr-interval {args.interval:g} s, seed {args.seed}; "
          "goals: <= 1 request per node per minute steady, reconnect spread >= 60 s, "
          "worst second <= 2x the mean")
    ok = True
    for scenario in scenarios:
        ok &= report(run(args.nodes, scenario, args.seed, args.interval), scenario)
    print("reproduce: .venv/bin/python bench/bench_apiserver_scale.py")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
