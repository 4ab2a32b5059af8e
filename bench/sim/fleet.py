"""A fleet: groups of nodes with a fault each, played as one scenario, paged once per cause.

Each :class:`~bench.sim.world.Group` is simulated as its own scenario (its variant, the
fleet's name and span, node names prefixed by the group) so the groups run in parallel;
their truths are merged and scored together. A fleet is scored per node and cause too:
each incident must be paged by exactly one critical alert series (not a dedicated alert
and a generic ``KubeletCertAgentFinding*`` one, not one per serial or subject), and no
alert may fire as two series for the same node and path.
"""

from __future__ import annotations

from dataclasses import replace

from bench.sim.engine import Firing
from bench.sim.oracle import Incident, Score, Truth
from bench.sim.world import Scenario

# labels that tell two series of one alert apart without being another cause
CAUSE = ("alertname", "instance", "path", "code")


def expand(s: Scenario) -> list[Scenario]:
    """What to simulate: the scenario itself, or one scenario per fleet group."""
    if not s.fleet:
        return [s]
    return [replace(g.variant, name=s.name, span=min(s.span, g.variant.span),
                    node_prefix=g.name,
                    nodes=g.played, seed=s.seed + i, collection=s.collection)
            for i, g in enumerate(s.fleet)]


def merge(truths: list[Truth]) -> Truth:
    merged = Truth()
    for t in truths:
        merged.incidents += t.incidents
        for mine, theirs in ((merged.warn_ok, t.warn_ok), (merged.crit_ok, t.crit_ok)):
            for node, spans in theirs.items():
                mine.setdefault(node, []).extend(spans)
    return merged


def _series(f: Firing) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in f.labels))


def pages(inc: Incident, firings: list[Firing]) -> set[tuple[tuple[str, str], ...]]:
    """The most critical alert series paging at once for ``inc`` (one is the goal), among
    those naming its certificate (another certificate's page is another cause). A
    page handing over to the next (ExpiringCritical ends, Expired starts) is the same
    cause running its course, not a second page."""
    a, b = inc.window()
    mine = [f for f in firings if f.severity == "critical"
            and f.label("instance") == inc.node and f.start <= b and f.end > a
            and inc.path_hint in f.label("path")]
    most: set[tuple[tuple[str, str], ...]] = set()
    for f in mine:
        now = {_series(g) for g in mine if g.start <= f.start < g.end}
        most = now if len(now) > len(most) else most
    return most


def duplicates(firings: list[Firing]) -> list[str]:
    """Alerts firing as several series for one node, alert and path (per serial,
    subject, code...): each is a page too many."""
    seen: dict[tuple[str, ...], set[tuple[tuple[str, str], ...]]] = {}
    for f in firings:
        cause = tuple(f.label(k) if k != "alertname" else f.alert for k in CAUSE)
        seen.setdefault(cause, set()).add(_series(f))
    return [f"{c[0]} on {c[1]} {c[2] or c[3]}: {len(v)} series"
            for c, v in sorted(seen.items()) if len(v) > 1]


def extra_pages(sc: Score) -> list[str]:
    """Every page beyond one per node and cause, described."""
    extra = []
    for inc in sc.truth.incidents:
        paged = pages(inc, sc.firings)
        if len(paged) > 1:
            names = ", ".join(sorted(dict(p)["alertname"] for p in paged))
            extra.append(f"{inc.node} {inc.what}: {len(paged)} pages ({names})")
    return extra + duplicates(sc.firings)
