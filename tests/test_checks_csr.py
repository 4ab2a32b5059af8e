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
    def test_the_wait_since_the_last_issue_becomes_stale(self) -> None:
        """Only the CSRs after the last issued one count: the first Pending one starts the
        wait; an Approved one behind a newer CSR never times out."""
        old = csr("csr-o", MIN * 30)  # abandoned before csr-i was issued
        issued = csr("csr-i", MIN * 20, CsrState.ISSUED)
        appr = csr("csr-a", MIN * 3, CsrState.APPROVED, state_since=NOW - MIN)
        pend = csr("csr-p", MIN * 2)
        snap = with_api(api(old, issued, appr, pend))
        assert set(csrcheck.deadlines(snap, Policy())) == {NOW + MIN * 8}

    def test_the_newest_approved_times_out(self) -> None:
        appr = csr("csr-a", MIN * 3, CsrState.APPROVED, state_since=NOW - MIN)
        snap = with_api(api(csr("csr-p", MIN * 4), appr))
        assert set(csrcheck.deadlines(snap, Policy())) == {NOW + MIN * 4}

    def test_nothing_after_the_last_issue_has_no_deadline(self) -> None:
        snap = with_api(api(csr("csr-p", MIN * 2), csr("csr-i", MIN, CsrState.ISSUED)))
        assert list(csrcheck.deadlines(snap, Policy())) == []

    def test_offline_has_no_deadlines(self) -> None:
        assert list(csrcheck.deadlines(snapshot(), Policy())) == []


HOUR = MIN * 60


def serving_since(not_before: timedelta, lifetime: timedelta = 24 * HOUR) -> Snapshot:
    """A node whose serving certificate was issued ``not_before`` ago."""
    return snapshot(client(), server(leaf(NOW - not_before, NOW - not_before + lifetime)))


class TestTrail:
    """The kubelet's point of view: only CSRs after the last issue count, the newest wins."""

    def test_a_csr_abandoned_before_a_later_issue_does_not_start_the_wait(self) -> None:
        """The kubelet just made csr-new: it has waited 1 minute, not 22."""
        found = check(csr("csr-old", MIN * 22), csr("csr-i", MIN * 10, CsrState.ISSUED),
                      csr("csr-new", MIN))
        assert codes.SERVING_CSR_PENDING not in codes_of(found)

    def test_the_wait_starts_at_the_first_pending_csr_after_the_last_issue(self) -> None:
        found = check(csr("csr-old", MIN * 90), csr("csr-i", MIN * 60, CsrState.ISSUED),
                      csr("csr-40", MIN * 40), csr("csr-20", MIN * 20), csr("csr-02", MIN * 2))
        f = only(found, codes.SERVING_CSR_PENDING)
        assert "waited 40m 0s" in f.message
        assert "approve csr-02`" in f.message
        assert "3 older pending CSR(s) (csr-20, csr-40, csr-old) were abandoned" in f.message

    def test_an_abandoned_pending_csr_behind_a_valid_certificate_is_history(self) -> None:
        """kube-controller-manager deleted the issued CSR after an hour; the certificate on
        disk (issued after csr-old) says the node got what it asked for."""
        snap = with_api(api(csr("csr-old", HOUR * 5)), serving_since(HOUR * 2))
        assert list(csrcheck.check(snap, NOW, Policy())) == []
        waited = csrcheck.serving_trail(snap, NOW)
        assert waited is not None and not waited.waiting and waited.pending == ()
        assert [c.name for c in waited.abandoned] == ["csr-old"]

    def test_the_wait_counts_from_the_overdue_certificate_when_earlier(self) -> None:
        """Past 90 % of its life the kubelet has been asking for a new certificate: older
        attempts may already be gone from the API, the wait is not 2 minutes old."""
        snap = serving_since(HOUR * 23, lifetime=HOUR * 24)  # overdue since 1h 24m
        f = only(check(csr("csr-new", MIN * 2), snap=snap), codes.SERVING_CSR_PENDING)
        assert "waited 1h 24m" in f.message

    def test_the_newest_after_the_last_issue_counts_even_when_it_is_denied(self) -> None:
        waited = csrcheck.trail([csr("csr-p", MIN * 5), csr("csr-d", MIN, CsrState.DENIED)],
                                csrcheck.SIGNER)
        assert waited.newest is not None and waited.newest.name == "csr-d"
        assert not waited.waiting and waited.since is None
        assert [c.name for c in waited.abandoned] == ["csr-p"]

    def test_other_signers_are_ignored(self) -> None:
        other = csr("csr-client", MIN, signer="kubernetes.io/kube-apiserver-client-kubelet")
        waited = csrcheck.trail([csr("csr-s", MIN * 3), other], csrcheck.SIGNER)
        assert waited.newest is not None and waited.newest.name == "csr-s"
        assert waited.waiting and waited.since == NOW - MIN * 3
        assert waited.pending == (csr("csr-s", MIN * 3),)

    def test_an_issue_known_only_from_the_certificate_on_disk(self) -> None:
        waited = csrcheck.trail([csr("csr-a", MIN * 30), csr("csr-b", MIN * 5)],
                                csrcheck.SIGNER, issued_at=NOW - MIN * 10)
        assert waited.last_issued == NOW - MIN * 10
        assert waited.waiting and [c.name for c in waited.pending] == ["csr-b"]
        assert waited.since == NOW - MIN * 5
        assert [c.name for c in waited.abandoned] == ["csr-a"]
