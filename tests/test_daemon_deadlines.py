"""The REAL daemon loop (``Daemon.serve``) across every kind of deadline, on a fake clock.

Nothing on disk changes during the run: every verdict below changes with time alone, so
the loop must wake at each instant ``next_change`` names, evaluate there (not skip it as
already past) and publish without a settle period. The clock, the monotonic clock and
the loop's wait are injected: a wait of ``t`` seconds moves the fake clock by ``t`` at
once, so an hour and a half of node life runs in well under a second of real time. The
tree, the inotify watcher and the snapshot builder are the real ones.

Timeline (T0 = start, client and server certificates re-issued for it):
- server certificate valid from T0+3m (clock skew: CERT_NOT_YET_VALID until then);
- a Pending serving CSR made at T0+4m goes stale at T0+14m (SERVING_CSR_PENDING);
- approved at T0+20m, still no certificate at T0+25m (SERVING_CSR_NOT_ISSUED);
- issued at T0+30m (nothing);
- client certificate (notBefore T0-30m, 2 h): warning at T0+66m (20 % left), rotation
  window end at T0+78m, critical at T0+84m (5 % left), expired at T0+90m.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent import pkigen
from agent.checks import judge
from agent.daemon.loop import Daemon
from agent.daemon.services import Services
from agent.model import AgentState, ApiState, CsrInfo, CsrState, Evaluation, Policy
from agent.snapshot import build_snapshot
from tests.daemonkit import NODE, NOW, Node, build

T0 = NOW
MIN = timedelta(minutes=1)
POLICY = Policy(warning_fraction=0.2, critical_fraction=0.05, csr_stale_after=10 * MIN,
                issue_timeout=5 * MIN)
SERVER = "https://127.0.0.1:6443"
CLIENT_PATH = "kubelet-client-current.pem"
SERVER_PATH = "kubelet-server-current.pem"

Verdict = frozenset[tuple[str, str, str]]  # (code, severity, basename of the path)


def csr_at(state: CsrState, since: datetime | None = None) -> CsrInfo:
    return CsrInfo(name="csr-a", created=T0 + 4 * MIN, state=state,
                   username=f"system:node:{NODE}", signer="kubernetes.io/kubelet-serving",
                   state_since=since, request_subject=f"CN=system:node:{NODE},O=system:nodes",
                   request_dns_names=(NODE,))


def api_at(at: datetime, *csrs: CsrInfo) -> ApiState:
    return ApiState(server=SERVER, last_success=at, csrs=csrs)


# What the (fake) API monitor reports, and when.
UPDATES = [
    (T0, api_at(T0)),
    (T0 + 4 * MIN, api_at(T0 + 4 * MIN, csr_at(CsrState.PENDING))),
    (T0 + 20 * MIN, api_at(T0 + 20 * MIN, csr_at(CsrState.APPROVED, T0 + 20 * MIN))),
    (T0 + 30 * MIN, api_at(T0 + 30 * MIN, csr_at(CsrState.ISSUED, T0 + 30 * MIN))),
]

# Each deadline and the verdict published at it.
NOT_YET_VALID = ("CERT_NOT_YET_VALID", "warning", SERVER_PATH)
PENDING = ("SERVING_CSR_PENDING", "warning", "")
NOT_ISSUED = ("SERVING_CSR_NOT_ISSUED", "warning", "csr/csr-a")
SOON_WARNING = ("CERT_EXPIRING_SOON", "warning", CLIENT_PATH)
SOON_CRITICAL = ("CERT_EXPIRING_SOON", "critical", CLIENT_PATH)
OVERDUE = ("ROTATION_OVERDUE", "warning", CLIENT_PATH)
EXPIRED = ("CERT_EXPIRED", "critical", CLIENT_PATH)
DEADLINES: list[tuple[str, timedelta, set[tuple[str, str, str]]]] = [
    ("notBefore", 3 * MIN, set()),
    ("CSR stale", 14 * MIN, {PENDING}),
    ("issue timeout", 25 * MIN, {NOT_ISSUED}),
    ("warning threshold", 66 * MIN, {SOON_WARNING}),
    ("rotation window end", 78 * MIN, {SOON_WARNING, OVERDUE}),
    ("critical threshold", 84 * MIN, {SOON_CRITICAL, OVERDUE}),
    ("notAfter", 90 * MIN, {EXPIRED}),
]
END = T0 + 95 * MIN


@dataclass
class FakeTime:
    """Wall clock, monotonic clock and the loop's wait, all on one fake timeline."""

    now: datetime
    updates: list[tuple[datetime, ApiState]]
    end: datetime
    daemon: Daemon | None = None
    seen: list[AgentState] = field(default_factory=list)
    waits: int = 0

    def clock(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return (self.now - T0).total_seconds()

    def wait(self, timeout: float) -> bool:
        """Block ``timeout`` seconds, or until the next API update (True: woken)."""
        assert self.daemon is not None
        self.waits += 1
        assert self.waits < 10_000, "the loop spins"
        state = self.daemon.holder.get()
        if state is not None and (not self.seen or self.seen[-1] is not state):
            self.seen.append(state)
        target = self.now + timedelta(seconds=timeout)
        if self.updates and self.updates[0][0] <= target:
            at, api = self.updates.pop(0)
            self.now = max(self.now, at)
            self.daemon.api_updated(api)
            return True
        self.now = target
        if self.now >= self.end:
            self.daemon.request_stop()
        return False


def make_node(tmp_path: Path) -> Node:
    """A healthy node whose client and server certificates are short-lived ones."""
    node = build(tmp_path, now=T0)
    for role, not_before, lifetime in (("client", T0 - 30 * MIN, 2 * 60 * MIN),
                                       ("server", T0 + 3 * MIN, 10 * 60 * MIN)):
        path, _ = node.write_generation(role, not_before, lifetime=lifetime,
                                        written_at=T0 - 1 * MIN)
        pkigen.kubelet_swap(node.cert_dir, role, path)
    return node


def run_loop(node: Node) -> tuple[FakeTime, Daemon]:
    fake = FakeTime(now=T0, updates=list(UPDATES), end=END)
    settings = replace(node.settings(), policy=POLICY)
    daemon = Daemon(settings, clock=fake.clock, monotonic_clock=fake.monotonic,
                    wait=fake.wait)
    daemon.services = Services(daemon, http=False)
    fake.daemon = daemon
    assert daemon.serve() == 0
    return fake, daemon


def short(path: str | None) -> str:
    """A file by its name, a CSR as ``csr/<name>``, no path as ``""``."""
    if not path or path.startswith("csr/"):
        return path or ""
    return Path(path).name


def verdict(ev: Evaluation) -> Verdict:
    return frozenset((f.code, f.severity.label, short(f.path)) for f in ev.findings)


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[FakeTime, Daemon, Node]:
    node = make_node(tmp_path_factory.mktemp("deadlines"))
    fake, daemon = run_loop(node)
    return fake, daemon, node


class TestEveryDeadlineIsPublishedOnTime:
    @pytest.mark.parametrize(("kind", "offset", "expected"), DEADLINES,
                             ids=[d[0] for d in DEADLINES])
    def test_the_verdict_at_the_deadline_is_published_within_a_second(
            self, loop_run: tuple[FakeTime, Daemon, Node], kind: str, offset: timedelta,
            expected: set[tuple[str, str, str]]) -> None:
        fake, _, _ = loop_run
        deadline = T0 + offset
        first = next(s.evaluation for s in fake.seen if s.evaluation.now >= deadline)
        assert first.now - deadline <= timedelta(seconds=1), (
            f"{kind}: first evaluation {first.now - deadline} after the deadline")
        assert verdict(first) == expected, kind

    def test_the_published_verdict_is_what_check_says_at_that_instant(
            self, loop_run: tuple[FakeTime, Daemon, Node]) -> None:
        """At each deadline the published findings equal a fresh, unsettled judgement."""
        fake, daemon, _ = loop_run
        for _, offset, _ in DEADLINES:
            published = next(s.evaluation for s in fake.seen
                             if s.evaluation.now >= T0 + offset)
            fresh = judge(build_snapshot(daemon.settings.sources, published.now,
                                         published.snapshot.api), published.now, POLICY)
            assert verdict(published) == verdict(fresh)

    def test_the_loop_evaluates_only_at_deadlines_events_and_idle_ticks(
            self, loop_run: tuple[FakeTime, Daemon, Node]) -> None:
        """No polling: 95 minutes take a few dozen evaluations, not thousands."""
        fake, daemon, _ = loop_run
        state = daemon.holder.get()
        assert state is not None
        assert state.stats.evaluations_total < 60
        assert fake.waits < 200


def test_a_deadline_right_after_a_file_event_is_not_held_by_the_settle_period(
        tmp_path: Path) -> None:
    """A file touched 0.5 s before the warning threshold: the threshold is time's doing,
    so it is published at once, not 2 s later when the touch would have settled."""
    node = make_node(tmp_path)
    daemon = Daemon(replace(node.settings(settle=2.0), policy=POLICY))
    warning = T0 + 66 * MIN
    daemon.run_once(warning - timedelta(seconds=1))
    target = str(node.current("client").resolve())
    daemon.run_once(warning - timedelta(seconds=0.5), changed=[target])
    state = daemon.run_once(warning)
    assert state is not None
    assert SOON_WARNING in verdict(state.evaluation)
