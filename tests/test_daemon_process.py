"""The real ``kubelet-cert-agent run`` process: HTTP, textfile, inotify, signals, sd_notify.

The daemon runs as a subprocess on a tmp tree, with the wall clock (a subprocess cannot
be given a fixed one), so the tree is built around the real current instant. Waits are
condition polls with generous timeouts; nothing here measures time.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.clock import utcnow
from agent.sinks.textfile import TEXTFILE_NAME
from tests.daemonkit import NODE, Node, build, finding_published, short_lived_client, wait_for

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 20.0


class Agent:
    """A running ``run`` subprocess, its JSON log lines and its sd_notify messages."""

    def __init__(self, node: Node, tmp_path: Path, *extra: str, nofile: int | None = None,
                 prefix: tuple[str, ...] = ()) -> None:
        self.textfile_dir = tmp_path / "textfile"
        self.textfile_dir.mkdir()
        self.flags = tmp_path / "default"
        self.flags.write_text("# no flags\n")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(tmp_path / "notify.sock"))
        self.notify.settimeout(TIMEOUT)
        self.messages: list[str] = []
        self.lines: list[dict[str, Any]] = []
        env = {**os.environ, "PYTHONPATH": str(REPO),
               "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000"}
        env.pop("WATCHDOG_PID", None)
        argv = [*prefix, sys.executable, "-m", "agent.cli", "run", "--offline", "--no-probe",
                "--listen", "127.0.0.1:0", "--textfile-dir", str(self.textfile_dir),
                "--cert-dir", str(node.cert_dir), "--kubelet-config", str(node.config),
                "--node-name", NODE, "--flags-file", str(self.flags), *extra]
        def limit() -> None:  # a small RLIMIT_NOFILE, as an attacked daemon would hit
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, cwd=REPO, text=True, preexec_fn=limit)  # noqa: PLW1509
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_notify, daemon=True).start()
        listening = wait_for(lambda: self.event("http_listening"), TIMEOUT, "http_listening")
        self.url = str(listening["url"])

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def _read_notify(self) -> None:
        while True:
            try:
                self.messages.extend(self.notify.recv(4096).decode().splitlines())
            except OSError:
                return

    def event(self, kind: str) -> dict[str, Any] | None:
        return next((line for line in self.lines if line["event"] == kind), None)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:  # noqa: S310
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, ""
        except OSError:
            return 0, ""

    def metrics(self) -> str:
        return self.get("/metrics")[1]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.notify.close()


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return build(tmp_path / "node", now=utcnow())


@pytest.fixture
def agent(node: Node, tmp_path: Path) -> Iterator[Agent]:
    a = Agent(node, tmp_path)
    yield a
    a.close()


class TestRunProcess:
    def test_it_serves_health_metrics_and_status_once_evaluated(self, agent: Agent) -> None:
        wait_for(lambda: agent.get("/healthz")[0] == 200, TIMEOUT, "/healthz")
        status, body = agent.get("/status")
        assert status == 200 and json.loads(body)
        assert "kubelet_cert_agent_certificate_not_after_timestamp_seconds" in agent.metrics()

    def test_a_real_rotation_reaches_metrics_and_the_textfile(self, agent: Agent,
                                                              node: Node) -> None:
        wait_for(lambda: agent.get("/healthz")[0] == 200, TIMEOUT, "/healthz")
        serial = node.rotate("client", utcnow())
        wait_for(lambda: f'serial="{serial}"' in agent.metrics(), TIMEOUT, "new serial")
        textfile = agent.textfile_dir / TEXTFILE_NAME
        wait_for(lambda: textfile.exists() and f'serial="{serial}"' in textfile.read_text(),
                 TIMEOUT, "new serial in the textfile")
        rotation = wait_for(lambda: agent.event("rotation_observed"), TIMEOUT, "rotation")
        assert rotation["new_serial"] == serial

    def test_sighup_reloads_and_keeps_serving_and_counting(self, agent: Agent,
                                                           node: Node) -> None:
        wait_for(lambda: agent.get("/healthz")[0] == 200, TIMEOUT, "/healthz")
        serial = node.rotate("client", utcnow())
        wait_for(lambda: f'serial="{serial}"' in agent.metrics(), TIMEOUT, "new serial")
        agent.flags.write_text(f'KUBELET_CERT_AGENT_ARGS="--offline --no-probe '
                               f'--cert-dir {node.cert_dir} '
                               f'--kubelet-config {node.config} --node-name {NODE} '
                               f'--listen 127.0.0.1:0 --textfile-dir {agent.textfile_dir} '
                               f'--warning-days 400 --warning-fraction 0.9"\n')
        assert 'code="CERT_EXPIRING_SOON"' not in agent.metrics()
        agent.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: agent.event("reloaded"), TIMEOUT, "reloaded event")
        assert agent.get("/healthz")[0] == 200
        # the reloaded threshold is in force: a one-year certificate is now "expiring soon"
        wait_for(lambda: 'code="CERT_EXPIRING_SOON"' in agent.metrics(), TIMEOUT,
                 "the reloaded --warning-days applied")
        assert 'kubelet_cert_agent_rotations_observed_total{role="client"} 1.0' in agent.metrics()

    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
    def test_a_stop_signal_exits_zero_and_tells_systemd(self, agent: Agent, sig: int) -> None:
        wait_for(lambda: agent.get("/healthz")[0] == 200, TIMEOUT, "/healthz")
        agent.proc.send_signal(sig)
        assert agent.proc.wait(TIMEOUT) == 0
        wait_for(lambda: "STOPPING=1" in agent.messages, TIMEOUT, "STOPPING=1")
        assert agent.proc.stderr is not None and agent.proc.stderr.read() == ""

    def test_systemd_gets_ready_status_and_watchdog_pings(self, agent: Agent) -> None:
        wait_for(lambda: "READY=1" in agent.messages, TIMEOUT, "READY=1")
        wait_for(lambda: agent.messages.count("WATCHDOG=1") >= 3, TIMEOUT, "WATCHDOG=1 pings")
        status = [m for m in agent.messages if m.startswith("STATUS=")]
        assert status and status[0] == "STATUS=OK: no findings"
        # READY=1 comes with the first published evaluation, before any watchdog ping
        assert agent.messages.index("READY=1") < agent.messages.index("WATCHDOG=1")


@pytest.mark.slow
class TestTimeDrivenVerdicts:
    def test_a_two_minute_certificate_is_published_at_each_deadline(
            self, tmp_path: Path) -> None:
        """Nothing on disk changes: 90 %, 95 % and notAfter of a 2-minute client
        certificate (100 s old at start) each reach /metrics from an evaluation made
        within a second of the instant, not at the next idle tick 5 minutes later."""
        node = build(tmp_path / "node", now=utcnow())
        deadlines = short_lived_client(node, utcnow())
        agent = Agent(node, tmp_path)
        try:
            for d in deadlines:
                left = (d.at - utcnow()).total_seconds()
                evaluated = wait_for(
                    lambda d=d: finding_published(agent.metrics(), d.code, d.severity),
                    max(left, 0) + TIMEOUT, f"{d.name}: {d.code} {d.severity}", interval=0.05)
                lag = evaluated - d.at.timestamp()
                assert 0 <= lag < 1.0, f"{d.name} published by an evaluation {lag:.3f} s after"
        finally:
            agent.close()
