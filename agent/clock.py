"""The only module that reads the wall clock.

Everything else receives ``now`` (a timezone-aware UTC datetime) or a ``Clock``
callable, as client-go's certificate manager does, so tests use fixed instants.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
Monotonic = Callable[[], float]


def utcnow() -> datetime:
    """The current instant, UTC."""
    return datetime.now(UTC)


def monotonic() -> float:
    """Seconds on a clock that never jumps (for durations and timers)."""
    return time.monotonic()


def fixed(at: datetime) -> Clock:
    """A clock frozen at ``at`` (for ``check --at`` and tests)."""
    return lambda: at
