"""When to ask the API server next: the CSR monitor's scheduling, without any I/O.

Pure apart from an injected ``random.Random``, so tests and ``bench/`` drive it on a
virtual clock. The policy (sized for thousands of nodes against one API server):

* steady state is one long watch per node, re-opened at once when the server closes it
  after ``timeoutSeconds`` (drawn in 240..360 s so that nodes do not re-watch in step):
  about 0.2 requests per node per minute;
* trouble (a watch that ends early, as at an API server restart, or a failed request
  after a success) starts a retry schedule of this node's own: the first attempt at a
  point drawn uniformly in [0, interval) (full jitter), then gaps that grow by a fixed
  factor per attempt up to the cap (5 min). The first gap is ``interval + (factor - 1) *
  phase``, so that the k-th attempts of the fleet tile the time line (each node's k-th
  attempt is uniform over [A_k, A_k+1), the tile as long as the k-th gap), and the
  factor makes a gap land exactly on the cap, where every node's phase is uniform over
  the cap. Whenever the server comes back, the nodes' next attempts are therefore
  spread evenly (density within a factor ``factor`` of flat) over more than one
  interval. A random jitter on every gap would not do this: after a long outage the
  nodes' phases bunch up and the worst second of the reconnect storm doubles the mean;
  ``Retry-After`` (429/503) is honoured (at most the cap) when longer than the gap;
* a watch the server refuses (an HTTP error other than 401/403/429/5xx) or that keeps
  failing while lists work switches to a jittered list every interval for
  ``poll_rounds`` rounds, then watching is tried again;
* 410 Gone (expired resourceVersion or continue token) restarts the list at once; a
  watch that gets 410 (HTTP status or ERROR event) more than ``GONE_RELISTS`` times in a
  row, with no watch ending normally in between, switches to polling instead, so that a
  server that will not watch from the resourceVersions it lists never makes a tight loop.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass

from agent.sources.apiparse import Failure

CAP = 300.0  # seconds: the longest wait between two attempts
WATCH_TIMEOUT = 300.0  # seconds: the middle of the timeoutSeconds range
WATCH_TIMEOUT_JITTER = 0.2  # timeoutSeconds drawn in WATCH_TIMEOUT * (1 +/- this)
GROWTH = 1.15  # at most this factor between two gaps of a retry schedule
POLL_JITTER = 0.2  # polls every interval * (1 +/- this)
WATCH_FAILURES_BEFORE_POLL = 3
POLL_ROUNDS = 10
GONE_RELISTS = 2  # immediate relists after a watch's 410 before polling instead


class Action(enum.StrEnum):
    LIST = "list"
    WATCH = "watch"


@dataclass(frozen=True)
class Step:
    """The next request and how long to wait before it."""

    action: Action
    delay: float = 0.0
    watch_timeout: int = 0  # timeoutSeconds, for WATCH


def growth_factor(interval: float, cap: float, most: float = GROWTH) -> float:
    """The factor (at most ``most``) between two gaps such that ``interval * factor**k``
    is exactly ``cap`` for a whole k; 1 when the interval is already the cap."""
    if cap <= interval:
        return 1.0
    steps = math.ceil(math.log(cap / interval) / math.log(most) - 1e-9)
    return float((cap / interval) ** (1 / steps))


class RetrySchedule:
    """One node's attempts while in trouble: a random phase, then growing gaps.

    ``start()`` draws the phase p uniformly in [0, interval): the delay to the first
    attempt; the gap after it is ``interval + (factor - 1) * p``, and every next gap is
    ``factor`` times the last, up to ``cap``. For a fleet that got into trouble at
    the same instant, each node's k-th attempt is then uniform over a tile as long as
    the k-th gap, the tiles follow one another without gap or overlap, and once capped
    the phases are uniform over the cap: the nodes' first attempts after any instant
    are spread evenly over the next gap.
    """

    def __init__(self, interval: float, cap: float, rng: random.Random) -> None:
        self.interval, self.cap, self.rng = interval, cap, rng
        self.factor = growth_factor(interval, cap)
        self.gap = 0.0  # the gap after the next attempt; 0 while not in trouble

    @property
    def active(self) -> bool:
        return self.gap > 0

    def reset(self) -> None:
        """A success: the next trouble draws a new phase."""
        self.gap = 0.0

    def start(self) -> float:
        """Trouble began now: the delay to the first attempt, drawn in [0, interval)."""
        phase = self.rng.random() * self.interval
        self.gap = min(self.cap, self.interval + (self.factor - 1) * phase)
        return phase

    def _advance(self) -> float:
        gap = self.gap
        self.gap = min(self.cap, gap * self.factor)
        return gap

    def next(self, retry_after: float | None = None) -> float:
        """The delay to the next attempt of the schedule (starting one if need be), or
        ``retry_after`` (at most cap) when longer. Waiting for Retry-After shifts every
        throttled node by the same amount, so they stay as spread out as they were;
        skipping to a later point of the schedule instead would keep them away long
        after the server is ready again."""
        delay = self._advance() if self.active else self.start()
        return max(delay, min(retry_after or 0.0, self.cap))


class Scheduler:
    """Turns the outcome of each request into the next Step."""

    def __init__(self, interval: float, rng: random.Random | None = None, *,
                 cap: float = CAP, watch_timeout: float = WATCH_TIMEOUT) -> None:
        self.interval = interval
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.cap = max(cap, interval)
        self.watch_timeout = watch_timeout
        self.retries = RetrySchedule(interval, self.cap, self.rng)
        self.failures = 0  # requests failed in a row
        self.watch_failures = 0  # watches failed or dropped in a row
        self.poll_left = 0  # remaining rounds of list polling before watching again
        self.gone_restarts = 0
        self.watch_expiries = 0  # watches ended by 410 since one ended normally

    def start(self) -> Step:
        return Step(Action.LIST)

    def retry(self, retry_after: float | None = None) -> Step:
        """A request failed: list again at the next attempt of the retry schedule."""
        self.failures += 1
        return Step(Action.LIST, self.retries.next(retry_after))

    def _succeeded(self) -> None:
        self.failures = 0
        self.retries.reset()

    def _watch(self, delay: float = 0.0) -> Step:
        spread = self.rng.uniform(1 - WATCH_TIMEOUT_JITTER, 1 + WATCH_TIMEOUT_JITTER)
        return Step(Action.WATCH, delay, max(1, round(self.watch_timeout * spread)))

    def _poll(self) -> Step:
        delay = self.interval * self.rng.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
        return Step(Action.LIST, delay)

    def listed(self) -> Step:
        """A complete list arrived: watch from its resourceVersion (or keep polling)."""
        self._succeeded()
        self.gone_restarts = 0
        if self.poll_left > 0:
            self.poll_left -= 1
            return self._poll()
        return self._watch()

    def list_failed(self, failure: Failure) -> Step:
        if failure.gone and self.gone_restarts < 2:
            self.gone_restarts += 1
            return Step(Action.LIST)
        return self.retry(failure.retry_after)

    def watch_ended(self, elapsed: float, timeout: int) -> Step:
        """The server closed the watch without error after ``elapsed`` seconds."""
        self._succeeded()
        if elapsed >= timeout / 2:  # closed at timeoutSeconds, as asked
            self.watch_failures = self.watch_expiries = 0
            return self._watch()
        return self._dropped(Action.WATCH)  # an early end: restart, load balancer, proxy

    def _dropped(self, action: Action) -> Step:
        """A working watch ended early: come back at the first attempt of a new retry
        schedule, in [0, interval), so that after an API server restart the nodes
        return spread out, and keep retrying on that schedule while it is down."""
        self.watch_failures += 1
        if self.watch_failures >= WATCH_FAILURES_BEFORE_POLL:
            return self._start_polling()
        self.retries.reset()
        delay = self.retries.start()
        return self._watch(delay) if action is Action.WATCH else Step(action, delay)

    def watch_expired(self) -> Step:
        """410 on the watch (ERROR event or HTTP status): the resourceVersion is too old;
        list again now, or poll when that keeps happening."""
        self._succeeded()
        self.watch_expiries += 1
        if self.watch_expiries > GONE_RELISTS:
            return self._start_polling()
        return Step(Action.LIST)

    def watch_failed(self, failure: Failure, established: bool) -> Step:
        """The watch request failed (``established`` False) or its stream was cut."""
        if failure.gone:
            return self.watch_expired()
        code = failure.status_code
        refused = code is not None and code not in (401, 403, 429) and code < 500
        if refused or failure.outcome == "bad-response":
            return self._start_polling()  # this server will not watch: poll instead
        if established:
            self._succeeded()
            return self._dropped(Action.LIST)  # events may be lost in the cut: list again
        self.watch_failures += 1
        if self.watch_failures >= WATCH_FAILURES_BEFORE_POLL and self.failures == 0:
            self.failures = 1
            return self._start_polling()  # lists keep working, watches keep failing
        return self.retry(failure.retry_after)

    def _start_polling(self) -> Step:
        self.poll_left = POLL_ROUNDS
        self.watch_failures = self.watch_expiries = 0
        return self._poll()
