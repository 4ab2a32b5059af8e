"""The serving-port probe against real TLS (and not-TLS) servers on 127.0.0.1."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from agent import pkigen
from agent.model import ProbeOutcome, Role
from agent.sources.probe import Prober, probe_once
from tests.kubeapi import closed_port
from tests.tlsservers import RawServer, TlsServer

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TIMEOUT = 0.5


@pytest.fixture(scope="module")
def ca() -> pkigen.Issued:
    return pkigen.cluster_ca(NOW)


def test_the_served_leaf_is_kept_with_its_fingerprint(ca: pkigen.Issued) -> None:
    leaf = pkigen.kubelet_server(ca, "node1", NOW - timedelta(days=1))
    with TlsServer(leaf) as server:
        result = probe_once("127.0.0.1", server.port, NOW, TIMEOUT)
    assert result.outcome is ProbeOutcome.SERVED and result.up
    served = result.served
    assert served is not None and served.role is Role.SERVED and served.leaf is not None
    assert served.path == f"https://127.0.0.1:{server.port}"
    assert served.leaf.serial == format(leaf.cert.serial_number, "x")
    assert served.leaf.dns_names == ("node1",)


def test_a_chain_with_an_intermediate_is_kept_whole(ca: pkigen.Issued) -> None:
    intermediate = pkigen.issue("kubelet-serving-intermediate", issuer=ca, usage="ca",
                                not_before=NOW - timedelta(days=1),
                                not_after=NOW + timedelta(days=900))
    leaf = pkigen.kubelet_server(intermediate, "node1", NOW - timedelta(days=1))
    with TlsServer(leaf, (intermediate,)) as server:
        result = probe_once("127.0.0.1", server.port, NOW, TIMEOUT)
    assert result.served is not None and result.served.leaf is not None
    assert [c.subject for c in result.served.chain] == [
        "CN=system:node:node1,O=system:nodes", "CN=kubelet-serving-intermediate"]
    assert result.served.leaf.subject_cn == "system:node:node1"


def test_internal_error_alert_is_recognised() -> None:
    with TlsServer(internal_error=True) as server:
        result = probe_once("127.0.0.1", server.port, NOW, TIMEOUT)
    assert result.outcome is ProbeOutcome.INTERNAL_ERROR and result.up
    assert "internal_error" in result.detail and result.served is None


def test_closed_port_is_refused() -> None:
    result = probe_once("127.0.0.1", closed_port(), NOW, TIMEOUT)
    assert result.outcome is ProbeOutcome.REFUSED and not result.up


def test_a_server_that_never_answers_times_out() -> None:
    with RawServer("silent") as server:
        result = probe_once("127.0.0.1", server.port, NOW, 0.2)
    assert result.outcome is ProbeOutcome.TIMEOUT and not result.up
    assert "accepted the connection" in result.detail


@pytest.mark.parametrize("mode", ["http", "garbage"])
def test_plain_http_and_garbage_are_not_tls(mode: str) -> None:
    with RawServer(mode) as server:  # type: ignore[arg-type]
        result = probe_once("127.0.0.1", server.port, NOW, TIMEOUT)
    assert result.outcome is ProbeOutcome.NOT_TLS and not result.up
    assert result.served is None


def test_at_most_one_probe_in_flight() -> None:
    """A second caller while a handshake hangs gets the last result, no new connection."""
    with RawServer("silent") as server:
        prober = Prober("127.0.0.1", server.port, timeout=1.0)
        first = threading.Thread(target=prober.probe, args=(NOW,))
        first.start()
        for _ in range(200):  # until the first probe's connection is accepted
            if server.accepted:
                break
            threading.Event().wait(0.005)
        assert prober.probe(NOW) is None  # nothing known yet, and no second connection
        first.join()
        assert server.accepted == 1 and prober.probes_total == 1
        assert prober.last is not None and prober.last.outcome is ProbeOutcome.TIMEOUT
