"""The HTTP endpoint under abuse: real sockets on 127.0.0.1, bounded in count and time.

In-process cases shorten the deadlines (module constants) so a slow client is cut off in
a fraction of a second; the process cases run the real ``run`` daemon with a small
RLIMIT_NOFILE, the attack of issue 13 at a scale a test can afford.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.clock import utcnow
from agent.health import Health
from agent.sinks import httpserver
from agent.sinks.http import MetricsServer, serve
from tests import metrics_fixtures as fx
from tests.daemonkit import NODE, Node, build, wait_for
from tests.test_daemon_process import TIMEOUT, Agent


def get(host: str, port: int, path: str = "/metrics") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def health() -> Health:
    return Health()


@pytest.fixture
def server(health: Health, monkeypatch: pytest.MonkeyPatch) -> Iterator[MetricsServer]:
    monkeypatch.setattr(httpserver, "REQUEST_DEADLINE", 0.3)
    monkeypatch.setattr(httpserver, "MAX_CONNECTIONS", 8)
    state = fx.full_state()
    running = serve("127.0.0.1:0", lambda: state, health=health)
    try:
        yield running
    finally:
        running.shutdown()


@contextlib.contextmanager
def held(port: int, count: int, data: bytes = b"GET /metrics HTTP/1.1\r\n"
         ) -> Iterator[list[socket.socket]]:
    """``count`` connections that sent ``data`` (an unfinished request) and wait."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(data)
            socks.append(s)
        yield socks
    finally:
        for s in socks:
            s.close()


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, TimeoutError):
        return True


def rejected(health: Health, reason: str) -> int:
    return dict(health.snapshot().http_rejected).get(reason, 0)


class TestBoundedServer:
    def test_a_trickling_client_is_cut_at_the_whole_request_deadline(
            self, server: MetricsServer, health: Health) -> None:
        """One header line every 50 ms forever: closed once the request deadline passes."""
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\n")
            cut = False
            for n in range(200):  # 10 s of trickling at most; the deadline is 0.3 s
                try:
                    s.sendall(f"X-Slow-{n}: 1\r\n".encode())
                except (BrokenPipeError, ConnectionResetError):
                    cut = True
                    break
                time.sleep(0.05)
            assert cut or closed_by_server(s)
            assert n < 100
        wait_for(lambda: rejected(health, "deadline") == 1, 5, "deadline counted")

    def test_connections_beyond_the_cap_are_closed_and_a_scrape_still_gets_through(
            self, server: MetricsServer, health: Health) -> None:
        """20 slow clients against a cap of 8: the scrape is answered, 12+ are closed."""
        with held(server.port, 20) as socks:
            assert get(server.host, server.port)[0] == 200
            assert server.connections <= 8
            assert sum(closed_by_server(s) for s in socks[:12]) == 12
        assert rejected(health, "too_many_connections") >= 12

    def test_connections_are_not_logged(self, server: MetricsServer,
                                        capfd: pytest.CaptureFixture[str]) -> None:
        """Timed-out, evicted and malformed connections write nothing (issue: 1,593 lines)."""
        with capture_logs() as logs, held(server.port, 12):
            with socket.create_connection((server.host, server.port), timeout=5) as bad:
                bad.sendall(b"NOT HTTP\r\n\r\n")
                bad.recv(100)
            time.sleep(0.4)  # past the deadline: the held ones are cut too
        assert logs == []
        out, err = capfd.readouterr()
        assert out == "" and err == ""

    def test_the_listen_backlog_is_not_five(self, server: MetricsServer) -> None:
        """`ss` shows the backlog of a listening socket in Send-Q."""
        ss = subprocess.run(["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True,
                            text=True, check=True, timeout=10).stdout.split()
        assert int(ss[2]) == httpserver.BACKLOG >= 512

    def test_bad_requests_get_an_answer_and_a_count(self, server: MetricsServer,
                                                    health: Health) -> None:
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            s.sendall(b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
            assert s.recv(100).startswith(b"HTTP/1.1 405")
        assert rejected(health, "bad_request") == 1


def _threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^Threads:\s+(\d+)", status, re.M)
    assert match
    return int(match.group(1))


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return build(tmp_path / "node", now=utcnow())


class TestRealDaemonUnderAttack:
    def test_more_slow_clients_than_descriptors_hide_nothing(self, node: Node,
                                                             tmp_path: Path) -> None:
        """150 slow clients against RLIMIT_NOFILE=110: scrapes answer, a rotation shows,
        no evaluation fails with EMFILE, no CERT_UNREADABLE, no log line per connection."""
        agent = Agent(node, tmp_path, nofile=110)
        try:
            wait_for(lambda: agent.get("/healthz")[0] == 200, TIMEOUT, "/healthz")
            lines_before = len(agent.lines)
            with held(int(agent.url.rsplit(":", 1)[1]), 150):
                serial = node.rotate("client", utcnow())
                wait_for(lambda: f'serial="{serial}"' in agent.metrics(), TIMEOUT,
                         "new serial under attack")
                assert _threads(agent.proc.pid) < 20
            metrics = agent.metrics()
            assert "CERT_UNREADABLE" not in metrics
            match = re.search(r'http_rejected_total\{reason="too_many_connections"\} (\d+)',
                              metrics)
            assert match and int(match.group(1)) >= 150 - httpserver.MAX_CONNECTIONS
            kinds = [line["event"] for line in agent.lines[lines_before:]]
            assert "evaluation_failed" not in kinds
            assert not [k for k in kinds if k.startswith("http")]
        finally:
            agent.close()

    def test_a_reload_to_a_busy_port_keeps_the_old_listener(self, node: Node,
                                                            tmp_path: Path) -> None:
        agent = Agent(node, tmp_path)
        busy = socket.socket()
        try:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            wait_for(lambda: agent.get("/healthz")[0] == 200, TIMEOUT, "/healthz")
            agent.flags.write_text(
                f'KUBELET_CERT_AGENT_ARGS="--offline --cert-dir {node.cert_dir} '
                f'--kubelet-config {node.config} --node-name {NODE} --critical-days 3 '
                f'--listen 127.0.0.1:{busy.getsockname()[1]}"\n')
            agent.proc.send_signal(1)  # SIGHUP
            failed = wait_for(lambda: agent.event("reload_failed"), TIMEOUT, "reload_failed")
            assert "in use" in failed["error"]
            assert agent.event("reloaded") is None
            assert agent.get("/healthz")[0] == 200  # the old listener still answers
        finally:
            busy.close()
            agent.close()
