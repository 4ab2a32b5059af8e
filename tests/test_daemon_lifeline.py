"""The daemon on real servers: the kubelet's serving port (TLS on 127.0.0.1) and the fake
HTTPS kube-apiserver, through the real CSR monitor thread and the real probe."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from agent import clock, codes, pkigen
from agent.config import KubeletAccess
from agent.daemon.loop import Daemon
from agent.daemon.services import Services
from agent.model import AgentState, Severity
from agent.sinks.metrics import render
from tests.daemonkit import NODE, Node, build, wait_for
from tests.kubeapi import KubeApi, closed_port, recorded
from tests.tlsservers import TlsServer


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return build(tmp_path / "node", clock.utcnow())


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[KubeApi]:
    api = KubeApi(root=tmp_path / "api", now=clock.utcnow())
    yield api
    api.stop()


def _kubelet(port: int, **changes: object) -> KubeletAccess:
    return replace(KubeletAccess(port=port, probe_timeout=0.5, bootstrap_kubeconfig=None),
                   **changes)  # type: ignore[arg-type]


def _codes(state: AgentState) -> dict[str, Severity]:
    return {f.code: f.severity for f in state.evaluation.findings}


def test_the_daemon_probes_at_each_evaluation(node: Node) -> None:
    """Serving the previous certificate -> mismatch; the kubelet restarted -> quiet."""
    old = pkigen.kubelet_server(node.pki.ca, NODE, clock.utcnow() - timedelta(days=300))
    with TlsServer(old) as stale:
        daemon = Daemon(node.settings(kubelet=_kubelet(stale.port)))
        state = daemon.run_once(clock.utcnow())
        assert state is not None
        assert _codes(state) == {codes.SERVED_CERT_MISMATCH: Severity.WARNING}
        assert "kubelet_cert_agent_kubelet_serving_up 1.0" in render(state).decode()
        assert stale.accepted == 1
    assert node.pki.server is not None
    with TlsServer(node.pki.server) as fresh:
        daemon.settings = node.settings(kubelet=_kubelet(fresh.port))
        state = daemon.run_once(clock.utcnow() + timedelta(seconds=5))
        assert state is not None and _codes(state) == {}
        assert fresh.accepted == 1


def test_a_stopped_kubelet_is_info_and_serving_up_zero(node: Node) -> None:
    daemon = Daemon(node.settings(kubelet=_kubelet(closed_port())))
    state = daemon.run_once(clock.utcnow())
    assert state is not None
    assert _codes(state) == {codes.KUBELET_NOT_SERVING: Severity.INFO}
    assert state.evaluation.status.name == "OK"
    assert "kubelet_cert_agent_kubelet_serving_up 0.0" in render(state).decode()


def test_the_monitor_thread_brings_the_lifeline_findings(node: Node,
                                                          kube_api: KubeApi) -> None:
    """Renewal not authorized and a Node address missing from the serving certificate."""
    kube_api.script("ssar", recorded("ssar-node1-selfnodeclient-denied.json"))
    settings = node.settings(kubelet=_kubelet(closed_port(), probe=False))
    settings = replace(settings, api=kube_api.settings())
    daemon = Daemon(settings)
    daemon.services = Services(daemon, http=False)
    daemon.services.start()
    try:
        def lifeline_seen() -> AgentState | None:
            state = daemon.run_once(clock.utcnow())
            api = state.evaluation.snapshot.api if state else None
            return state if api is not None and api.node is not None else None

        state = wait_for(lifeline_seen, 20, "the monitor's chores")
    finally:
        daemon.services.stop()
    found = _codes(state)
    assert found[codes.CLIENT_RENEWAL_NOT_AUTHORIZED] is Severity.WARNING
    assert found[codes.SERVING_CERT_SANS_INCOMPLETE] is Severity.WARNING


def test_a_mismatch_right_after_a_rotation_waits_for_the_settle_period(node: Node) -> None:
    """The kubelet reloads a renewed serving certificate a moment after the swap: a
    mismatch about a file that just changed is held for --settle, then published if it
    holds (the kubelet did not reload it)."""
    assert node.pki.server is not None
    with TlsServer(node.pki.server) as kubelet:  # it keeps serving the old one
        daemon = Daemon(node.settings(kubelet=_kubelet(kubelet.port)))
        t0 = clock.utcnow()
        first = daemon.run_once(t0)
        assert first is not None and _codes(first) == {}
        node.rotate("server", t0)
        held = daemon.run_once(t0 + timedelta(seconds=0.5))
        assert held is not None and codes.SERVED_CERT_MISMATCH not in _codes(held)
        later = daemon.run_once(t0 + timedelta(seconds=5))
        assert later is not None
        assert _codes(later) == {codes.SERVED_CERT_MISMATCH: Severity.WARNING}
