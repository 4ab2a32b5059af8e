"""The watcher on real inotify (and real polling) in tmp dirs.

Each test waits on a condition (the watcher's wake-up) with a generous timeout; none
sleeps to let a thread run. Tests that assert "no wake-up" end with a real change and
check it is the only one reported: inotify delivers events in order, so an event the
agent's own reads caused would have been reported first.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyObserver
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent

from agent.config import SourceSettings
from agent.daemon.watch import Watcher
from agent.model import Event
from agent.snapshot import build_snapshot, input_paths, watch_dirs
from tests.daemonkit import NODE, NOW, Node, build

TIMEOUT = 10.0


class Harness:
    """A started watcher, the wake-ups it caused and the events it logged."""

    def __init__(self, poll: float | None = None,
                 factory: object | None = None) -> None:
        self.woken = threading.Event()
        self.events: list[Event] = []
        self.watcher = Watcher(self.woken.set, poll=poll,
                               observer_factory=factory,  # type: ignore[arg-type]
                               on_event=self.events.append, fallback_poll=0.05)
        self.watcher.start()

    def inputs(self, node: Node) -> tuple[frozenset[str], frozenset[str], list[str]]:
        """What the daemon passes to ``update``: directories, input paths, whole dirs."""
        sources = SourceSettings(cert_dir=node.cert_dir, kubelet_config=node.config,
                                 node_name=NODE)
        snap = build_snapshot(sources, NOW)
        return watch_dirs(snap, sources), input_paths(snap, sources), [str(node.cert_dir)]

    def watch_node(self, node: Node, ignored: tuple[str, ...] = ()) -> SourceSettings:
        dirs, paths, whole = self.inputs(node)
        self.watcher.update(dirs, paths, whole_dirs=whole, ignored_dirs=ignored)
        return SourceSettings(cert_dir=node.cert_dir, kubelet_config=node.config,
                              node_name=NODE)

    def changes(self, until: str) -> frozenset[str]:
        """Every changed path reported until ``until`` is among them."""
        seen: set[str] = set()
        while until not in seen:
            assert self.woken.wait(TIMEOUT), f"no wake-up for {until}"
            self.woken.clear()
            changed, _, _ = self.watcher.drain()
            seen |= changed
        return frozenset(seen)


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return build(tmp_path)


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.watcher.stop()


class TestInotify:
    def test_a_kubelet_swap_wakes_the_watcher(self, node: Node, harness: Harness) -> None:
        harness.watch_node(node)
        assert harness.watcher.mode == "inotify"
        node.rotate("client", NOW)
        changed = harness.changes(until=str(node.current()))
        assert str(node.cert_dir / "kubelet-client-updated.pem") in changed

    def test_the_agents_own_reads_do_not_wake_it(self, node: Node, harness: Harness) -> None:
        sources = harness.watch_node(node)
        for _ in range(3):
            build_snapshot(sources, NOW)  # opens, reads and closes every input
        for entry in node.cert_dir.iterdir():
            entry.read_bytes()
        sentinel = node.cert_dir / "kubelet-server-2027-01-01-00-00-00.pem"
        sentinel.write_bytes(b"new generation")
        assert harness.changes(until=str(sentinel)) == {str(sentinel)}

    def test_a_link_target_in_another_directory_is_watched(
            self, node: Node, harness: Harness, tmp_path: Path) -> None:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        target = elsewhere / "client.pem"
        target.write_bytes(Path(os.readlink(node.current())).read_bytes())
        node.current().unlink()
        node.current().symlink_to(target)
        harness.watch_node(node)
        assert str(elsewhere) in harness.watcher.watched
        target.write_bytes(target.read_bytes())  # rewritten in place, the link untouched
        assert str(target) in harness.changes(until=str(target))

    def test_changes_to_unrelated_files_next_to_an_input_are_ignored(
            self, node: Node, harness: Harness) -> None:
        harness.watch_node(node)  # watches the kubelet config's directory too
        (node.root / "unrelated.log").write_text("noise")
        node.config.write_text(node.config.read_text())
        assert harness.changes(until=str(node.config)) == {str(node.config)}

    def test_the_textfile_directory_never_wakes_the_watcher(
            self, node: Node, harness: Harness) -> None:
        harness.watch_node(node, ignored=(str(node.cert_dir),))
        (node.cert_dir / "kubelet_cert_agent.prom").write_text("x 1\n")
        node.config.write_text(node.config.read_text())
        assert harness.changes(until=str(node.config)) == {str(node.config)}

    def test_a_missing_cert_dir_is_seen_when_it_is_created(
            self, tmp_path: Path, harness: Harness) -> None:
        sources = SourceSettings(cert_dir=tmp_path / "kubelet" / "pki", kubelet_config=None,
                                 node_name=NODE)
        snap = build_snapshot(sources, NOW)
        harness.watcher.update(watch_dirs(snap, sources), input_paths(snap, sources),
                               whole_dirs=[str(sources.cert_dir)])
        ours = {d for d in harness.watcher.watched if d.startswith(str(tmp_path))}
        assert ours == {str(tmp_path)}  # (the host's systemd unit dirs are watched too)
        (tmp_path / "kubelet").mkdir()
        assert str(tmp_path / "kubelet") in harness.changes(until=str(tmp_path / "kubelet"))

    def test_a_queue_overflow_asks_for_a_full_rescan(self, node: Node,
                                                     harness: Harness) -> None:
        """The kernel's IN_Q_OVERFLOW, fed through watchdog's real inotify reader."""
        harness.watch_node(node)
        observer = harness.watcher._observer
        assert isinstance(observer, InotifyObserver)
        overflow = InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b"")  # type: ignore[arg-type]
        observer._inotify_fd.handle_event(overflow)
        assert harness.woken.wait(TIMEOUT)
        _, rescan, _ = harness.watcher.drain()
        assert rescan

    def test_the_watch_set_follows_the_inputs(self, node: Node, harness: Harness,
                                              tmp_path: Path) -> None:
        harness.watch_node(node)
        elsewhere = tmp_path / "moved"
        elsewhere.mkdir()
        assert harness.watcher.update([str(elsewhere)], [str(elsewhere / "a.pem")])
        assert harness.watcher.watched == {str(elsewhere)}
        assert not harness.watcher.update([str(elsewhere)], [str(elsewhere / "a.pem")])


    def test_a_cert_dir_deleted_and_restored_is_watched_again(
            self, node: Node, harness: Harness, tmp_path: Path) -> None:
        harness.watch_node(node)
        backup = tmp_path / "backup"
        node.cert_dir.rename(backup)
        # the same path, but a new directory the old watch never saw
        shutil.copytree(backup, node.cert_dir, symlinks=True)
        assert harness.watcher.update(*harness.inputs(node))
        node.rotate("client", NOW)
        assert str(node.current()) in harness.changes(until=str(node.current()))


class _NoWatchesLeft(InotifyObserver):
    def schedule(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        raise OSError(errno.ENOSPC, "inotify_add_watch: No space left on device")


def _no_instances_left() -> BaseObserver:
    raise OSError(errno.EMFILE, "inotify_init: Too many open files")


class TestFallback:
    def test_polling_on_request_sees_a_kubelet_swap(self, node: Node) -> None:
        h = Harness(poll=0.05)
        try:
            h.watch_node(node)
            assert h.watcher.mode == "polling"
            node.rotate("client", NOW)
            assert str(node.current()) in h.changes(until=str(node.current()))
        finally:
            h.watcher.stop()

    @pytest.mark.parametrize(("factory", "reason"), [
        (_NoWatchesLeft, "ENOSPC"), (_no_instances_left, "EMFILE"),
    ], ids=["max-user-watches", "max-user-instances"])
    def test_inotify_exhaustion_falls_back_to_polling_with_a_warning(
            self, node: Node, factory: object, reason: str) -> None:
        h = Harness(factory=factory)
        try:
            h.watch_node(node)
            assert h.watcher.mode == "polling"
            (warning,) = [e for e in h.events if e.kind == "watch_fallback"]
            assert warning.level == "warning" and warning.as_dict()["reason"] == reason
            node.rotate("client", NOW)
            assert str(node.current()) in h.changes(until=str(node.current()))
        finally:
            h.watcher.stop()


class TestRelevance:
    @pytest.mark.parametrize(("path", "relevant"), [
        ("/pki/kubelet-client-current.pem", True),
        ("/pki/kubelet-client-2027-01-01-00-00-00.pem", True),  # any entry of the cert dir
        ("/etc/kubelet/config.yaml", True),
        ("/etc/kubelet/other.yaml", False),
        ("/etc", True),  # a directory on the way to an input
        ("/pki/sub/deeper.pem", False),
        ("/textfile/kubelet_cert_agent.prom", False),
    ], ids=["input", "new-generation", "config", "config-neighbour", "ancestor",
            "subdirectory", "textfile"])
    def test_which_paths_can_change_a_verdict(self, path: str, relevant: bool) -> None:
        watcher = Watcher(lambda: None)
        watcher.update([], ["/pki/kubelet-client-current.pem", "/etc/kubelet/config.yaml",
                            "/textfile/kubelet_cert_agent.prom"],
                       whole_dirs=["/pki"], ignored_dirs=["/textfile"])
        assert watcher.relevant(path) is relevant
