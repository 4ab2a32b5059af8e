"""A failed textfile write is retried with back-off until it succeeds (issue 13, item 5).

The daemon runs on a fake monotonic clock (a parameter), the disk is real: the textfile
directory is removed (every write fails with ENOENT) and re-created.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.daemon.loop import (
    TEXTFILE_CHECK_SECONDS,
    TEXTFILE_RETRY_FIRST,
    TEXTFILE_RETRY_MAX,
    Daemon,
)
from agent.sinks.textfile import TEXTFILE_NAME
from tests.daemonkit import NOW, Node, build


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return build(tmp_path / "node")


def _daemon(node: Node, directory: Path, ticks: Ticks) -> Daemon:
    return Daemon(node.settings(textfile_dir=directory), monotonic_clock=ticks)


def test_a_failed_write_is_retried_with_doubling_back_off_until_it_succeeds(
        node: Node, tmp_path: Path) -> None:
    directory, ticks = tmp_path / "textfile", Ticks()
    daemon = _daemon(node, directory, ticks)  # the directory does not exist yet
    daemon.run_once(NOW)
    waits = []
    for _ in range(9):
        wait = daemon.textfile_retry_in
        assert wait is not None
        waits.append(wait)
        ticks.now += wait
        daemon.retry_textfile()
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert waits[0] == TEXTFILE_RETRY_FIRST and waits[-1] == TEXTFILE_RETRY_MAX
    directory.mkdir()
    ticks.now += TEXTFILE_RETRY_MAX - 1
    daemon.retry_textfile()
    assert not (directory / TEXTFILE_NAME).exists()  # not due yet: no busy retrying
    ticks.now += 1
    daemon.retry_textfile()
    assert (directory / TEXTFILE_NAME).exists() and daemon.textfile_retry_in is None
    text = (directory / TEXTFILE_NAME).read_text()
    assert "kubelet_cert_agent_textfile_write_errors_total 10.0" in text
    assert "kubelet_cert_agent_internal_errors_total" in text  # agent health goes there too


def test_a_recreated_directory_gets_the_file_back_without_an_input_event(
        node: Node, tmp_path: Path) -> None:
    directory, ticks = tmp_path / "textfile", Ticks()
    directory.mkdir()
    daemon = _daemon(node, directory, ticks)
    daemon.run_once(NOW)
    shutil.rmtree(directory)
    directory.mkdir()
    assert daemon._timeout(NOW) <= TEXTFILE_CHECK_SECONDS  # the loop wakes up to look
    daemon.retry_textfile()
    assert (directory / TEXTFILE_NAME).exists()
