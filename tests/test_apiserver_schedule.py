"""The CSR monitor's scheduling (agent/sources/apischedule.py), on no clock at all."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from agent.model import ApiProblem
from agent.sources.apiparse import Failure, classify_status
from agent.sources.apischedule import (
    CAP,
    GONE_RELISTS,
    GROWTH,
    POLL_ROUNDS,
    Action,
    RetrySchedule,
    Scheduler,
    growth_factor,
)

INTERVAL = 60.0
REFUSED = Failure("unreachable", ApiProblem.UNREACHABLE, "connection refused")


def sched(seed: int = 0) -> Scheduler:
    return Scheduler(INTERVAL, random.Random(seed))  # noqa: S311 - jitter, seeded for tests


def http(code: int, retry_after: str | None = None) -> Failure:
    return classify_status(code, b"{}", retry_after)


class TestScheduler:
    def test_starts_with_an_immediate_list(self) -> None:
        """The first request is a list, at once."""
        assert sched().start().action is Action.LIST
        assert sched().start().delay == 0

    @pytest.mark.parametrize("seed", range(20))
    def test_a_complete_list_is_followed_by_a_watch_of_jittered_length(self, seed: int) -> None:
        """After a list comes a watch at once, with timeoutSeconds drawn in 240..360."""
        step = sched(seed).listed()
        assert step.action is Action.WATCH and step.delay == 0
        assert 240 <= step.watch_timeout <= 360

    def test_a_watch_closed_at_its_timeout_is_reopened_at_once(self) -> None:
        """The server closing the watch at timeoutSeconds is normal: watch again now."""
        s = sched()
        step = s.watch_ended(elapsed=300.0, timeout=300)
        assert step.action is Action.WATCH and step.delay == 0

    @pytest.mark.parametrize("seed", range(20))
    def test_a_watch_that_ends_early_is_resumed_within_one_interval(self, seed: int) -> None:
        """An early end (restart, proxy) resumes the watch after a delay in [0, interval)."""
        step = sched(seed).watch_ended(elapsed=3.0, timeout=300)
        assert step.action is Action.WATCH and 0 <= step.delay < INTERVAL
        assert step.watch_timeout > 0

    def test_watches_that_keep_ending_early_switch_to_polling(self) -> None:
        """Three early ends in a row: list every interval (+/- 20 %) instead."""
        s = sched()
        s.watch_ended(1.0, 300)
        s.watch_ended(1.0, 300)
        step = s.watch_ended(1.0, 300)
        assert step.action is Action.LIST and 0.8 * INTERVAL <= step.delay <= 1.2 * INTERVAL

    @pytest.mark.parametrize("seed", range(20))
    def test_the_first_retry_comes_within_one_interval(self, seed: int) -> None:
        """After one failure the next attempt is drawn in [0, interval): recovery within
        one interval of the fault clearing."""
        assert 0 <= sched(seed).list_failed(REFUSED).delay < INTERVAL

    @pytest.mark.parametrize("failures", [2, 3, 4, 5, 8, 20])
    def test_later_retries_grow_exponentially_and_are_capped(self, failures: int) -> None:
        """The n-th failure in a row (n >= 2) waits between interval * f^(n-2) and
        min(5 min, interval * f^(n-1)), f the growth factor."""
        f = growth_factor(INTERVAL, CAP)
        for seed in range(30):
            s = sched(seed)
            for _ in range(failures):
                step = s.list_failed(REFUSED)
            assert min(CAP, INTERVAL * f ** (failures - 2)) <= step.delay
            assert step.delay <= min(CAP, INTERVAL * f ** (failures - 1))

    @pytest.mark.parametrize(("retry_after", "expected"), [("120", 120.0), ("3600", CAP)],
                             ids=["longer-than-backoff", "capped-at-5-min"])
    def test_retry_after_is_honoured(self, retry_after: str, expected: float) -> None:
        """A 429's Retry-After longer than the backoff is waited (at most 5 minutes)."""
        step = sched().list_failed(http(429, retry_after))
        assert step.action is Action.LIST and step.delay == expected

    def test_success_resets_the_backoff(self) -> None:
        """After a successful list the next failure waits less than one interval again."""
        s = sched()
        for _ in range(5):
            s.list_failed(REFUSED)
        s.listed()
        assert s.list_failed(REFUSED).delay < INTERVAL

    def test_gone_on_a_list_restarts_it_at_once_twice_then_backs_off(self) -> None:
        """410 on a continue token restarts the list at once; a server that keeps
        answering 410 is then treated as a failure."""
        s = sched()
        assert s.list_failed(http(410)).delay == 0
        assert s.list_failed(http(410)).delay == 0
        step = s.list_failed(http(410))
        assert step.action is Action.LIST and s.failures == 1 and step.delay < INTERVAL

    def test_an_expired_watch_relists_at_once(self) -> None:
        """ERROR 410 on a watch: list again now."""
        step = sched().watch_expired()
        assert step.action is Action.LIST and step.delay == 0

    def test_http_410_on_a_watch_relists_at_once_like_the_error_event(self) -> None:
        """410 as the watch's HTTP status is not a refusal to watch: list again now."""
        s = sched()
        step = s.watch_failed(http(410), established=False)
        assert (step.action, step.delay) == (Action.LIST, 0) and s.poll_left == 0

    def test_watches_always_gone_switch_to_polling(self) -> None:
        """A server that answers every watch with 410: GONE_RELISTS immediate relists,
        then polling, never a tight list-watch loop; a normal watch end resets it."""
        s = sched()
        for _ in range(GONE_RELISTS):
            assert s.watch_expired().delay == 0
            s.listed()
        step = s.watch_expired()
        assert step.action is Action.LIST and 0.8 * INTERVAL <= step.delay <= 1.2 * INTERVAL
        t = sched()
        for _ in range(3 * GONE_RELISTS):
            assert t.watch_expired().delay == 0
            t.watch_ended(300.0, 300)

    @pytest.mark.parametrize("code", [400, 404, 405])
    def test_a_refused_watch_falls_back_to_polling_then_tries_again(self, code: int) -> None:
        """A server that will not watch gets a jittered list every interval for
        POLL_ROUNDS rounds, then a watch is tried again."""
        s = sched()
        step = s.watch_failed(http(code), established=False)
        assert step.action is Action.LIST and 0.8 * INTERVAL <= step.delay <= 1.2 * INTERVAL
        polls = [s.listed() for _ in range(POLL_ROUNDS)]
        assert all(p.action is Action.LIST for p in polls)
        assert s.listed().action is Action.WATCH

    @pytest.mark.parametrize("code", [401, 403, 500])
    def test_an_auth_or_server_error_on_watch_backs_off_and_lists(self, code: int) -> None:
        """401/403/5xx on a watch are failures (retried with backoff), not a refusal."""
        s = sched()
        step = s.watch_failed(http(code), established=False)
        assert step.action is Action.LIST and s.failures == 1 and step.delay < INTERVAL

    @pytest.mark.parametrize("seed", range(20))
    def test_a_cut_stream_relists_within_one_interval(self, seed: int) -> None:
        """A watch cut mid-stream (events may be lost) lists again within an interval."""
        step = sched(seed).watch_failed(REFUSED, established=True)
        assert step.action is Action.LIST and 0 <= step.delay < INTERVAL


def attempts(seed: int, until: float) -> list[float]:
    """The attempt instants of one node whose trouble began at 0 and never ends."""
    r = RetrySchedule(INTERVAL, CAP, random.Random(seed))  # noqa: S311 - seeded
    t, times = 0.0, []
    while t < until:
        t += r.next()
        times.append(t)
    return times


def first_after(instant: float, nodes: int = 3000) -> list[float]:
    """For a fleet in trouble since 0 (a restart), each node's first attempt after
    ``instant`` (the moment the server is back), relative to it."""
    return [next(t for t in attempts(seed, instant + 2 * CAP) if t >= instant) - instant
            for seed in range(nodes)]


class TestRetrySchedule:
    @pytest.mark.parametrize(("interval", "cap"), [(60, 300), (10, 300), (45, 300),
                                                   (60, 61), (300, 300), (600, 300)],
                             ids=["default", "short", "uneven", "near-cap", "at-cap",
                                  "above-cap"])
    def test_the_growth_factor_lands_exactly_on_the_cap(self, interval: float,
                                                        cap: float) -> None:
        """interval * f^k == cap for a whole k, with 1 <= f <= GROWTH (1 when the
        interval is already the cap)."""
        f = growth_factor(interval, cap)
        assert 1 <= f <= GROWTH
        if interval < cap:
            k = round(math.log(cap / interval) / math.log(f))
            assert interval * f ** k == pytest.approx(cap)
        else:
            assert f == 1

    @pytest.mark.parametrize("seed", range(10))
    def test_a_phase_in_one_interval_then_gaps_growing_by_the_factor_up_to_the_cap(
            self, seed: int) -> None:
        """First attempt within [0, interval); each gap is f times the previous one,
        the first in [interval, f * interval); never more than the cap."""
        times = attempts(seed, 3600)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        f = growth_factor(INTERVAL, CAP)
        assert 0 <= times[0] < INTERVAL <= gaps[0] < f * INTERVAL
        for a, b in itertools.pairwise(gaps):
            assert b == pytest.approx(min(CAP, a * f))
        assert max(gaps) == pytest.approx(CAP)

    def test_the_kth_attempts_of_a_fleet_tile_the_time_line(self) -> None:
        """Every node's k-th attempt lies in [A_k, A_k+1), A_k = interval * (f^k - 1) /
        (f - 1): one tile per attempt, without overlap, until the cap."""
        f = growth_factor(INTERVAL, CAP)
        edges = [INTERVAL * (f ** k - 1) / (f - 1) for k in range(8)]
        for seed in range(500):
            times = attempts(seed, edges[-1])
            for k in range(7):
                assert edges[k] <= times[k] < edges[k + 1] + 1e-9

    @pytest.mark.parametrize("back", [10, 30, 60, 300, 900, 3600],
                             ids=lambda b: f"back-after-{b}s")
    def test_after_an_outage_the_fleet_returns_evenly_over_more_than_an_interval(
            self, back: float) -> None:
        """Whenever the server comes back, the nodes' first attempts are spread over
        more than one interval, and no sixth of that spread holds more than 1.3 times
        its share (a fleet with per-gap random jitter bunches up here)."""
        delays = first_after(back)
        spread = max(delays)
        assert spread > INTERVAL
        counts = [0] * 6
        for d in delays:
            counts[min(5, int(6 * d / spread))] += 1
        assert max(counts) <= 1.3 * len(delays) / 6

    def test_retry_after_longer_than_the_gap_is_waited(self) -> None:
        """Retry-After replaces a shorter gap (at most the cap); a shorter one is moot."""
        r = RetrySchedule(INTERVAL, CAP, random.Random(1))  # noqa: S311 - seeded
        assert r.next(retry_after=100) == 100
        gap = r.gap
        assert r.next(retry_after=1) == gap
        assert r.next(retry_after=3600) == CAP

    def test_a_reset_draws_a_new_phase(self) -> None:
        """After a success the next trouble starts a new schedule, within an interval."""
        r = RetrySchedule(INTERVAL, CAP, random.Random(2))  # noqa: S311 - seeded
        for _ in range(10):
            r.next()
        r.reset()
        assert not r.active and 0 <= r.next() < INTERVAL
