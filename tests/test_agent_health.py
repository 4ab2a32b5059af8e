"""The agent's own failures are the agent's: never a finding about the operator's files.

Each kind is injected for real where the kernel lets us (EMFILE: the process really runs
out of descriptors) and by raising from the failing function otherwise (ENOMEM, a bug in
the parser or the inventory). Every case keeps the last good verdict, marks it stale,
counts it in ``internal_errors_total{component}`` and logs it once with its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import resource
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent import codes
from agent.config import ApiSettings
from agent.daemon import loop as daemon_module
from agent.daemon.loop import UNHEALTHY_AFTER_FAILURES, Daemon
from agent.daemon.services import Services
from agent.daemon.supervise import ApiThread, Notifier
from agent.model import Role
from agent.sinks.metrics import render
from agent.sinks.textfile import TEXTFILE_NAME
from agent.sources import files as files_module
from agent.sources import parse as parse_module
from tests.daemonkit import NOW, Node, build, daemon_for, wait_for


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return build(tmp_path)


def _late(node: Node) -> datetime:
    """95 % through the client certificate's life: past the window, ROTATION_OVERDUE."""
    daemon = daemon_for(node)
    daemon.run_once(NOW)
    state = daemon.published()
    assert state is not None
    client = state.evaluation.snapshot.cert(Role.CLIENT)
    assert client is not None and client.leaf is not None
    return client.leaf.not_after - client.leaf.lifetime * 0.05


@contextlib.contextmanager
def out_of_descriptors() -> Iterator[None]:
    """Really exhaust this process's descriptors (RLIMIT_NOFILE lowered, the rest dup'ed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    opened = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (opened + 16, hard))
    held: list[int] = []
    try:
        for _ in range(64):  # bounded: the limit is at most 16 above what is open
            try:
                held.append(os.dup(0))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
                break
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _codes(daemon: Daemon) -> list[str]:
    state = daemon.published()
    assert state is not None
    return sorted(f.code for f in state.evaluation.findings)


def _raise(error: BaseException) -> Any:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise error

    return fail


class TestInjectedFailures:
    def test_emfile_keeps_rotation_overdue_and_publishes_no_unreadable(
            self, node: Node, tmp_path: Path) -> None:
        """Out of descriptors: the real ROTATION_OVERDUE stays, no CERT_UNREADABLE appears."""
        textfile = tmp_path / "textfile"
        textfile.mkdir()
        late = _late(node)
        daemon = daemon_for(node, textfile_dir=textfile)
        daemon.run_once(late)
        before = _codes(daemon)
        assert codes.ROTATION_OVERDUE in before
        with capture_logs() as logs, out_of_descriptors():
            for second in range(1, 4):
                daemon.run_once(late + timedelta(seconds=second))
        assert _codes(daemon) == before
        assert codes.CERT_UNREADABLE not in _codes(daemon)
        failed = [e for e in logs if e["event"] == "evaluation_failed"]
        assert len(failed) == 1 and failed[0]["component"] == "sources"
        assert "EMFILE" in failed[0]["error"] and "Traceback" in failed[0]["traceback"]
        health = daemon.health.snapshot()
        assert dict(health.internal_errors)["sources"] == 3
        assert health.stale_since == late + timedelta(seconds=1)
        assert not daemon.loop_healthy  # three in a row: the watchdog is no longer fed
        # once descriptors are back, the next evaluation clears the stale mark
        daemon.run_once(late + timedelta(seconds=5))
        assert daemon.health.snapshot().stale_since is None and daemon.loop_healthy
        text = (textfile / TEXTFILE_NAME).read_text()
        assert 'kubelet_cert_agent_internal_errors_total{component="sources"} 3.0' in text

    @pytest.mark.parametrize(("where", "error", "component"), [
        pytest.param((files_module, "_read_once"),
                     OSError(errno.ENOMEM, "Cannot allocate memory"), "sources", id="ENOMEM"),
        pytest.param((files_module, "_read_once"),
                     OSError(errno.ENFILE, "Too many open files"), "sources", id="ENFILE"),
        pytest.param((parse_module, "_parse"), RuntimeError("a bug in the parser"), "parse",
                     id="parser-bug"),
        pytest.param((daemon_module, "build_snapshot"), KeyError("a bug in the loop"),
                     "evaluation", id="loop-bug"),
    ])
    def test_each_kind_keeps_the_verdict_and_is_counted_as_the_agents(
            self, node: Node, monkeypatch: pytest.MonkeyPatch, where: tuple[object, str],
            error: BaseException, component: str) -> None:
        late = _late(node)
        daemon = daemon_for(node)
        daemon.run_once(late)
        before = _codes(daemon)
        assert codes.ROTATION_OVERDUE in before
        monkeypatch.setattr(*where, _raise(error))
        with capture_logs() as logs:
            daemon.run_once(late + timedelta(seconds=1))
            daemon.run_once(late + timedelta(seconds=2))
        assert _codes(daemon) == before
        assert dict(daemon.health.snapshot().internal_errors)[component] == 2
        assert [e["event"] for e in logs] == ["evaluation_failed"]
        assert daemon.health.snapshot().stale_since is not None
        exposition = render(daemon.published(), daemon.health.snapshot()).decode()
        assert "kubelet_cert_agent_verdict_stale 1.0" in exposition

    def test_a_snapshot_bug_is_not_a_made_up_unreadable_certificate(
            self, node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
        """The snapshot catch-all used to invent CRITICAL CERT_UNREADABLE for both certs."""
        from agent import snapshot as snapshot_module

        daemon = daemon_for(node)
        daemon.run_once(NOW)
        monkeypatch.setattr(snapshot_module, "scan_cert_dir", _raise(ValueError("bug")))
        daemon.run_once(NOW + timedelta(seconds=1))
        assert _codes(daemon) == []
        assert dict(daemon.health.snapshot().internal_errors)["snapshot"] == 1

    def test_the_watchdog_is_fed_until_failures_repeat(
            self, node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
        daemon = daemon_for(node)
        daemon.run_once(NOW)
        monkeypatch.setattr(daemon_module, "build_snapshot", _raise(RuntimeError("bug")))
        for second in range(1, UNHEALTHY_AFTER_FAILURES):
            daemon.run_once(NOW + timedelta(seconds=second))
            assert daemon.loop_healthy
        daemon.run_once(NOW + timedelta(seconds=UNHEALTHY_AFTER_FAILURES))
        assert not daemon.loop_healthy


class _CrashingMonitor:
    def __init__(self, crashes: int) -> None:
        self.crashes, self.runs = crashes, 0
        self.message = "quoted input: " + "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49"

    def run(self, stop: threading.Event) -> None:
        self.runs += 1
        if self.runs <= self.crashes:
            raise RuntimeError(self.message)  # a message that might quote input
        stop.wait(30)

    def credentials_changed(self) -> None:
        """Nothing to reload."""


class TestApiThread:
    def test_a_crashing_monitor_is_reported_and_restarted(self) -> None:
        """A dead API thread is noticed (on_crash), then run again after the back-off."""
        monitor = _CrashingMonitor(crashes=2)
        seen: list[tuple[str, float]] = []
        thread = ApiThread(monitor, lambda exc, wait: seen.append((type(exc).__name__, wait)),
                           first_backoff=0.01)
        thread.start()
        try:
            wait_for(lambda: monitor.runs >= 3, 10, "third run")
        finally:
            thread.stop(1)
        assert [name for name, _ in seen] == ["RuntimeError", "RuntimeError"]
        assert seen[1][1] == 2 * seen[0][1]  # the back-off doubles
        assert thread.crashes == 2 and thread.crashed == "RuntimeError"


class TestWatchdogInTheLoop:
    def test_the_real_loop_stops_pinging_when_evaluations_keep_failing(
            self, node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """sd_notify over a real datagram socket: WATCHDOG=1 while healthy, none after."""
        path = str(tmp_path / "notify.sock")
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(path)
        receiver.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        notifier = Notifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000"})
        daemon = Daemon(node.settings(), notifier=notifier)
        daemon.services = Services(daemon, http=False)
        runner = threading.Thread(target=daemon.serve, daemon=True)
        runner.start()
        try:
            wait_for(lambda: "WATCHDOG=1" in _drain(receiver), TIMEOUT_S, "a first ping")
            monkeypatch.setattr(daemon_module, "build_snapshot", _raise(RuntimeError("bug")))
            os.utime(node.current())  # a real inotify event: the next evaluation fails
            wait_for(lambda: daemon.failures > UNHEALTHY_AFTER_FAILURES, TIMEOUT_S, "failures")
            _drain(receiver)  # anything sent before the streak grew this long
            wait_for(lambda: daemon.failures > UNHEALTHY_AFTER_FAILURES + 3, TIMEOUT_S,
                     "more failures")
            assert "WATCHDOG=1" not in _drain(receiver)
        finally:
            daemon.request_stop()
            runner.join(5)
            receiver.close()


TIMEOUT_S = 20.0


def _drain(sock: socket.socket) -> list[str]:
    lines: list[str] = []
    while True:
        try:
            lines.extend(sock.recv(4096).decode().splitlines())
        except BlockingIOError:
            return lines


class TestApiThreadInTheDaemon:
    def test_a_dead_api_thread_is_counted_logged_and_restarted(self, node: Node) -> None:
        """Services wire the crash to internal_errors{api}, api_thread_restarts_total and
        one api_thread_crashed event with its traceback; the monitor runs again."""
        monitor = _CrashingMonitor(crashes=1)
        settings = replace(node.settings(), api=ApiSettings(offline=False))
        daemon = Daemon(settings)
        daemon.services = Services(daemon, http=False,
                                   monitor_factory=lambda *_args: monitor)
        with capture_logs() as logs:
            daemon.services.start()
            try:
                wait_for(lambda: monitor.runs >= 2, TIMEOUT_S, "the restarted monitor")
            finally:
                daemon.services.stop()
        crashed = [e for e in logs if e["event"] == "api_thread_crashed"]
        assert len(crashed) == 1
        trace = crashed[0]["traceback"]
        assert "RuntimeError" in trace and ", in run" in trace  # the frame that raised
        assert monitor.message not in trace  # messages may quote input: never logged
        health = daemon.health.snapshot()
        assert dict(health.internal_errors)["api"] == 1 and health.api_restarts == 1


class TestSourceUp:
    def test_each_local_source_is_up_until_it_cannot_be_read(self, node: Node) -> None:
        daemon = daemon_for(node)
        daemon.run_once(NOW)
        assert _source_up(daemon) == {"cert_dir": 1.0, "kubelet_config": 1.0}
        node.config.write_text("{not yaml: [")
        shutil.rmtree(node.cert_dir)
        daemon.run_once(NOW + timedelta(seconds=1))
        assert _source_up(daemon) == {"cert_dir": 0.0, "kubelet_config": 0.0}


def _source_up(daemon: Daemon) -> dict[str, float]:
    text = render(daemon.published()).decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^kubelet_cert_agent_source_up\{source="(\w+)"\} (\S+)$', text, re.M)}
