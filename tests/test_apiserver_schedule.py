"""The CSR monitor's scheduling (agent/sources/apischedule.py), on no clock at all."""

from __future__ import annotations

import random

import pytest

from agent.model import ApiProblem
from agent.sources.apiparse import Failure, classify_status
from agent.sources.apischedule import CAP, POLL_ROUNDS, Action, Scheduler

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

    def test_the_first_retry_comes_exactly_one_interval_later(self) -> None:
        """After one failure the next attempt is one interval later: recovery within one
        interval of the fault clearing."""
        assert sched().list_failed(REFUSED).delay == INTERVAL

    @pytest.mark.parametrize("failures", [2, 3, 4, 5, 8, 20])
    def test_backoff_is_exponential_with_full_jitter_and_capped(self, failures: int) -> None:
        """The n-th failure in a row waits in [interval, min(5 min, interval * 2^(n-1))]."""
        for seed in range(30):
            s = sched(seed)
            for _ in range(failures):
                step = s.list_failed(REFUSED)
            ceiling = min(CAP, INTERVAL * 2 ** (failures - 1))
            assert INTERVAL <= step.delay <= ceiling

    def test_backoff_draws_spread_over_the_whole_range(self) -> None:
        """The jitter is real: delays after the third failure cover most of [60, 240]."""
        delays = []
        for seed in range(200):
            s = sched(seed)
            for _ in range(3):
                step = s.list_failed(REFUSED)
            delays.append(step.delay)
        assert min(delays) < 80 and max(delays) > 220

    @pytest.mark.parametrize(("retry_after", "expected"), [("120", 120.0), ("3600", CAP)],
                             ids=["longer-than-backoff", "capped-at-5-min"])
    def test_retry_after_is_honoured(self, retry_after: str, expected: float) -> None:
        """A 429's Retry-After longer than the backoff is waited (at most 5 minutes)."""
        step = sched().list_failed(http(429, retry_after))
        assert step.action is Action.LIST and step.delay == expected

    def test_success_resets_the_backoff(self) -> None:
        """After a successful list the next failure waits one interval again."""
        s = sched()
        for _ in range(5):
            s.list_failed(REFUSED)
        s.listed()
        assert s.list_failed(REFUSED).delay == INTERVAL

    def test_gone_on_a_list_restarts_it_at_once_twice_then_backs_off(self) -> None:
        """410 on a continue token restarts the list at once; a server that keeps
        answering 410 is then treated as a failure."""
        s = sched()
        assert s.list_failed(http(410)).delay == 0
        assert s.list_failed(http(410)).delay == 0
        assert s.list_failed(http(410)).delay == INTERVAL

    def test_an_expired_watch_relists_at_once(self) -> None:
        """ERROR 410 on a watch: list again now."""
        step = sched().watch_expired()
        assert step.action is Action.LIST and step.delay == 0

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
        step = sched().watch_failed(http(code), established=False)
        assert step.action is Action.LIST and step.delay == INTERVAL

    @pytest.mark.parametrize("seed", range(20))
    def test_a_cut_stream_relists_within_one_interval(self, seed: int) -> None:
        """A watch cut mid-stream (events may be lost) lists again within an interval."""
        step = sched(seed).watch_failed(REFUSED, established=True)
        assert step.action is Action.LIST and 0 <= step.delay < INTERVAL
