"""Sinks render verdicts, they never re-derive them: over generated snapshots the table,
the JSON status and the metrics say exactly what the findings say.

Snapshots are generated from the model factories: client and server at any point of
their life (before notBefore to long expired), any kubelet settings (rotation on, off or
unknown; serverTLSBootstrap on, off or unknown; a tlsCertFile or not), broken links,
unreadable files, key mismatches, untrusted issuers, a leftover kubelet.crt, and an
evaluation instant anywhere in that range. The findings come from the real checks.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent import codes
from agent.checks import judge
from agent.kubelet import SERVING_ROLES, served_role
from agent.model import (
    AgentState,
    CertFile,
    Evaluation,
    KeyMatch,
    LinkProblem,
    LinkState,
    ReadError,
    ReadProblem,
    Role,
)
from agent.sinks.jsonout import evaluation_to_dict
from agent.sinks.metrics import registry_for
from agent.sinks.table import cert_state, render_table
from tests.snapshots import (
    CERT_DIR,
    NOW,
    YEAR,
    anchor,
    client,
    config,
    fallback,
    leaf,
    missing,
    server,
    snapshot,
)

TRI = st.sampled_from([True, False, None])


@st.composite
def cert_files(draw: st.DrawFn, role: Role) -> CertFile:
    """A -current.pem in one of the states the sources produce."""
    kind = draw(st.sampled_from(["ok", "missing", "dangling", "unreadable", "not-a-link"]))
    if kind == "missing":
        return missing(role)
    age = draw(st.floats(min_value=-0.2, max_value=1.3))
    lifetime = draw(st.sampled_from([YEAR, timedelta(days=45), timedelta(hours=2)]))
    start = NOW - lifetime * age
    cert = leaf(start, start + lifetime,
                dns_names=("node1",) if role is Role.SERVER else (),
                ip_addresses=("10.0.0.5",) if role is Role.SERVER else ())
    extra: dict[str, Any] = {}
    if draw(st.booleans()):
        extra["key_match"] = draw(st.sampled_from(list(KeyMatch)))
    if draw(st.booleans()):
        extra["trusted"] = draw(st.sampled_from([True, False, None]))
    cf = (server if role is Role.SERVER else client)(cert, **extra)
    if kind == "dangling":
        return replace(cf, leaf=None, chain=(), link=LinkState(
            cf.path, True, "/gone", problem=LinkProblem.DANGLING))
    if kind == "unreadable":
        return replace(cf, leaf=None, chain=(),
                       read_error=ReadError(ReadProblem.TRUNCATED, "truncated PEM block"))
    if kind == "not-a-link":
        return replace(cf, link=LinkState(cf.path, False, resolved=cf.path,
                                          problem=LinkProblem.NOT_A_LINK), target=cf.path)
    return cf


@st.composite
def evaluations(draw: st.DrawFn) -> Evaluation:
    cfg = config(rotate_certificates=draw(TRI), server_tls_bootstrap=draw(TRI),
                 tls_cert_file=draw(st.sampled_from([None, f"{CERT_DIR}/tls.crt"])))
    certs = [draw(cert_files(Role.CLIENT)), draw(cert_files(Role.SERVER))]
    if draw(st.booleans()):
        certs.append(fallback())
    snap = snapshot(*certs, cfg=cfg, anchors=(anchor(),))
    return judge(snap, NOW + timedelta(seconds=draw(st.integers(-3600, 3600))))


def _row_states(ev: Evaluation) -> dict[str, str]:
    """The STATE cell of each certificate row, by role (first column)."""
    lines = render_table(ev).split("\n\n")[1].splitlines()[1:]
    return {line.split()[0]: line.rsplit("  ", 1)[-1].strip() for line in lines}


FAST = settings(deadline=None, max_examples=300,
                suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
@FAST
@given(evaluations())
def test_table_state_words_exactly_the_findings(ev: Evaluation) -> None:
    """Every row's STATE is built from the findings naming that file, and nothing else:
    a word appears only when a finding carries it, and every such finding shows."""
    states = _row_states(ev)
    served = served_role(ev.snapshot)
    for cf in ev.snapshot.certs + ev.snapshot.anchors:
        state = states[cf.role.value]
        if cf.role in SERVING_ROLES and cf.role is not served:
            assert state.startswith("unused")
            assert not [f for f in ev.findings if f.path == cf.path]
            continue
        assert state == cert_state(cf, ev.findings)
        about = {f.code for f in ev.findings if f.path in {cf.path, cf.target, cf.key_path}}
        for code, word in codes.STATE_WORDS.items():
            if word in state.split(", ") and code not in about:
                # the same word for two codes (both "missing"): one of them must be there
                assert any(codes.STATE_WORDS.get(c) == word for c in about), (code, state)
        if not about:
            assert state in {"ok", "absent"} or state.startswith("stale since")


@pytest.mark.slow
@FAST
@given(evaluations())
def test_json_and_metrics_carry_the_same_findings_and_status(ev: Evaluation) -> None:
    """The JSON status and the finding/status series are the findings, one to one."""
    doc = evaluation_to_dict(ev)
    want = sorted((f.code, f.severity.label, f.path or "") for f in ev.findings)
    assert sorted((f["code"], f["severity"], f["path"] or "") for f in doc["findings"]) == want
    assert doc["status"] == ev.status.name and doc["exit_code"] == int(ev.status)

    text = generate_latest(registry_for(lambda: AgentState(ev))).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    finding = families.get("kubelet_cert_agent_finding")  # no finding: no series at all
    series = sorted((s.labels["code"], s.labels["severity"], s.labels["path"])
                    for s in (finding.samples if finding else []) if s.value == 1)
    assert series == want
    (status,) = families["kubelet_cert_agent_status"].samples
    assert status.value == int(ev.status)


def test_a_disagreeing_table_would_be_caught() -> None:
    """The property can fail: a table that judged on its own would differ from the
    findings on the rotateCertificates-false client at 95 % of its life."""
    old = leaf(NOW - timedelta(days=347), NOW + timedelta(days=18))
    ev = judge(snapshot(client(old), server(), cfg=config(rotate_certificates=False)), NOW)
    assert "rotation overdue" not in _row_states(ev)["client"]
    assert codes.ROTATION_OVERDUE not in {f.code for f in ev.findings}
