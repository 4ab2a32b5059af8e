"""The daemon's step, ``Daemon.run_once(now)``, on real node trees with fixed instants.

Every tree is written by agent.pkigen in the kubelet's exact layout, and every rotation
is the kubelet's real non-atomic swap (pkigen.kubelet_swap). No thread is started here:
the loop around run_once is covered by test_daemon_process.py and test_soak.py.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent import codes
from agent.checks import next_change
from agent.config import ApiSettings
from agent.daemon.loop import Daemon, status_line
from agent.daemon.services import Services
from agent.daemon.state import count_of
from agent.model import AgentState, ApiState, CertFile, Evaluation, Finding, Role, Severity
from agent.sinks.textfile import TEXTFILE_NAME
from tests.daemonkit import NOW, Node, build, daemon_for

TRANSIENT = {codes.SYMLINK_BROKEN, codes.CLIENT_CERT_MISSING, codes.SERVER_CERT_MISSING,
             codes.CERT_UNREADABLE}


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return build(tmp_path)


def at(seconds: float) -> Any:
    return NOW + timedelta(seconds=seconds)


def published(daemon: Daemon) -> AgentState:
    state = daemon.holder.get()
    assert state is not None
    return state


def client(state: AgentState) -> CertFile:
    cert = state.evaluation.snapshot.cert(Role.CLIENT)
    assert cert is not None
    return cert


def finding_codes(state: AgentState) -> set[str]:
    return {f.code for f in state.evaluation.findings}


class TestFirstScan:
    def test_the_kubelet_certificates_are_published_before_a_big_watch_scan(
            self, node: Node, tmp_path: Path) -> None:
        """The first evaluation publishes the cert dir marked incomplete, then everything."""
        watched = tmp_path / "watched"
        watched.mkdir()
        (watched / "front-proxy.crt").write_bytes(node.pki.ca.cert_pem())
        daemon = daemon_for(node)
        daemon.settings = replace(daemon.settings, sources=replace(
            daemon.settings.sources, watch_paths=(watched,)))
        seen: list[AgentState] = []
        publish = daemon.holder.set
        daemon.holder.set = lambda state: (seen.append(state), publish(state))[1]  # type: ignore[method-assign]
        daemon.run_once(NOW)
        daemon.run_once(at(1))
        partial, complete = seen[0].evaluation.snapshot, seen[1].evaluation.snapshot
        assert not partial.complete and partial.cert(Role.CLIENT) is not None
        assert partial.cert(Role.WATCHED) is None
        assert complete.complete and complete.cert(Role.WATCHED) is not None
        assert len(seen) == 3 and seen[2].evaluation.snapshot.complete  # once, at the start

    def test_without_watch_paths_the_first_state_is_complete(self, node: Node) -> None:
        """Nothing slow to wait for: no partial state is published."""
        daemon = daemon_for(node)
        seen: list[AgentState] = []
        publish = daemon.holder.set
        daemon.holder.set = lambda state: (seen.append(state), publish(state))[1]  # type: ignore[method-assign]
        daemon.run_once(NOW)
        assert [s.evaluation.snapshot.complete for s in seen] == [True]


class TestRunOnce:
    def test_a_healthy_node_publishes_no_findings(self, node: Node) -> None:
        daemon = daemon_for(node)
        state = daemon.run_once(NOW)
        assert state is not None and state is daemon.holder.get()
        assert state.evaluation.findings == ()
        assert state.stats.evaluations_total == 1
        assert daemon.healthy

    def test_a_new_certificate_is_published_at_once(self, node: Node) -> None:
        daemon = daemon_for(node)
        daemon.run_once(NOW)
        serial = node.rotate("client", NOW)
        state = published_after(daemon, at(0.01))
        assert client(state).leaf is not None and client(state).leaf.serial == serial  # type: ignore[union-attr]
        assert count_of(state.stats.rotations_total, "client") == 1

    def test_a_rotation_is_logged_once_with_old_and_new_serial(self, node: Node) -> None:
        daemon = daemon_for(node)
        old = client(published_after(daemon, NOW)).leaf
        serial = node.rotate("client", NOW)
        with capture_logs() as logs:
            daemon.run_once(at(1))
            daemon.run_once(at(2))
        rotations = [e for e in logs if e["event"] == "rotation_observed"]
        assert len(rotations) == 1
        assert old is not None
        assert rotations[0]["old_serial"] == old.serial
        assert rotations[0]["new_serial"] == serial
        assert rotations[0]["role"] == "client"
        assert rotations[0]["timing"] == "before-window"  # 30 % into the old lifetime

    def test_nothing_is_logged_when_nothing_changed(self, node: Node) -> None:
        daemon = daemon_for(node)
        daemon.run_once(NOW)
        with capture_logs() as logs:
            for second in range(1, 5):
                daemon.run_once(at(second))
        assert logs == []

    def test_a_verdict_that_changes_with_time_alone_is_published_at_once(
            self, node: Node) -> None:
        """Nothing on disk changed, so there is nothing to settle."""
        daemon = daemon_for(node)
        daemon.run_once(NOW)
        later = NOW + timedelta(days=230)  # the client cert is then 93 % into its life
        state = published_after(daemon, later)
        assert finding_codes(state) & {codes.ROTATION_OVERDUE, codes.CERT_EXPIRING_SOON}


def published_after(daemon: Daemon, now: Any) -> AgentState:
    daemon.run_once(now)
    return published(daemon)


class TestSettle:
    @pytest.mark.parametrize("stop_after", [1, 2, 3, 4], ids=[
        "stale-updated-removed", "updated-link-created", "current-removed",
        "updated-renamed"])
    def test_no_step_of_the_kubelet_swap_publishes_a_bad_verdict(
            self, node: Node, stop_after: int) -> None:
        daemon = daemon_for(node)
        before = client(published_after(daemon, NOW))
        node.rotate("client", NOW, stop_after=stop_after)
        with capture_logs() as logs:
            for t in (0.001, 0.5, 1.0, 1.999):
                state = published_after(daemon, at(t))
                assert not finding_codes(state) & TRANSIENT
                cert = client(state)
                assert cert.leaf is not None and cert.stale_since is None
                assert cert.read_error is None
                assert cert.link is None or cert.link.problem is None
        if stop_after < 4:
            assert client(state) == before  # the published file is the previous one
        bad = {"finding_raised", "input_unreadable", "finding_severity_changed"}
        assert not [e for e in logs if e["event"] in bad]

    def test_a_completed_swap_after_a_held_step_publishes_the_new_certificate(
            self, node: Node) -> None:
        daemon = daemon_for(node)
        daemon.run_once(NOW)
        path, serial = node.write_generation("client", NOW)
        from agent import pkigen
        pkigen.kubelet_swap(node.cert_dir, "client", path, stop_after=3)
        daemon.run_once(at(0.1))
        os.rename(node.cert_dir / "kubelet-client-updated.pem", node.current())
        state = published_after(daemon, at(0.2))
        assert client(state).leaf is not None
        assert client(state).leaf.serial == serial  # type: ignore[union-attr]
        assert daemon.next_deadline() == next_change(daemon.snapshot, at(0.2),  # type: ignore[arg-type]
                                                            daemon.settings.policy)

    @pytest.mark.parametrize(("breakage", "code"), [
        ("current-removed", codes.CLIENT_CERT_MISSING),
        ("target-deleted", codes.SYMLINK_BROKEN),
        ("garbage-generation", codes.CERT_UNREADABLE),
    ])
    def test_a_real_breakage_is_published_once_it_held_for_the_settle_period(
            self, node: Node, breakage: str, code: str) -> None:
        daemon = daemon_for(node)
        daemon.run_once(NOW)
        break_client(node, breakage)
        assert code not in finding_codes(published_after(daemon, at(1)))
        assert code not in finding_codes(published_after(daemon, at(2.5)))  # held since 1 s
        with capture_logs() as logs:
            state = published_after(daemon, at(3))
        assert code in finding_codes(state)
        raised = [e for e in logs if e["event"] == "finding_raised" and e["code"] == code]
        assert len(raised) == 1

    def test_a_held_verdict_sets_the_timer_to_its_settle_deadline(self, node: Node) -> None:
        daemon = daemon_for(node, settle=2.0)
        daemon.run_once(NOW)
        break_client(node, "current-removed")
        daemon.run_once(at(1))
        assert daemon.next_deadline() == at(3)

    def test_a_bad_verdict_that_heals_within_the_settle_period_is_never_published(
            self, node: Node) -> None:
        daemon = daemon_for(node)
        daemon.run_once(NOW)
        target = os.readlink(node.current())
        node.current().unlink()
        daemon.run_once(at(0.5))
        node.current().symlink_to(target)
        with capture_logs() as logs:
            for t in (1, 3, 5):
                state = published_after(daemon, at(t))
        assert finding_codes(state) == set()
        assert logs == []


def break_client(node: Node, breakage: str) -> None:
    """Break the client certificate for good, the way operators find it broken."""
    if breakage == "current-removed":
        node.current().unlink()
    elif breakage == "target-deleted":
        Path(os.readlink(node.current())).unlink()
    else:
        path, _ = node.write_generation("client", NOW, written_at=NOW + timedelta(hours=1))
        path.write_bytes(b"this is not a certificate\n")
        from agent import pkigen
        pkigen.kubelet_swap(node.cert_dir, "client", path)


class TestStale:
    def test_a_file_turned_garbage_keeps_its_last_good_certificate_marked_stale(
            self, node: Node) -> None:
        daemon = daemon_for(node)
        good = client(published_after(daemon, NOW)).leaf
        Path(os.readlink(node.current())).write_bytes(b"\x00garbage\x00" * 10)
        daemon.run_once(at(1))
        with capture_logs() as logs:
            state = published_after(daemon, at(4))
            daemon.run_once(at(5))
            daemon.run_once(at(6))
        cert = client(state)
        assert cert.leaf == good
        assert cert.stale_since == at(1)
        assert cert.read_error is not None
        unreadable = [e for e in logs if e["event"] == "input_unreadable"]
        assert len(unreadable) == 1 and unreadable[0]["stale"] is True
        assert sum(n for _, n in state.stats.read_errors_total) == 1


class TestReload:
    def write_flags(self, node: Node, *extra: str) -> Path:
        flags = node.root / "kubelet-cert-agent.default"
        args = " ".join(["--offline", "--cert-dir", str(node.cert_dir), "--kubelet-config",
                         str(node.config), "--node-name", "node1", *extra])
        flags.write_text(f"# written by the test\nKUBELET_CERT_AGENT_ARGS=\"{args}\"\n")
        return flags

    def test_a_reload_applies_the_flags_file_and_keeps_counters_and_state(
            self, node: Node) -> None:
        flags = self.write_flags(node)
        daemon = Daemon(node.settings(), flags_file=flags)
        daemon.run_once(NOW)
        node.rotate("client", NOW)
        daemon.run_once(at(1))
        self.write_flags(node, "--warning-days", "400", "--warning-fraction", "0.9",
                         "--settle", "5")
        assert daemon.reload()
        assert published(daemon).stats.evaluations_total == 2
        state = published_after(daemon, at(2))
        assert daemon.settings.policy.warning_days == 400
        assert daemon.settings.daemon.settle == 5
        assert state.stats.evaluations_total == 3
        assert count_of(state.stats.rotations_total, "client") == 1
        assert codes.CERT_EXPIRING_SOON in finding_codes(state)

    @pytest.mark.parametrize("content", [
        'KUBELET_CERT_AGENT_ARGS="--no-such-flag"\n',
        'KUBELET_CERT_AGENT_ARGS="--settle"\n',
        "KUBELET_CERT_AGENT_ARGS='unterminated\n",
    ], ids=["unknown-flag", "missing-value", "bad-quoting"])
    def test_a_bad_flags_file_is_logged_and_the_old_settings_stay(
            self, node: Node, content: str) -> None:
        flags = node.root / "flags"
        flags.write_text(content)
        daemon = Daemon(node.settings(), flags_file=flags)
        daemon.run_once(NOW)
        before = daemon.settings
        with capture_logs() as logs:
            assert not daemon.reload()
        assert daemon.settings is before
        assert [e["event"] for e in logs] == ["reload_failed"]

    def test_a_missing_flags_file_is_logged_and_the_old_settings_stay(
            self, node: Node) -> None:
        daemon = Daemon(node.settings(), flags_file=node.root / "absent")
        with capture_logs() as logs:
            assert not daemon.reload()
        assert logs[0]["event"] == "reload_failed"


class TestTextfile:
    def test_the_textfile_holds_the_published_certificate(self, node: Node) -> None:
        out = node.root / "textfile"
        out.mkdir()
        daemon = daemon_for(node, textfile_dir=out)
        daemon.run_once(NOW)
        serial = node.rotate("client", NOW)
        daemon.run_once(at(1))
        assert f'serial="{serial}"' in (out / TEXTFILE_NAME).read_text()

    def test_a_failing_textfile_write_is_counted_and_logged_once(self, node: Node) -> None:
        daemon = daemon_for(node, textfile_dir=node.root / "no-such-dir")
        with capture_logs() as logs:
            daemon.run_once(NOW)
            daemon.run_once(at(1))
        assert published(daemon).stats.textfile_errors_total == 2
        assert [e["event"] for e in logs] == ["textfile_write_failed"]
        assert daemon.healthy


class TestApiUpdates:
    def test_an_api_update_wakes_the_loop_and_reaches_the_next_snapshot(
            self, node: Node) -> None:
        daemon = daemon_for(node)
        api = ApiState(server="https://127.0.0.1:6443", last_success=NOW)
        daemon.api_updated(api)
        assert daemon.waker.wait(0)
        state = published_after(daemon, NOW)
        assert state.evaluation.snapshot.api == api


class FakeMonitor:
    """Stands in for the API engineer's CsrMonitor: publishes one state, counts reloads."""

    def __init__(self, on_update: Any) -> None:
        self.on_update = on_update
        self.credential_reloads = 0

    def run(self, stop: threading.Event) -> None:
        self.on_update(ApiState(server="https://127.0.0.1:6443", last_success=NOW))
        stop.wait()

    def credentials_changed(self) -> None:
        self.credential_reloads += 1


class TestApiMonitor:
    def test_a_client_rotation_makes_the_monitor_reload_its_credentials(
            self, node: Node) -> None:
        daemon = Daemon(replace(node.settings(), api=ApiSettings(offline=False)))
        monitors: list[FakeMonitor] = []

        def factory(api: ApiSettings, name: str, clock: Any, on_update: Any,
                    kubelet: Any) -> FakeMonitor:
            monitors.append(FakeMonitor(on_update))
            return monitors[-1]

        daemon.services = Services(daemon, http=False, monitor_factory=factory)
        daemon.services.start()
        try:
            assert daemon.waker.wait(10)  # the monitor's first update wakes the loop
            state = published_after(daemon, NOW)
            assert state.evaluation.snapshot.api is not None
            node.rotate("server", NOW)
            daemon.run_once(at(1))
            assert monitors[0].credential_reloads == 0  # the serving cert is not a credential
            node.rotate("client", NOW)
            daemon.run_once(at(2))
            assert monitors[0].credential_reloads == 1
        finally:
            daemon.services.stop()

    def test_without_the_api_part_the_daemon_runs_offline_and_says_why(
            self, node: Node) -> None:
        daemon = Daemon(replace(node.settings(), api=ApiSettings(offline=False)))

        def broken(*_: Any) -> FakeMonitor:
            raise ImportError("no module named agent.sources.apiserver")

        daemon.services = Services(daemon, http=False, monitor_factory=broken)
        with capture_logs() as logs:
            daemon.services.start()
        daemon.services.stop()
        assert [e["event"] for e in logs] == ["api_disabled"]
        assert daemon.run_once(NOW) is not None


class TestStatusLine:
    @pytest.mark.parametrize(("findings", "line"), [
        ((), "OK: no findings"),
        ((Finding(codes.CERT_EXPIRING_SOON, Severity.WARNING, "m", "/p"),),
         "WARNING: 1 finding (CERT_EXPIRING_SOON)"),
        ((Finding(codes.CERT_EXPIRED, Severity.CRITICAL, "m", "/a"),
          Finding(codes.CERT_EXPIRED, Severity.CRITICAL, "m", "/b"),
          Finding(codes.KEY_MISMATCH, Severity.CRITICAL, "m", "/c"),
          Finding(codes.UNTRUSTED_ISSUER, Severity.WARNING, "m", "/d"),
          Finding(codes.ROTATION_DISABLED, Severity.WARNING, "m", None)),
         "CRITICAL: 5 findings (CERT_EXPIRED, KEY_MISMATCH, UNTRUSTED_ISSUER, ...)"),
    ], ids=["ok", "one-warning", "many"])
    def test_the_status_line_names_the_verdict_and_worst_codes(
            self, node: Node, findings: tuple[Finding, ...], line: str) -> None:
        snapshot = daemon_for(node).run_once(NOW).evaluation.snapshot  # type: ignore[union-attr]
        assert status_line(Evaluation(snapshot=snapshot, now=NOW, findings=findings)) == line

    def test_before_the_first_evaluation_the_status_is_unknown(self) -> None:
        assert status_line(None).startswith("UNKNOWN")
