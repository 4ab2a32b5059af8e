"""The real ``run`` process: SIGTERM mid-evaluation, a bind mount over the cert dir.

SIGTERM during the first evaluation of 10,000 distinct ``--watch`` certificates must cut
the evaluation short (no evaluation is ever published) instead of waiting for it. A bind
mount over the cert dir sends no inotify event: the mount table is polled, so the new
directory's certificate is seen at once, not at the next 5-minute idle evaluation. The
mount happens inside a private mount namespace of the daemon only (``unshare -m``).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from agent import pkigen
from agent.clock import utcnow
from tests.conftest import require_tool
from tests.daemonkit import Node, build, wait_for
from tests.test_daemon_process import TIMEOUT, Agent

WATCHED = 10_000


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return build(tmp_path / "node", now=utcnow())


def test_sigterm_during_a_long_first_evaluation_interrupts_it(node: Node,
                                                              tmp_path: Path) -> None:
    watched = tmp_path / "many"
    pkigen.many_certificates(watched, WATCHED, utcnow())
    agent = Agent(node, tmp_path, "--watch", str(watched))
    try:
        wait_for(lambda: agent.event("agent_started"), TIMEOUT, "agent_started")
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(TIMEOUT) == 0
        wait_for(lambda: agent.event("agent_stopped"), TIMEOUT, "agent_stopped")
        assert agent.event("evaluation_interrupted") is not None
        assert "READY=1" not in agent.messages  # the evaluation never finished
        assert agent.proc.stderr is not None and agent.proc.stderr.read() == ""
    finally:
        agent.close()


def _can_unshare() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run([unshare, "-m", "true"], capture_output=True, timeout=10,
                           check=False)
    return probe.returncode == 0


def test_a_bind_mount_over_the_cert_dir_is_seen_at_once(node: Node, tmp_path: Path) -> None:
    if not _can_unshare():
        pytest.skip("needs `unshare -m` (root or user namespaces) to mount privately")
    nsenter = require_tool("nsenter")
    other = build(tmp_path / "other", now=utcnow())
    serial = other.rotate("client", utcnow())
    agent = Agent(node, tmp_path, prefix=("unshare", "-m", "--propagation", "private"))
    try:
        wait_for(lambda: agent.get("/healthz")[0] == 200, TIMEOUT, "/healthz")
        assert f'serial="{serial}"' not in agent.metrics()
        subprocess.run([nsenter, "-t", str(agent.proc.pid), "-m", "mount", "--bind",
                        str(other.cert_dir), str(node.cert_dir)], check=True, timeout=20)
        wait_for(lambda: f'serial="{serial}"' in agent.metrics(), TIMEOUT,
                 "the mounted directory's certificate")
        assert agent.event("cert_dir_replaced") is not None
        # the watches were re-armed on the mounted directory: a rotation there is seen
        again = other.rotate("client", utcnow())
        wait_for(lambda: f'serial="{again}"' in agent.metrics(), TIMEOUT,
                 "a rotation inside the mounted directory")
    finally:
        agent.close()
