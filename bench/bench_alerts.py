"""Do the shipped alerts fire when they must and stay quiet when they should?

Plays each scenario of ``bench/sim/scenarios.py`` (a simulated kubelet year on a
virtual clock, judged by the agent's real snapshot/checks/collector), backfills the
exported series into a real Prometheus TSDB with ``promtool``, evaluates the shipped
alert rules with Prometheus' PromQL engine at a 1-minute step, and scores the firing
alerts against an oracle. Prints one row per scenario: incidents, misses, false alarms,
the lead of the first warning and critical page before each breakage beside its goal
(min(30 d, 10 %) and min(7 d, 5 %) of the lifetime; sudden breakage: paged within 30
minutes), the alerts that fired, PASS/FAIL. Exit status 1 on any miss, false alarm or
missed goal.

    .venv/bin/python bench/bench_alerts.py [--reduced] [--only NAME ...] [--rules FILE]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.sim import engine, fleet, oracle, report, run, scenarios, series  # noqa: E402
from bench.sim.world import EPOCH, Scenario  # noqa: E402

RULES = REPO / "packaging" / "prometheus" / "kubelet-cert-agent-rules.yaml"


def _play(args: tuple[Scenario, frozenset[str]]) -> tuple[Scenario, oracle.Truth,
                                                          series.SeriesStore, int]:
    scenario, keep = args
    store = series.SeriesStore()
    played, runs = run.simulate(scenario, keep, store)
    evaluations = sum(r.agent_evaluations for r in runs)
    return played, oracle.judge_truth(played, runs), store, evaluations


def played_as(s: Scenario, played: list[tuple[Scenario, oracle.Truth,
                                                series.SeriesStore, int]]) -> Scenario:
    """The scenario as played (fault windows made absolute); a fleet as chosen."""
    return s if s.fleet else next(p for p, *_ in played if p.name == s.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reduced", action="store_true",
                        help="the CI subset of scenarios (under 60 s)")
    parser.add_argument("--only", nargs="*", default=None, metavar="NAME")
    parser.add_argument("--rules", type=Path, default=RULES)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    chosen = scenarios.chosen(args.only, args.reduced)
    rules = engine.load_rules(args.rules)
    keep = engine.metric_names(rules)
    started = time.monotonic()
    jobs = [(part, keep) for s in chosen for part in fleet.expand(s)]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        played = list(pool.map(_play, jobs))
    simulated = time.monotonic() - started
    store = series.SeriesStore()
    for _, _, part, _ in played:
        store.merge(part)
    end = EPOCH + max(s.span for s, *_ in played)
    firings = engine.evaluate(rules, store.openmetrics(), EPOCH, end, store.names())
    scores = []
    for s in chosen:  # a fleet's groups are scored together, as the fleet
        truths = [truth for p, truth, _, _ in played if p.name == s.name]
        sc = oracle.score(played_as(s, played), fleet.merge(truths), firings)
        sc.extra_pages = fleet.extra_pages(sc)
        scores.append(sc)
    total = time.monotonic() - started
    print(report.table(scores))
    why = report.details(scores)
    if why:
        print("\n" + why)
    evaluations = sum(e for *_, e in played)
    print(f"\n{len(chosen)} scenarios, {evaluations} agent evaluations, "
          f"{store.sample_count()} samples; simulation {simulated:.1f} s, total "
          f"{total:.1f} s (goal: {'60' if args.reduced else '120'} s)")
    return 0 if all(report.passed(s) for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
