"""Structured event log: one JSON object per line on stdout, or a console rendering.

Under systemd, stdout goes to journald, which keeps each line with its own timestamp;
the JSON line also carries ``ts`` (from :mod:`agent.clock`) so that a log shipped
elsewhere stays ordered. Only :class:`agent.sinks.events.Event` values are logged:
scalars that never hold file contents or key material.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from agent.clock import utcnow
from agent.model import Event
from agent.sinks.escape import printable

LOGGER_NAME = "kubelet-cert-agent"
_LEVELS = ("debug", "info", "warning", "error", "critical")


def _timestamp(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]
               ) -> MutableMapping[str, Any]:
    event_dict.setdefault("ts", utcnow().isoformat(timespec="milliseconds")
                          .replace("+00:00", "Z"))
    return event_dict


def _escape_values(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]
                   ) -> MutableMapping[str, Any]:
    """Console lines: untrusted names (paths, CNs) cannot inject ESC sequences or lines."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = printable(value)
    return event_dict


def configure(log_format: str = "json", stream: TextIO | None = None) -> None:
    """Send events to ``stream`` (stdout) as JSON lines, or readable lines for ``console``.

    Safe to call again (on reload) to switch the format.
    """
    renderer: Any
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    structlog.configure(
        # JSON escapes control characters itself; the console lines do not.
        processors=[structlog.processors.add_log_level, _timestamp,
                    *([_escape_values] if log_format == "console" else []), renderer],
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def emit(events: Iterable[Event]) -> None:
    """Log each event at its level, the event kind as the ``event`` key; never raises.

    A log that cannot be written (stdout closed, journald's stream gone: EPIPE) loses
    the event, not the agent: emit is called from the loop's own error handling.
    """
    log = structlog.get_logger(LOGGER_NAME)
    for ev in events:
        level = ev.level if ev.level in _LEVELS else "info"
        try:
            getattr(log, level)(ev.kind, **ev.as_dict())
        except (OSError, ValueError):  # ValueError: write to a closed file
            continue
