"""The daemon loop survives a broken log and a failing evaluation without flooding."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent.daemon import loop as daemon_module
from agent.daemon.logging import configure, emit
from agent.daemon.loop import FAILED_RETRY_SECONDS
from agent.model import event
from tests.daemonkit import NOW, Node, build, daemon_for


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return build(tmp_path)


class _BrokenPipe(io.StringIO):
    def write(self, _text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def _failing_build(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("a bug in the sources")


class TestBrokenLog:
    def test_an_unwritable_log_loses_the_event_not_the_agent(self, node: Node) -> None:
        """stdout gone (EPIPE): emit drops the event and run_once still publishes."""
        configure("json", stream=_BrokenPipe())
        try:
            emit([event("agent_started")])
            daemon = daemon_for(node)
            node.current().unlink()  # something to log
            assert daemon.run_once(NOW) is not None
            assert daemon.healthy
        finally:
            configure("json")


class TestFailingEvaluation:
    def test_a_failing_evaluation_is_logged_once_per_streak(
            self, node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
        daemon = daemon_for(node)
        daemon.run_once(NOW)
        with capture_logs() as logs:
            monkeypatch.setattr(daemon_module, "build_snapshot", _failing_build)
            for second in range(1, 4):
                daemon.run_once(NOW + timedelta(seconds=second))
            monkeypatch.undo()
            daemon.run_once(NOW + timedelta(seconds=5))
        kinds = [e["event"] for e in logs]
        assert kinds == ["evaluation_failed", "evaluation_recovered"]
        assert daemon.healthy

    def test_a_failing_evaluation_past_a_settle_deadline_is_no_tight_loop(
            self, node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
        """The held verdict's deadline stays in the past: wait a retry interval, not 10 ms."""
        daemon = daemon_for(node, settle=2.0)
        daemon.run_once(NOW)
        node.current().unlink()
        daemon.run_once(NOW + timedelta(seconds=1))  # held until NOW + 3 s
        monkeypatch.setattr(daemon_module, "build_snapshot", _failing_build)
        later = NOW + timedelta(seconds=4)
        daemon.run_once(later)
        assert not daemon.healthy
        assert daemon._timeout(later) >= FAILED_RETRY_SECONDS
