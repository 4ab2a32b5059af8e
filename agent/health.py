"""The agent's own health: counters several threads add to, read as one immutable value.

Kept apart from :class:`~agent.model.AgentState` on purpose: the verdict about the
operator's certificates changes only when an evaluation publishes, while these counts
move between evaluations (an HTTP connection refused, the API thread restarted, an
evaluation that failed for the agent's own reasons). A scrape and the textfile render
:meth:`Health.snapshot` next to the published state. No I/O here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

Counts = tuple[tuple[str, int], ...]

# Every component a catch-all counts under, pre-initialised at 0 so rate() works at once.
COMPONENTS = ("evaluation", "snapshot", "sources", "parse", "textfile", "watch", "http",
              "api")
REJECT_REASONS = ("too_many_connections", "deadline", "bad_request")


def add_counts(counts: Counts, keys: Iterable[str]) -> Counts:
    """``counts`` with one added per key (repeats count), sorted by key."""
    out = dict(counts)
    for key in keys:
        out[key] = out.get(key, 0) + 1
    return tuple(sorted(out.items()))


@dataclass(frozen=True)
class HealthSnapshot:
    """The agent-health counts at one instant."""

    internal_errors: Counts = ()  # (component, count)
    http_rejected: Counts = ()  # (reason, count)
    stale_since: datetime | None = None  # the published verdict is the last good one
    api_restarts: int = 0


class Health:
    """Thread-safe counters; every method is cheap and never raises."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = HealthSnapshot()

    def snapshot(self) -> HealthSnapshot:
        with self._lock:
            return self._value

    def _update(self, **changes: object) -> None:
        with self._lock:
            self._value = replace(self._value, **changes)  # type: ignore[arg-type]

    def internal_error(self, component: str) -> None:
        with self._lock:
            self._value = replace(self._value, internal_errors=add_counts(
                self._value.internal_errors, [component]))

    def rejected(self, reason: str) -> None:
        with self._lock:
            self._value = replace(self._value, http_rejected=add_counts(
                self._value.http_rejected, [reason]))

    def set_stale(self, since: datetime | None) -> None:
        self._update(stale_since=since)

    def api_restarted(self) -> None:
        with self._lock:
            self._value = replace(self._value, api_restarts=self._value.api_restarts + 1)
