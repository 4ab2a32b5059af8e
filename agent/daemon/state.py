"""The published state and the daemon's counters.

:class:`StateHolder` is what a scrape reads: one lock-protected reference to an
immutable :class:`AgentState`, swapped whole by the daemon, so ``get()`` costs a lock
and a pointer copy and never touches the disk. The ``record_*`` functions are the pure
bookkeeping of :class:`AgentStats` (each returns a new value). No threads here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from agent.health import Counts, add_counts
from agent.model import AgentState, AgentStats


class StateHolder:
    """A thread-safe reference to the current :class:`AgentState` (None before the first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: AgentState | None = None

    def get(self) -> AgentState | None:
        with self._lock:
            return self._state

    def set(self, state: AgentState) -> None:
        with self._lock:
            self._state = state


def count_of(counts: Counts, key: str) -> int:
    return dict(counts).get(key, 0)


def record_evaluation(stats: AgentStats, at: datetime, duration_seconds: float) -> AgentStats:
    """One more evaluation, finished at ``at`` after ``duration_seconds``."""
    return replace(stats, evaluations_total=stats.evaluations_total + 1, last_evaluation=at,
                   last_evaluation_duration_seconds=max(0.0, duration_seconds))


def record_rotations(stats: AgentStats, roles: Iterable[str]) -> AgentStats:
    """One rotation per role value in ``roles``."""
    return replace(stats, rotations_total=add_counts(stats.rotations_total, roles))


def record_read_errors(stats: AgentStats, problems: Iterable[str]) -> AgentStats:
    """One read error per ReadProblem value in ``problems``."""
    return replace(stats, read_errors_total=add_counts(stats.read_errors_total, problems))


def record_fs_events(stats: AgentStats, count: int) -> AgentStats:
    return replace(stats, fs_events_total=stats.fs_events_total + max(0, count))


def record_textfile_error(stats: AgentStats) -> AgentStats:
    return replace(stats, textfile_errors_total=stats.textfile_errors_total + 1)
