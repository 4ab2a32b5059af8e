"""When to ask the API server next: the CSR monitor's scheduling, without any I/O.

Pure apart from an injected ``random.Random``, so tests and ``bench/`` drive it on a
virtual clock. The policy (sized for thousands of nodes against one API server):

* steady state is one long watch per node, re-opened at once when the server closes it
  after ``timeoutSeconds`` (drawn in 240..360 s so that nodes do not re-watch in step):
  about 0.2 requests per node per minute;
* a watch that ends early (API server restart, load balancer cut) is resumed after a
  delay drawn in [0, interval): after a restart the nodes come back spread over a whole
  interval instead of all in the same second;
* a failed request is retried after a delay drawn in [interval, min(cap, interval *
  2^(n-1))] for the n-th failure in a row: exponential backoff with full jitter above a
  floor of one interval (the first retry comes exactly one interval later, keeping the
  phase drawn when the watch dropped). The floor keeps the retries of nodes that failed
  during an outage spread out (retries drawn in [0, x] pile up just after the recovery);
  ``Retry-After`` (429/503) is honoured when longer;
* a watch the server refuses (an HTTP error other than 401/403/429/5xx) or that keeps
  failing while lists work switches to a jittered list every interval for
  ``poll_rounds`` rounds, then watching is tried again;
* 410 Gone (expired resourceVersion or continue token) restarts the list at once.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from agent.sources.apiparse import Failure

CAP = 300.0  # seconds: the longest wait between two attempts
WATCH_TIMEOUT = 300.0  # seconds: the middle of the timeoutSeconds range
WATCH_TIMEOUT_JITTER = 0.2  # timeoutSeconds drawn in WATCH_TIMEOUT * (1 +/- this)
RETRY_FLOOR = 1.0  # retries wait at least this fraction of the interval
POLL_JITTER = 0.2  # polls every interval * (1 +/- this)
WATCH_FAILURES_BEFORE_POLL = 3
POLL_ROUNDS = 10


class Action(enum.StrEnum):
    LIST = "list"
    WATCH = "watch"


@dataclass(frozen=True)
class Step:
    """The next request and how long to wait before it."""

    action: Action
    delay: float = 0.0
    watch_timeout: int = 0  # timeoutSeconds, for WATCH


class Scheduler:
    """Turns the outcome of each request into the next Step."""

    def __init__(self, interval: float, rng: random.Random | None = None, *,
                 cap: float = CAP, watch_timeout: float = WATCH_TIMEOUT) -> None:
        self.interval = interval
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.cap = max(cap, interval)
        self.watch_timeout = watch_timeout
        self.failures = 0  # requests failed in a row
        self.watch_failures = 0  # watches failed or dropped in a row
        self.poll_left = 0  # remaining rounds of list polling before watching again
        self.gone_restarts = 0

    def start(self) -> Step:
        return Step(Action.LIST)

    def backoff(self, retry_after: float | None = None) -> float:
        """Delay before retrying after the ``self.failures``-th failure in a row."""
        ceiling = min(self.cap, self.interval * 2 ** max(self.failures - 1, 0))
        delay = self.rng.uniform(min(RETRY_FLOOR * self.interval, ceiling), ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap))
        return delay

    def _watch(self, delay: float = 0.0) -> Step:
        spread = self.rng.uniform(1 - WATCH_TIMEOUT_JITTER, 1 + WATCH_TIMEOUT_JITTER)
        return Step(Action.WATCH, delay, max(1, round(self.watch_timeout * spread)))

    def _poll(self) -> Step:
        delay = self.interval * self.rng.uniform(1 - POLL_JITTER, 1 + POLL_JITTER)
        return Step(Action.LIST, delay)

    def listed(self) -> Step:
        """A complete list arrived: watch from its resourceVersion (or keep polling)."""
        self.failures = self.gone_restarts = 0
        if self.poll_left > 0:
            self.poll_left -= 1
            return self._poll()
        return self._watch()

    def list_failed(self, failure: Failure) -> Step:
        if failure.gone and self.gone_restarts < 2:
            self.gone_restarts += 1
            return Step(Action.LIST)
        self.failures += 1
        return Step(Action.LIST, self.backoff(failure.retry_after))

    def watch_ended(self, elapsed: float, timeout: int) -> Step:
        """The server closed the watch without error after ``elapsed`` seconds."""
        self.failures = 0
        if elapsed >= timeout / 2:  # closed at timeoutSeconds, as asked
            self.watch_failures = 0
            return self._watch()
        return self._dropped(Action.WATCH)  # an early end: restart, load balancer, proxy

    def _dropped(self, action: Action) -> Step:
        """A working watch ended early: come back after a delay drawn in [0, interval),
        so that after an API server restart the nodes return spread over an interval."""
        self.watch_failures += 1
        if self.watch_failures >= WATCH_FAILURES_BEFORE_POLL:
            return self._start_polling()
        delay = self.rng.uniform(0, self.interval)
        return self._watch(delay) if action is Action.WATCH else Step(action, delay)

    def watch_expired(self) -> Step:
        """ERROR 410 on the watch: the resourceVersion is too old; list again now."""
        self.failures = 0
        return Step(Action.LIST)

    def watch_failed(self, failure: Failure, established: bool) -> Step:
        """The watch request failed (``established`` False) or its stream was cut."""
        code = failure.status_code
        refused = code is not None and code not in (401, 403, 429) and code < 500
        if refused or failure.outcome == "bad-response":
            return self._start_polling()  # this server will not watch: poll instead
        if established:
            self.failures = 0
            return self._dropped(Action.LIST)  # events may be lost in the cut: list again
        self.failures += 1
        self.watch_failures += 1
        if self.watch_failures >= WATCH_FAILURES_BEFORE_POLL and self.failures == 1:
            return self._start_polling()  # lists keep working, watches keep failing
        return Step(Action.LIST, self.backoff(failure.retry_after))

    def _start_polling(self) -> Step:
        self.poll_left = POLL_ROUNDS
        self.watch_failures = 0
        return self._poll()
