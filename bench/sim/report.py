"""The table: one row per scenario, each figure beside its goal."""

from __future__ import annotations

from bench.sim.engine import Firing
from bench.sim.oracle import TOLERANCE, Incident, Score, crit_goal, warn_goal
from bench.sim.world import DAY, EPOCH, HOUR, MINUTE

HEADER = ("scenario", "nodes", "incidents", "missed", "false", "extra", "warn lead / goal",
          "crit lead / goal", "alerts fired", "result")


def span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s >= DAY:
        return f"{sign}{s / DAY:.1f}d"
    if s >= HOUR:
        return f"{sign}{s / HOUR:.1f}h"
    return f"{sign}{s / MINUTE:.0f}m"


def _leads(inc: Incident) -> tuple[str, str, bool]:
    """(warning cell, critical cell, goals met) for one incident."""
    warn = inc.lead(inc.first_warning)
    crit = inc.lead(inc.first_critical)
    if inc.life is None:  # sudden: the page must follow within 30 minutes
        delay = None if inc.missed else -min(x for x in (warn, crit) if x is not None)
        return "-", f"+{span(delay)} / <=30m", delay is not None and delay <= 30 * MINUTE
    # a breakage closer to the start than a goal cannot be warned earlier than the start
    early = inc.at - EPOCH
    wg, cg = min(warn_goal(inc.life), early), min(crit_goal(inc.life), early)
    ok = (warn is not None and warn >= wg - TOLERANCE
          and crit is not None and crit >= cg - TOLERANCE)
    return f"{span(warn)} / {span(wg)}", f"{span(crit)} / {span(cg)}", ok


def row(sc: Score) -> tuple[str, ...]:
    incidents = sc.truth.incidents
    cells = [_leads(i) for i in incidents]
    if sc.scenario.fleet:  # one cell per distinct figure: a fleet repeats them
        cells = sorted(set(cells))
    warn = "; ".join(c[0] for c in cells) or "-"
    crit = "; ".join(c[1] for c in cells) or "-"
    goals = all(c[2] for c in cells)
    fired = sorted({f.alert for f in sc.firings})
    ok = not sc.missed and not sc.false_alarms and not sc.extra_pages and goals
    s = sc.scenario
    nodes = f"{sum(g.played for g in s.fleet)}/{sum(g.count for g in s.fleet)}" \
        if s.fleet else str(s.nodes)
    return (s.name, nodes, str(len(incidents)), str(len(sc.missed)),
            str(len(sc.false_alarms)), str(len(sc.extra_pages)), warn, crit,
            ", ".join(fired) or "none", "PASS" if ok else "FAIL")


def passed(sc: Score) -> bool:
    return row(sc)[-1] == "PASS"


def table(scores: list[Score]) -> str:
    rows = [HEADER, *[row(s) for s in scores]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 2)]
    lines = []
    for r in rows:
        fixed = "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False))
        lines.append(f"{fixed}  {r[-1]:4}  {r[-2]}")
    return "\n".join(lines)


def _when(t: float) -> str:
    return f"day {(t - EPOCH) / DAY:.2f}"


def _firing(f: Firing) -> str:
    path = f.label("path") or f.label("code")
    return (f"{f.alert} ({f.severity}) {path} from {_when(f.start)} for "
            f"{span(f.end - f.start)}")


def details(scores: list[Score]) -> str:
    """Why each failing scenario failed: misses and false alarms, one per line."""
    lines = []
    for sc in scores:
        for inc in sc.missed:
            lines.append(f"  {sc.scenario.name}: MISSED {inc.what} at {_when(inc.at)}")
        for f in sc.false_alarms:
            lines.append(f"  {sc.scenario.name}: FALSE ALARM {_firing(f)}")
        for extra in sc.extra_pages:
            lines.append(f"  {sc.scenario.name}: EXTRA PAGE {extra}")
    return "\n".join(lines)
