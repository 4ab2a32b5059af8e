"""Specification of agent.checks.csr: this node's kubelet-serving CSRs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from agent import codes
from agent.checks import csr as csrcheck
from agent.model import ApiProblem, CsrInfo, CsrState, Finding, Policy, Role, Severity, Snapshot
from tests.snapshots import (
    NOW,
    api,
    api_error,
    client,
    codes_of,
    config,
    csr,
    fallback,
    leaf,
    missing,
    only,
    server,
    snapshot,
    with_api,
)

MIN = timedelta(minutes=1)
NO_SERVING_CERT = snapshot(client(), missing(Role.SERVER))


def check(*csrs: CsrInfo, snap: Snapshot | None = None) -> list[Finding]:
    return list(csrcheck.check(with_api(api(*csrs), snap), NOW, Policy()))


class TestPending:
    def test_offline_gives_no_csr_findings(self) -> None:
        assert list(csrcheck.check(snapshot(), NOW, Policy())) == []

    def test_no_csrs_no_findings(self) -> None:
        assert check() == []

    @pytest.mark.parametrize(("age", "raised"), [
        pytest.param(MIN * 2, False, id="2 minutes, the kubelet just asked"),
        pytest.param(MIN * 10 - timedelta(seconds=1), False, id="a second before stale"),
        pytest.param(MIN * 10, True, id="exactly csr_stale_after"),
        pytest.param(MIN * 11, True, id="stale"),
    ])
    def test_pending_becomes_a_finding_once_stale(self, age: timedelta, raised: bool) -> None:
        assert codes_of(check(csr("csr-a", age))) == (
            [codes.SERVING_CSR_PENDING] if raised else [])

    def test_one_finding_naming_the_newest_and_the_abandoned(self) -> None:
        """Each attempt makes a new CSR; only the newest is still wanted."""
        found = check(csr("csr-45", MIN * 45), csr("csr-30", MIN * 30), csr("csr-02", MIN * 2))
        f = only(found, codes.SERVING_CSR_PENDING)
        assert "`kubectl certificate approve csr-02`" in f.message
        assert "2 older pending CSR(s) (csr-30, csr-45) were abandoned" in f.message
        assert "approving them does nothing" in f.message
        assert "DNS:node1, IP:10.0.0.5" in f.message
        assert "the node has waited 45m 0s" in f.message
        assert "\n" not in f.message

    def test_a_long_trail_is_shortened(self) -> None:
        trail = [csr(f"csr-{i:02}", MIN * 15 * i) for i in range(1, 10)]
        f = only(check(*trail), codes.SERVING_CSR_PENDING)
        assert "`kubectl certificate approve csr-01`" in f.message
        assert "(csr-02, csr-03, csr-04, csr-05, csr-06 and 3 more)" in f.message

    def test_old_pending_behind_an_issued_newest_are_abandoned(self) -> None:
        assert check(csr("csr-old", MIN * 60), csr("csr-new", MIN * 5, CsrState.ISSUED)) == []

    @pytest.mark.parametrize(("snap", "severity"), [
        pytest.param(snapshot(), Severity.WARNING, id="valid serving certificate on disk"),
        pytest.param(NO_SERVING_CERT, Severity.CRITICAL, id="serving link missing"),
        pytest.param(snapshot(client(), server(leaf(NOW - 2 * MIN * 60 * 24 * 365, NOW - MIN))),
                     Severity.CRITICAL, id="serving certificate expired"),
        pytest.param(snapshot(client(), server(leaf(NOW + MIN, NOW + MIN * 999))),
                     Severity.CRITICAL, id="serving certificate not yet valid"),
        pytest.param(snapshot(client(), missing(Role.SERVER), fallback()), Severity.CRITICAL,
                     id="only the leftover fallback while bootstrap is on"),
        pytest.param(snapshot(client(), server(self_signed=True)), Severity.CRITICAL,
                     id="self-signed while bootstrap is on"),
        pytest.param(snapshot(client(), missing(Role.SERVER), fallback(),
                              cfg=config(server_tls_bootstrap=False)),
                     Severity.WARNING, id="fallback served, bootstrap off"),
    ])
    def test_critical_when_no_valid_serving_certificate(self, snap: Snapshot,
                                                        severity: Severity) -> None:
        f = only(check(csr("csr-a", MIN * 20), snap=snap), codes.SERVING_CSR_PENDING)
        assert f.severity is severity

    def test_stale_api_data_is_still_judged(self) -> None:
        state = api(csr("csr-a", MIN * 20), error=api_error(ApiProblem.UNREACHABLE, 5))
        found = list(csrcheck.check(with_api(state), NOW, Policy()))
        assert codes_of(found) == [codes.SERVING_CSR_PENDING]


class TestSuspicious:
    @pytest.mark.parametrize(("kw", "reason"), [
        pytest.param({}, None, id="what the kubelet asks for"),
        pytest.param({"request_subject": "O=system:nodes,CN=system:node:node1"}, None,
                     id="RFC 4514 order differs"),
        pytest.param({"request_subject": "CN=system:node:node2,O=system:nodes"},
                     "is not CN=system:node:node1", id="another node's subject"),
        pytest.param({"request_subject": "CN=system:node:node1"}, "is not CN=",
                     id="no organization"),
        pytest.param({"request_subject": "CN=system:node:node1,O=system:nodes,O=admins"},
                     "is not CN=", id="extra organization"),
        pytest.param({"request_subject": "not a DN"}, "is not CN=", id="unparsable subject"),
        pytest.param({"request_other_sans": ("email:evil@example.com",)},
                     "email:evil@example.com", id="email SAN"),
        pytest.param({"request_other_sans": ("URI:spiffe://x",)}, "URI:spiffe://x",
                     id="URI SAN"),
        pytest.param({"request_dns_names": ("kubernetes.default",)}, "none of its names",
                     id="DNS names without the node name"),
        pytest.param({"request_dns_names": ()}, "none of its names", id="no DNS names"),
        pytest.param({"request_error": "spec.request is not PEM"}, "cannot be decoded",
                     id="undecodable request"),
    ])
    def test_pending_request_must_be_this_kubelets(self, kw: dict[str, Any],
                                                   reason: str | None) -> None:
        found = [f for f in check(csr("csr-a", MIN, **kw))
                 if f.code == codes.SERVING_CSR_SUSPICIOUS]
        if reason is None:
            assert found == []
        else:
            assert len(found) == 1
            assert reason in found[0].message
            assert "do not approve blindly" in found[0].message
            assert (found[0].severity, found[0].path) == (Severity.WARNING, "csr/csr-a")

    def test_ip_node_name_is_looked_for_among_ips(self) -> None:
        req = csr("csr-a", MIN, request_subject="CN=system:node:10.0.0.5,O=system:nodes",
                  request_dns_names=())
        snap = snapshot(node_name="10.0.0.5")
        assert check(req, snap=snap) == []

    def test_only_pending_csrs_are_suspicious(self) -> None:
        bad: dict[str, Any] = {"request_other_sans": ("email:evil@example.com",)}
        found = check(csr("csr-a", MIN * 3, CsrState.DENIED, **bad),
                      csr("csr-b", MIN * 2, CsrState.ISSUED, **bad))
        assert codes.SERVING_CSR_SUSPICIOUS not in codes_of(found)

    def test_pending_finding_warns_when_the_newest_is_suspicious(self) -> None:
        found = check(csr("csr-a", MIN * 20, request_dns_names=("evil",)))
        f = only(found, codes.SERVING_CSR_PENDING)
        assert "SUSPICIOUS" in f.message
        assert codes.SERVING_CSR_SUSPICIOUS in codes_of(found)


class TestNewestState:
    @pytest.mark.parametrize(("state", "code"), [
        pytest.param(CsrState.DENIED, codes.SERVING_CSR_DENIED, id="denied"),
        pytest.param(CsrState.FAILED, codes.SERVING_CSR_FAILED, id="failed"),
    ])
    def test_denied_or_failed_newest_with_reason(self, state: CsrState, code: str) -> None:
        f = only(check(csr("csr-a", MIN * 2, state, reason="PolicyRefused: not in allowlist")),
                 code)
        assert (f.severity, f.path) == (Severity.WARNING, "csr/csr-a")
        assert "PolicyRefused: not in allowlist" in f.message

    def test_an_older_denial_does_not_count(self) -> None:
        found = check(csr("csr-a", MIN * 30, CsrState.DENIED), csr("csr-b", MIN * 2))
        assert codes.SERVING_CSR_DENIED not in codes_of(found)

    @pytest.mark.parametrize(("since", "raised"), [
        pytest.param(MIN * 4, False, id="approved 4 minutes ago"),
        pytest.param(MIN * 5, True, id="exactly issue_timeout"),
        pytest.param(MIN * 60, True, id="an hour without a certificate"),
    ])
    def test_approved_without_certificate(self, since: timedelta, raised: bool) -> None:
        found = check(csr("csr-a", MIN * 90, CsrState.APPROVED, state_since=NOW - since))
        assert codes_of(found) == ([codes.SERVING_CSR_NOT_ISSUED] if raised else [])

    def test_not_issued_falls_back_to_creation_and_names_the_signer_flags(self) -> None:
        f = only(check(csr("csr-a", MIN * 6, CsrState.APPROVED), snap=NO_SERVING_CERT),
                 codes.SERVING_CSR_NOT_ISSUED)
        assert f.severity is Severity.CRITICAL
        assert "--cluster-signing-cert-file" in f.message
        assert "--cluster-signing-key-file" in f.message

    def test_issued_newest_is_fine(self) -> None:
        assert check(csr("csr-a", MIN * 60, CsrState.ISSUED)) == []


class TestDeadlines:
    def test_pending_stale_and_approved_timeout(self) -> None:
        pend = csr("csr-p", MIN * 2)
        appr = csr("csr-a", MIN * 3, CsrState.APPROVED, state_since=NOW - MIN)
        old = csr("csr-o", MIN * 4, CsrState.APPROVED)
        snap = with_api(api(pend, appr, old, csr("csr-i", MIN, CsrState.ISSUED)))
        assert set(csrcheck.deadlines(snap, Policy())) == {
            NOW + MIN * 8, NOW + MIN * 4, NOW + MIN}

    def test_offline_has_no_deadlines(self) -> None:
        assert list(csrcheck.deadlines(snapshot(), Policy())) == []
