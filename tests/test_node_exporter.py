"""End to end with Debian's real prometheus-node-exporter reading the agent's textfile."""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.sinks.metrics import render
from agent.sinks.textfile import write_textfile
from tests import metrics_fixtures as fx
from tests.conftest import require_tool
from tests.nodetree import real_node_state

READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fetch(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def wait_until_serving(process: subprocess.Popen[bytes], port: int) -> None:
    """Poll the port until node_exporter answers, it dies, or the timeout passes."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"node_exporter exited with {process.returncode}")
        try:
            fetch(port)
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.05)  # polling a port another process opens: no event to wait on
    pytest.fail(f"node_exporter did not serve on port {port} within {READY_TIMEOUT} s")


@pytest.fixture
def textfile_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "textfile"
    directory.mkdir()
    return directory


@pytest.fixture
def node_exporter(textfile_dir: Path) -> Iterator[int]:
    """A running node_exporter with only the textfile collector; yields its port."""
    binary = require_tool("prometheus-node-exporter")
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
         "--collector.textfile", f"--collector.textfile.directory={textfile_dir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_serving(process, port)
        yield port
    finally:
        process.kill()
        process.wait(timeout=30)


def samples(exposition: str, prefix: str) -> dict[str, str]:
    """``series -> value`` for every sample line starting with ``prefix``.

    Empty labels are dropped: node_exporter gives every sample of a family the same label
    names (``index=""`` where we write none), and Prometheus stores an empty label as absent.
    """
    found = {}
    for line in exposition.splitlines():
        if line.startswith(prefix):
            series, value = line.rsplit(" ", 1)
            series = re.sub(r'(?<=[{,])\w+="",?', "", series).replace(",}", "}")
            found[series.replace("{}", "")] = value
    return found


class TestNodeExporterTextfile:
    def test_the_agent_series_come_out_of_node_exporter(self, node_exporter: int,
                                                        textfile_dir: Path) -> None:
        """Every agent sample written to the textfile is exported, with no scrape error."""
        data = render(fx.full_state())
        write_textfile(textfile_dir, data)
        exported = fetch(node_exporter)
        assert re.search(r"^node_textfile_scrape_error 0$", exported, re.MULTILINE), exported
        ours = samples(data.decode(), "kubelet_cert_agent_")
        theirs = samples(exported, "kubelet_cert_agent_")
        assert len(ours) > 50
        assert {k: float(v) for k, v in theirs.items()} == \
            {k: float(v) for k, v in ours.items()}

    def test_node_exporter_sees_the_file_modification_time(self, node_exporter: int,
                                                           textfile_dir: Path) -> None:
        """node_exporter reports our file (and only ours: no temporary file is read)."""
        write_textfile(textfile_dir, render(fx.quiet_state()))
        exported = fetch(node_exporter)
        files = re.findall(r'^node_textfile_mtime_seconds\{file="([^"]+)"\}', exported,
                           re.MULTILINE)
        assert [Path(f).name for f in files] == ["kubelet_cert_agent.prom"]

    def test_a_real_node_state_is_exported_with_consistent_help(self, node_exporter: int,
                                                                textfile_dir: Path,
                                                                tmp_path: Path) -> None:
        """A state judged from real files, rewritten twice, is accepted each time."""
        state, _ = real_node_state(tmp_path / "node")
        for current in (state, fx.full_state()):
            write_textfile(textfile_dir, render(current))
            exported = fetch(node_exporter)
            assert re.search(r"^node_textfile_scrape_error 0$", exported, re.MULTILINE)
            assert "kubelet_cert_agent_certificate_not_after_timestamp_seconds{" in exported

    def test_a_textfile_with_timestamps_would_be_refused(self, node_exporter: int,
                                                         textfile_dir: Path) -> None:
        """Why render() never adds timestamps: node_exporter rejects such a file."""
        (textfile_dir / "stamped.prom").write_text(
            "# HELP x_stamped A sample with a client-side timestamp.\n"
            "# TYPE x_stamped gauge\nx_stamped 1 1700000000000\n")
        exported = fetch(node_exporter)
        assert re.search(r"^node_textfile_scrape_error 1$", exported, re.MULTILINE)
        assert "x_stamped 1" not in exported
