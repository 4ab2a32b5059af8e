"""The daemon's discovery: re-discovered on a new kubelet pid or a changed unit, kept
while the kubelet is down, every change logged as kubelet_settings_changed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.config import ApiSettings, DaemonSettings, Settings, SourceSettings
from agent.daemon.kubelet import KubeletTracker
from agent.daemon.loop import Daemon
from agent.model import Policy
from tests import hosttree
from tests.hosttree import write
from tests.nodetree import NOW

UNIT = "/etc/systemd/system/kubelet.service"


def settings(root: Path) -> Settings:
    return Settings(sources=SourceSettings(host_root=root), api=ApiSettings(offline=True),
                    policy=Policy(), daemon=DaemonSettings())


@pytest.fixture
def host(tmp_path: Path) -> Path:
    root = tmp_path / "host"
    hosttree.seeds_node(root, node="from-unit")
    (root / "proc").symlink_to("/proc")
    return root


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait(5)


def kubelet(tmp_path: Path, started: list[subprocess.Popen[bytes]],
            *flags: str) -> subprocess.Popen[bytes]:
    proc = hosttree.start_kubelet(tmp_path / "bin", ["/opt/k8s/bin/kubelet", *flags])
    started.append(proc)
    return proc


class TestTracker:
    def test_new_pid_rediscovers_and_logs_old_to_new(
            self, tmp_path: Path, host: Path, started: list[subprocess.Popen[bytes]]) -> None:
        first = kubelet(tmp_path, started, "--cert-dir=/a", "--hostname-override=n1")
        tracker = KubeletTracker(settings(host), pids=frozenset({first.pid}))
        k, _ = tracker.refresh()
        assert (k.pid, k.cert_dir.value) == (first.pid, "/a")
        assert not tracker.process_changed()
        assert tracker.refresh() == (k, [])  # nothing changed: no discovery, no event

        first.kill()
        first.wait(5)
        assert tracker.process_changed()
        down, events = tracker.refresh()
        assert down.pid is None and down.cert_dir.value == "/a"  # last good kept
        assert [e.kind for e in events] == ["kubelet_down", "kubelet_settings_changed"]

        second = kubelet(tmp_path, started, "--cert-dir=/b", "--hostname-override=n1")
        tracker._pids = frozenset({first.pid, second.pid})
        assert tracker.process_changed()
        new, events = tracker.refresh()
        assert (new.pid, new.cert_dir.value) == (second.pid, "/b")
        changes = dict(events[0].fields)["changes"]
        assert events[0].kind == "kubelet_settings_changed"
        assert f"pid: None -> {second.pid}" in str(changes)
        assert "certDir: /a -> /b" in str(changes)

    def test_a_changed_unit_rediscovers_while_the_kubelet_is_down(self, host: Path) -> None:
        tracker = KubeletTracker(settings(host), pids=frozenset())
        k, _ = tracker.refresh()
        assert k.cert_dir.value == "/etc/kubernetes/cert"
        unit = host / UNIT.lstrip("/")
        assert str(unit) in tracker.inputs()
        unit.write_text(unit.read_text().replace("--cert-dir=/etc/kubernetes/cert",
                                                 "--cert-dir=/srv/cert"))
        assert tracker.refresh() == (k, [])  # no event seen: nothing re-read
        new, events = tracker.refresh([str(unit)])
        assert new.cert_dir.value == "/srv/cert"
        assert "certDir: /etc/kubernetes/cert -> /srv/cert" in str(dict(events[0].fields))

    def test_a_new_drop_in_directory_entry_is_an_input(self, host: Path) -> None:
        write(host, f"{UNIT}.d/50-x.conf", "[Service]\nEnvironment=A=1\n")
        tracker = KubeletTracker(settings(host), pids=frozenset())
        tracker.refresh()
        assert str(host / f"{UNIT}.d".lstrip("/")) in tracker.inputs()


class TestDaemon:
    def test_run_once_logs_settings_changes_and_judges_with_them(self, host: Path) -> None:
        daemon = Daemon(settings(host))
        daemon.kubelet = KubeletTracker(settings(host), pids=frozenset())
        daemon.run_once(NOW)
        assert daemon.snapshot is not None and daemon.snapshot.node_name == "from-unit"
        assert daemon.settings.sources.node_name == "from-unit"
        unit = host / UNIT.lstrip("/")
        unit.write_text(unit.read_text().replace("from-unit", "renamed"))
        with capture_logs() as logs:
            daemon.run_once(NOW, [str(unit)])
        changed = [e for e in logs if e["event"] == "kubelet_settings_changed"]
        assert changed and "nodeName: from-unit -> renamed" in changed[0]["changes"]
        assert daemon.snapshot.node_name == "renamed"

    def test_no_kubelet_is_a_warning_and_keeps_looking(self, tmp_path: Path) -> None:
        daemon = Daemon(settings(tmp_path))
        daemon.run_once(NOW)
        state = daemon.holder.get()
        assert state is not None
        assert [f.code for f in state.evaluation.findings] == ["KUBELET_NOT_FOUND"]
        assert state.evaluation.status.name == "WARNING"
        unit = write(tmp_path, UNIT, "[Service]\nExecStart=/k --cert-dir=/pki\n")
        assert str(unit) in daemon.kubelet.inputs()  # it keeps looking where units appear
        daemon.run_once(NOW, [str(unit)])
        assert daemon.snapshot is not None and daemon.snapshot.kubelet is not None
        assert daemon.snapshot.kubelet.found and daemon.snapshot.cert_dir == "/pki"
