"""The truth at every instant, and the score of the alerts that fired.

From what the simulated kubelet, cluster and faults really did, the oracle lists the
*incidents* (something breaks: the client certificate expires and the node drops out,
``kubectl logs`` stops working, a watched or self-signed certificate expires, the agent
goes dark) and the intervals in which an alert is *justified*: a warning while something
needs doing (rotation failing, the kubelet or the agent down, the API server unreachable,
a misconfiguration the agent reports), a critical page only when a breakage is at most
``min(7 d, 5 %)`` (+ slack) ahead or happening. Scoring:

- missed: an incident without the page it needs (critical for a breakage; for the agent
  going dark, any alert) within 30 minutes of it;
- false alarm: a firing episode (alert + labels) not wholly inside its justified intervals;
- lead: how long before a foreseeable breakage the first warning / critical page fired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.sim.engine import Firing
from bench.sim.run import NodeRun
from bench.sim.world import DAY, EPOCH, HOUR, MINUTE, YEAR, Scenario, Window

PAGE_WITHIN = 30 * MINUTE
TOLERANCE = 2 * MINUTE  # one scrape plus one rule evaluation
SELF_SIGNED_LIFE = YEAR

Span = tuple[float, float]


def warn_goal(life: float) -> float:
    return min(30 * DAY, 0.10 * life)


def crit_goal(life: float) -> float:
    return min(7 * DAY, 0.05 * life)


@dataclass
class Incident:
    node: str
    what: str
    at: float
    life: float | None  # foreseeable expiry: the certificate's lifetime; None: sudden
    needs: str = "critical"  # "critical" or "any"
    first_warning: float | None = None
    first_critical: float | None = None
    path_hint: str = ""  # part of the alert's path label naming this certificate ("": any)

    def window(self) -> Span:
        if self.life is None:
            return (self.at, self.at + PAGE_WITHIN)
        return (self.at - warn_goal(self.life) - HOUR, self.at + PAGE_WITHIN)

    @property
    def missed(self) -> bool:
        hit = self.first_critical if self.needs == "critical" else min(
            (t for t in (self.first_warning, self.first_critical) if t is not None),
            default=None)
        return hit is None

    def lead(self, first: float | None) -> float | None:
        return None if first is None else self.at - first


@dataclass
class Truth:
    incidents: list[Incident] = field(default_factory=list)
    warn_ok: dict[str, list[Span]] = field(default_factory=dict)  # per node
    crit_ok: dict[str, list[Span]] = field(default_factory=dict)

    def allow(self, node: str, severity: str, span: Span) -> None:
        (self.crit_ok if severity == "critical" else self.warn_ok).setdefault(
            node, []).append(span)


def _windows(ws: tuple[Window, ...], after: float = 0.0) -> list[Span]:
    return [(EPOCH + a, EPOCH + b + after) for a, b in ws]


def _expiry(truth: Truth, node: str, what: str, na: float, life: float, *, end: float,
            fixed: float = math.inf, hint: str = "") -> None:
    """A certificate that expires at ``na`` (and stays broken until ``fixed``)."""
    if na > end:
        return
    truth.incidents.append(Incident(node, what, na, life, path_hint=hint))
    truth.allow(node, "warning", (na - warn_goal(life) - HOUR, fixed))
    truth.allow(node, "critical", (na - crit_goal(life) - 0.02 * life - HOUR, fixed))


def _kubelet(truth: Truth, s: Scenario, run: NodeRun, end: float) -> None:
    node = run.name
    for role, m in run.kubelet.managers.items():
        for a, *b in m.failing:  # renewal failing: something to do, not yet a page
            truth.allow(node, "warning", (a, (b[0] if b else end) + HOUR))
        history = m.history
        for i, (_since, nb, na) in enumerate(history):
            replaced = history[i + 1][0] if i + 1 < len(history) else math.inf
            if replaced > na:
                what = "client expired: node NotReady" if role == "client" else \
                    "serving expired: kubectl logs broken"
                _expiry(truth, node, what, na, na - nb, end=end, fixed=replaced,
                        hint=f"kubelet-{role}-current.pem")
        if role == "server" and s.server_age is None:  # fresh install: nothing served
            fixed = history[0][0] if history else math.inf
            if fixed > EPOCH + PAGE_WITHIN:
                truth.incidents.append(Incident(node, "no serving cert: kubectl logs broken",
                                                EPOCH, None))
            truth.allow(node, "warning", (EPOCH, fixed + HOUR))
            truth.allow(node, "critical", (EPOCH, fixed + HOUR))


def judge_truth(s: Scenario, runs: list[NodeRun]) -> Truth:
    truth = Truth()
    end = EPOCH + s.span
    for run in runs:
        node = run.name
        _kubelet(truth, s, run, end)
        for span in (_windows(s.kubelet_down, HOUR) + _windows(s.api_down, HOUR)
                     + _windows(s.agent_down, HOUR) + _windows(s.signer_down, HOUR)):
            truth.allow(node, "warning", span)
        for a, _b in s.agent_down:
            truth.incidents.append(Incident(node, "agent dark", EPOCH + a, None, "any"))
        for a, b in s.textfile_full:  # the agent's data frozen: it must say so
            truth.allow(node, "warning", (EPOCH + a, EPOCH + b + HOUR))
            truth.incidents.append(Incident(node, "textfile not written", EPOCH + a, None,
                                            "any"))
        skewed = abs(s.clock_skew) > 5 * MINUTE  # beyond the signer's backdating: fix NTP
        if not s.rotate_certificates or s.self_signed_created is not None or skewed:
            truth.allow(node, "warning", (EPOCH, math.inf))  # a standing misconfiguration
        if s.self_signed_created is not None:
            na = EPOCH + s.self_signed_created - HOUR + SELF_SIGNED_LIFE
            _expiry(truth, node, "self-signed kubelet.crt expired", na, SELF_SIGNED_LIFE,
                    end=end, hint="kubelet.crt")
        for i, (nb, na) in enumerate(s.watched):
            _expiry(truth, node, "watched cert expired", EPOCH + na, na - nb, end=end,
                    hint=f"apiserver-{i}.crt")
        for killed, restarted in run.kubelet.crashes:  # mid-swap, down until restarted
            truth.allow(node, "warning", (killed, restarted + HOUR))
    return truth


def _covered(span: Span, allowed: list[Span]) -> bool:
    start, stop = span
    for a, b in sorted(allowed):
        if a <= start < b:
            start = b
        if start >= stop:
            return True
    return start >= stop


@dataclass
class Score:
    scenario: Scenario
    truth: Truth
    firings: list[Firing]
    false_alarms: list[Firing] = field(default_factory=list)
    extra_pages: list[str] = field(default_factory=list)  # beyond one per node and cause

    @property
    def missed(self) -> list[Incident]:
        return [i for i in self.truth.incidents if i.missed]


def score(s: Scenario, truth: Truth, firings: list[Firing]) -> Score:
    end = EPOCH + s.span  # after it the series are frozen: what fires then is not scored
    mine = [f for f in firings if f.label("scenario") == s.name and f.start < end]
    result = Score(s, truth, mine)
    for f in mine:
        node = f.label("instance")
        allowed = truth.crit_ok.get(node, []) if f.severity == "critical" else (
            truth.warn_ok.get(node, []) + truth.crit_ok.get(node, []))
        if not _covered((f.start, f.end - 1), allowed):
            result.false_alarms.append(f)
    for inc in truth.incidents:
        a, b = inc.window()
        for f in mine:
            if f.label("instance") not in (inc.node, "") or not (f.start <= b and f.end > a):
                continue
            if f.severity == "critical":
                inc.first_critical = min(inc.first_critical or math.inf, f.start)
            inc.first_warning = min(inc.first_warning or math.inf, f.start)
    return result
