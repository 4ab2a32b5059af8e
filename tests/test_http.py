"""agent.sinks.http: a real server on 127.0.0.1, spoken to over real sockets."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.model import AgentState, Evaluation
from agent.sinks.http import MetricsServer, parse_listen, serve
from agent.sinks.jsonout import evaluation_to_dict
from tests import metrics_fixtures as fx
from tests.conftest import require_tool
from tests.nodetree import real_node_state


class Published:
    """What the daemon would hold: the state currently published (None before the first)."""

    def __init__(self) -> None:
        self.state: AgentState | None = None

    def __call__(self) -> AgentState | None:
        return self.state


def get(server: MetricsServer, path: str, method: str = "GET",
        headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request(method, path, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def without_process(body: bytes) -> bytes:
    """The exposition without prometheus_client's process_* lines (CPU time moves)."""
    return b"".join(line for line in body.splitlines(keepends=True)
                    if b"process_" not in line)


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def server(published: Published) -> Iterator[MetricsServer]:
    running = serve("127.0.0.1:0", published)
    try:
        yield running
    finally:
        running.shutdown()


class TestParseListen:
    @pytest.mark.parametrize(("listen", "expected"), [
        pytest.param("127.0.0.1:9731", ("127.0.0.1", 9731), id="ipv4"),
        pytest.param("[::1]:9731", ("::1", 9731), id="ipv6-in-brackets"),
        pytest.param(":9731", ("0.0.0.0", 9731), id="all-interfaces"),  # noqa: S104
        pytest.param("localhost:0", ("localhost", 0), id="host-name-any-port"),
    ])
    def test_accepted_forms(self, listen: str, expected: tuple[str, int]) -> None:
        """HOST:PORT, [IPV6]:PORT and :PORT are understood."""
        assert parse_listen(listen) == expected

    @pytest.mark.parametrize("listen", [
        pytest.param("9731", id="no-colon"),
        pytest.param("127.0.0.1:", id="no-port"),
        pytest.param("127.0.0.1:http", id="port-not-a-number"),
        pytest.param("127.0.0.1:70000", id="port-too-large"),
        pytest.param("::1:9731", id="ipv6-without-brackets"),
    ])
    def test_rejected_forms_name_the_bad_value(self, listen: str) -> None:
        """A malformed --listen is a ValueError quoting it."""
        with pytest.raises(ValueError, match="--listen") as error:
            parse_listen(listen)
        assert repr(listen) in str(error.value)


class TestEndpoints:
    def test_metrics_serves_the_published_state(self, server: MetricsServer,
                                                published: Published) -> None:
        """/metrics is the text exposition of whatever is published at request time."""
        status, headers, body = get(server, "/metrics")
        assert status == 200 and b"kubelet_cert_agent_status 3.0" in body
        published.state = fx.full_state()
        status, headers, body = get(server, "/metrics")
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b"kubelet_cert_agent_status 2.0" in body
        assert b"kubelet_cert_agent_serving_csr_pending 2.0" in body

    def test_metrics_speaks_openmetrics_when_asked(self, server: MetricsServer,
                                                   published: Published) -> None:
        """An Accept for OpenMetrics gets OpenMetrics, terminated by # EOF."""
        published.state = fx.full_state()
        status, headers, body = get(server, "/metrics", headers={
            "Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"})
        assert status == 200
        assert headers["Content-Type"].startswith("application/openmetrics-text")
        assert body.endswith(b"# EOF\n")

    def test_metrics_ignores_the_query_string(self, server: MetricsServer) -> None:
        """/metrics?x=y is still /metrics."""
        assert get(server, "/metrics?debug=1")[0] == 200

    def test_healthz_is_503_before_the_first_evaluation_and_200_after(
            self, server: MetricsServer, published: Published) -> None:
        """Readiness follows the first published state."""
        assert get(server, "/healthz")[0] == 503
        published.state = fx.quiet_state()
        status, _, body = get(server, "/healthz")
        assert (status, body) == (200, b"ok\n")

    def test_head_answers_without_a_body(self, server: MetricsServer,
                                         published: Published) -> None:
        """HEAD gives the status and length, no body."""
        published.state = fx.quiet_state()
        status, headers, body = get(server, "/healthz", method="HEAD")
        assert (status, headers["Content-Length"], body) == (200, "3", b"")

    def test_status_is_unknown_json_before_the_first_evaluation(
            self, server: MetricsServer) -> None:
        """/status answers 503 with a JSON body saying nothing was evaluated yet."""
        status, headers, body = get(server, "/status")
        assert status == 503 and headers["Content-Type"] == "application/json"
        assert json.loads(body)["status"] == "UNKNOWN"

    def test_status_is_the_json_status_of_the_published_evaluation(
            self, server: MetricsServer, published: Published, tmp_path: Path) -> None:
        """/status is agent.sinks.jsonout.evaluation_to_dict of a real node's evaluation."""
        published.state, _ = real_node_state(tmp_path)
        status, headers, body = get(server, "/status")
        assert status == 200 and headers["Content-Type"] == "application/json"
        expected = json.loads(json.dumps(evaluation_to_dict(published.state.evaluation),
                                         default=str))
        assert json.loads(body) == expected

    @pytest.mark.parametrize("path", ["/", "/metricsx", "/status/extra", "/../etc/passwd"])
    def test_unknown_paths_are_404(self, server: MetricsServer, path: str) -> None:
        """Anything else is 404 with a hint of the valid paths."""
        status, _, body = get(server, path)
        assert status == 404 and b"/metrics" in body


class TestRobustness:
    def test_a_failing_status_renderer_is_a_500_and_the_server_keeps_serving(
            self, published: Published) -> None:
        """An exception while answering becomes a 500; the next request is served."""
        def broken(_: Evaluation) -> Mapping[str, Any]:
            raise RuntimeError("boom")

        published.state = fx.full_state()
        running = serve("127.0.0.1:0", published, status_json=broken)
        try:
            status, _, body = get(running, "/status")
            assert status == 500 and b"RuntimeError" in body
            assert get(running, "/metrics")[0] == 200
        finally:
            running.shutdown()

    def test_a_failing_state_getter_still_answers_metrics_with_status_unknown(self) -> None:
        """/metrics never fails because the published state cannot be fetched."""
        def broken() -> AgentState | None:
            raise RuntimeError("boom")

        running = serve("127.0.0.1:0", broken)
        try:
            status, _, body = get(running, "/metrics")
            assert status == 200 and b"kubelet_cert_agent_status 3.0" in body
        finally:
            running.shutdown()

    def test_concurrent_scrapes_all_get_the_same_complete_answer(
            self, server: MetricsServer, published: Published) -> None:
        """Eight clients scraping at once each get 200 and the full exposition."""
        published.state = fx.full_state()
        expected = without_process(get(server, "/metrics")[2])
        results: list[tuple[int, bytes]] = []
        lock = threading.Lock()

        def scrape() -> None:
            for _ in range(25):
                status, _, body = get(server, "/metrics")
                with lock:
                    results.append((status, without_process(body)))

        threads = [threading.Thread(target=scrape) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(results) == 200
        assert all(result == (200, expected) for result in results)

    def test_keep_alive_serves_several_requests_on_one_connection(
            self, server: MetricsServer) -> None:
        """HTTP/1.1 keep-alive, as Prometheus scrapes."""
        conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
        try:
            for path in ("/metrics", "/healthz", "/metrics"):
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                assert response.status in (200, 503)
            assert conn.sock is not None  # the connection was never closed by the server
        finally:
            conn.close()

    def test_requests_are_not_logged_to_stderr(self, server: MetricsServer,
                                               capfd: pytest.CaptureFixture[str]) -> None:
        """No access-log line per scrape, not even for a 404."""
        get(server, "/metrics")
        get(server, "/nope")
        assert capfd.readouterr().err == ""

    def test_a_client_that_hangs_up_mid_request_does_not_stop_the_server(
            self, server: MetricsServer) -> None:
        """A connection closed before a full request leaves the server serving."""
        with socket.create_connection((server.host, server.port), timeout=30) as raw:
            raw.sendall(b"GET /metr")
        assert get(server, "/metrics")[0] == 200


class TestLifecycle:
    def test_port_zero_binds_a_free_port_and_shutdown_releases_it(
            self, published: Published) -> None:
        """The bound port is reported; after shutdown nothing listens there."""
        running = serve("127.0.0.1:0", published)
        port = running.port
        assert port > 0 and running.url == f"http://127.0.0.1:{port}"
        running.shutdown()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()

    def test_an_address_in_use_raises_oserror(self, server: MetricsServer,
                                              published: Published) -> None:
        """Binding a port another server holds is an OSError for the daemon to report."""
        with pytest.raises(OSError):
            serve(f"127.0.0.1:{server.port}", published).shutdown()

    def test_ipv6_loopback(self, published: Published) -> None:
        """[::1]:0 serves over IPv6 where the host has it."""
        if not socket.has_ipv6:
            pytest.skip("no IPv6 on this host")
        try:
            running = serve("[::1]:0", published)
        except OSError as exc:
            pytest.skip(f"cannot bind ::1 here: {exc}")
        try:
            assert running.url == f"http://[::1]:{running.port}"
            assert get(running, "/metrics")[0] == 200
        finally:
            running.shutdown()


# What Prometheus' scraper sends.
PROMETHEUS = {"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
              "Accept-Encoding": "gzip"}


class TestGzip:
    """Prometheus sends ``Accept-Encoding: gzip``: the state part is one pre-compressed gzip
    member, the live families another; every reader must see one exposition."""

    def test_gzip_is_sent_only_when_asked(self, server: MetricsServer,
                                          published: Published) -> None:
        """No Accept-Encoding (or gzip;q=0): identity; gzip: Content-Encoding gzip."""
        published.state = fx.full_state()
        _, plain_headers, _ = get(server, "/metrics")
        _, refused, _ = get(server, "/metrics", headers={"Accept-Encoding": "gzip;q=0"})
        _, zipped, body = get(server, "/metrics", headers=PROMETHEUS)
        assert "Content-Encoding" not in plain_headers and "Content-Encoding" not in refused
        assert zipped["Content-Encoding"] == "gzip" and body[:2] == b"\x1f\x8b"
        assert int(zipped["Content-Length"]) == len(body)

    @pytest.mark.parametrize("accept", [
        pytest.param("", id="text-0.0.4"),
        pytest.param("application/openmetrics-text;version=1.0.0", id="openmetrics"),
    ])
    def test_the_members_decompress_to_the_plain_answer(
            self, server: MetricsServer, published: Published, accept: str) -> None:
        """Python's gzip (all members) gives the identity body, one # EOF at the end."""
        import gzip

        published.state = fx.full_state()
        _, _, plain = get(server, "/metrics", headers={"Accept": accept})
        _, _, zipped = get(server, "/metrics", headers={"Accept": accept,
                                                         "Accept-Encoding": "gzip"})
        text = gzip.decompress(zipped)
        assert zipped.count(b"\x1f\x8b\x08") >= 2  # really two members
        assert without_process(text) == without_process(plain)
        assert text.count(b"# EOF") == (1 if accept else 0)

    def test_requests_and_prometheus_client_parse_the_gzipped_stream(
            self, server: MetricsServer, published: Published) -> None:
        """urllib3's decoder (requests) and prometheus_client's OpenMetrics parser read
        both members: the live health families come after the state's."""
        import requests
        from prometheus_client.openmetrics.parser import text_string_to_metric_families

        published.state = fx.full_state()
        reply = requests.get(f"{server.url}/metrics", headers=PROMETHEUS, timeout=30)
        names = {family.name for family in text_string_to_metric_families(reply.text)}
        assert reply.headers["Content-Encoding"] == "gzip"
        assert {"kubelet_cert_agent_status", "kubelet_cert_agent_verdict_stale",
                "process_cpu_seconds"} <= names

    def test_promtool_accepts_the_decompressed_stream(
            self, server: MetricsServer, published: Published) -> None:
        """Debian's promtool (Prometheus' own parser) lints the two members as one."""
        import gzip
        import subprocess

        promtool = require_tool("promtool")
        published.state = fx.full_state()
        _, _, zipped = get(server, "/metrics", headers={"Accept-Encoding": "gzip"})
        result = subprocess.run([promtool, "check", "metrics"], input=gzip.decompress(zipped),
                                capture_output=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr


@pytest.mark.slow  # Prometheus takes seconds to start
def test_a_real_prometheus_scrapes_the_gzipped_members(tmp_path: Path,
                                                        server: MetricsServer,
                                                        published: Published) -> None:
    """Debian's Prometheus (Go's gzip reader, its own parser) scrapes the agent with
    ``Accept-Encoding: gzip``: the scrape is up and it stored series from both members
    (the state's ``status`` and the live ``verdict_stale``)."""
    import subprocess
    import time
    import urllib.parse
    import urllib.request

    published.state = fx.full_state()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s}\nscrape_configs:\n- job_name: agent\n"
                      f"  static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n")
    process = subprocess.Popen(
        [require_tool("prometheus"), f"--config.file={config}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--log.level=error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def query(expr: str) -> list[Any]:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as reply:
            return list(json.load(reply)["data"]["result"])

    expr = ('up{job="agent"} == 1 and on() kubelet_cert_agent_status == 2 '
            "and on() kubelet_cert_agent_verdict_stale == 0")
    found: list[Any] = []
    try:
        for _ in range(300):  # bounded: 30 s
            try:
                found = query(expr)
            except OSError:
                found = []
            if found or process.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert found, "Prometheus never stored a good scrape with both members' series"
