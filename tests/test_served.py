"""What the kubelet really serves: ``check`` against real TLS servers on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from agent import codes, pkigen
from agent.check_cmd import evaluate
from agent.cli import build_parser
from agent.model import AgentState, Evaluation, Severity
from agent.sinks.metrics import render
from agent.sinks.table import render_table
from tests.kubeapi import closed_port
from tests.nodetree import NODE, NOW, Tree, healthy_node, run_in_process
from tests.tlsservers import RawServer, TlsServer


def _evaluate(tree: Tree, port: int, *extra: str) -> Evaluation:
    args = build_parser().parse_args(tree.args("--kubelet-endpoint", f"127.0.0.1:{port}",
                                               *extra))
    return evaluate(args)


def _found(ev: Evaluation, code: str) -> list[str]:
    return [f"{f.severity.label}: {f.message}" for f in ev.findings if f.code == code]


def _previous(tree: Tree, days_left: float) -> pkigen.Issued:
    """A serving certificate of this node the kubelet had before, ``days_left`` to live."""
    start = NOW - timedelta(days=365 - days_left)
    return pkigen.kubelet_server(tree.pki.ca, NODE, start)


def test_serving_the_file_is_quiet_and_shown_as_served(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    assert tree.pki.server is not None
    with TlsServer(tree.pki.server) as server:
        ev = _evaluate(tree, server.port)
    assert ev.findings == ()
    served = [c for c in ev.snapshot.certs if c.role.value == "served"]
    assert len(served) == 1 and served[0].leaf is not None
    assert served[0].leaf.fingerprint_sha256 == (
        ev.snapshot.cert(served[0].role.SERVER).leaf.fingerprint_sha256)  # type: ignore[union-attr]
    text = render(AgentState(ev)).decode()
    assert "kubelet_cert_agent_kubelet_serving_up 1.0" in text
    assert 'role="served"' in text
    assert "served" in render_table(ev) and f"SERVING PORT 127.0.0.1:{server.port}: served" \
        in render_table(ev)


def test_serving_the_previous_certificate_says_restart(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    old = _previous(tree, days_left=60)
    with TlsServer(old) as server:
        ev = _evaluate(tree, server.port)
    [message] = _found(ev, codes.SERVED_CERT_MISMATCH)
    assert message.startswith("warning: ")
    assert f"serial {format(old.cert.serial_number, 'x')}" in message
    assert tree.pki.server is not None
    assert f"serial {format(tree.pki.server.cert.serial_number, 'x')}" in message
    assert "restart the kubelet" in message
    mismatch = next(f for f in ev.findings if f.code == codes.SERVED_CERT_MISMATCH)
    assert mismatch.path == str(tree.cert_dir / "kubelet-server-current.pem")


def test_a_served_certificate_about_to_expire_is_critical(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    with TlsServer(_previous(tree, days_left=2)) as server:
        ev = _evaluate(tree, server.port)
    assert _found(ev, codes.SERVED_CERT_MISMATCH)[0].startswith("critical: ")
    expiring = [f for f in ev.findings if f.code == codes.CERT_EXPIRING_SOON]
    assert [f.path for f in expiring] == [f"https://127.0.0.1:{server.port}"]
    assert expiring[0].severity is Severity.CRITICAL


def test_a_served_chain_with_an_intermediate(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    intermediate = pkigen.issue("intermediate", issuer=tree.pki.ca, usage="ca",
                                not_before=NOW - timedelta(days=10),
                                not_after=NOW + timedelta(days=900))
    leaf = pkigen.kubelet_server(intermediate, NODE, NOW - timedelta(days=10))
    with TlsServer(leaf, (intermediate,)) as server:
        ev = _evaluate(tree, server.port, "--format", "json")
    served = next(c for c in ev.snapshot.certs if c.role.value == "served")
    assert len(served.chain) == 2
    assert _found(ev, codes.SERVED_CERT_MISMATCH)


def test_internal_error_is_evidence_for_a_missing_serving_certificate(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path, server=False)
    with TlsServer(internal_error=True) as server:
        ev = _evaluate(tree, server.port)
    [message] = _found(ev, codes.SERVER_CERT_MISSING)
    assert "the serving port answers with internal_error" in message
    assert not _found(ev, codes.KUBELET_NOT_SERVING)


def test_internal_error_reveals_bootstrap_without_a_kubelet_config(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path, server=False)
    tree.config.unlink()
    with TlsServer(internal_error=True) as server:
        ev = _evaluate(tree, server.port)
    assert _found(ev, codes.SERVER_CERT_MISSING)


@pytest.mark.parametrize("kind", ["closed", "silent", "http", "garbage"])
def test_a_kubelet_that_does_not_serve_is_info_only(tmp_path: Path, kind: str) -> None:
    tree = healthy_node(tmp_path)
    if kind == "closed":
        ev = _evaluate(tree, closed_port())
    else:
        with RawServer(kind) as server:  # type: ignore[arg-type]
            args = build_parser().parse_args(
                tree.args("--kubelet-endpoint", f"127.0.0.1:{server.port}"))
            args.probe_timeout = 0.3  # a silent server would hold the probe for 3 s
            ev = evaluate(args)
    assert ev.status.name == "OK"
    assert [(f.code, f.severity) for f in ev.findings] == [
        (codes.KUBELET_NOT_SERVING, Severity.INFO)]
    assert "kubelet_cert_agent_kubelet_serving_up 0.0" in render(AgentState(ev)).decode()


def test_no_probe_skips_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = healthy_node(tmp_path)
    run = run_in_process(tree.args("--no-probe", "--kubelet-endpoint",
                                   f"127.0.0.1:{closed_port()}", "--format", "json"), capsys)
    doc = json.loads(run.out)
    assert run.code == 0 and doc["probe"] is None and doc["findings"] == []
