"""Soak: 1,000 kubelet rotations against a live daemon loop with real inotify.

The daemon runs its real loop (``serve``) in a thread, watching with inotify; the test
plays the kubelet: a new generation file, then the non-atomic swap, 1,000 times, and
waits (on a condition, generous timeout) until each new serial is published before the
next. Every rotation must be counted exactly once, every serial logged in order, and the
process must not leak file descriptors or threads.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.daemon.services import Services
from agent.daemon.state import StateHolder, count_of
from agent.model import AgentState, Role
from tests.daemonkit import NOW, build, daemon_for

ROTATIONS = 1000
WARM_UP = 50
TIMEOUT = 30.0


class PublishedSerial(StateHolder):
    """A StateHolder that lets the test wait for a given client serial to be published."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def set(self, state: AgentState) -> None:
        super().set(state)
        with self.changed:
            self.changed.notify_all()

    def serial(self) -> str | None:
        state = self.get()
        cert = state.evaluation.snapshot.cert(Role.CLIENT) if state else None
        return cert.leaf.serial if cert and cert.leaf else None

    def wait_for(self, serial: str | None) -> None:
        """Until ``serial`` is published (None: until anything is)."""
        with self.changed:
            assert self.changed.wait_for(
                lambda: self.serial() == serial if serial else self.serial(), TIMEOUT), (
                f"serial {serial} never published")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_a_thousand_rotations_are_each_observed_once_without_leaks(tmp_path: Path) -> None:
    node = build(tmp_path)
    started = time.monotonic()

    def clock() -> datetime:  # NOW, moving on with real time
        return NOW + timedelta(seconds=time.monotonic() - started)

    daemon = daemon_for(node)
    daemon.clock = clock
    daemon.services = Services(daemon, http=False)
    holder = PublishedSerial()
    daemon.holder = holder
    loop = threading.Thread(target=daemon.serve, name="daemon-loop")
    with capture_logs() as logs:
        loop.start()
        try:
            holder.wait_for(None)  # a rotation before the first look is no observed rotation
            fds = threads = 0
            for i in range(ROTATIONS):
                if i == WARM_UP:
                    fds, threads = open_fds(), threading.active_count()
                serial = node.rotate("client", NOW - timedelta(days=1),
                                     written_at=NOW + timedelta(seconds=i + 1))
                holder.wait_for(serial)
            assert open_fds() <= fds, "file descriptors leaked"
            assert threading.active_count() <= threads, "threads leaked"
        finally:
            daemon.request_stop()
            loop.join(TIMEOUT)
    assert not loop.is_alive()
    state = holder.get()
    assert state is not None
    assert count_of(state.stats.rotations_total, "client") == ROTATIONS
    seen = [e["new_serial"] for e in logs if e["event"] == "rotation_observed"]
    assert seen == node.serials
    bad = [e for e in logs if e["event"] in ("finding_raised", "input_unreadable")]
    assert bad == []
