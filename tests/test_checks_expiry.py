"""Specification of agent.checks.expiry: which certificates are live and when they alarm."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from agent import codes
from agent.checks import evaluate, expiry
from agent.model import CertInfo, KubeletConfigInfo, Policy, ReadError, ReadProblem, Role, Severity
from tests.snapshots import (
    CONFIG,
    NOW,
    YEAR,
    aged,
    anchor,
    client,
    codes_of,
    config,
    fallback,
    history,
    leaf,
    missing,
    only,
    plain,
    server,
    snapshot,
)

DAY = timedelta(days=1)
WATCHED = "/etc/kubernetes/pki/apiserver.crt"


def left(remaining: timedelta, lifetime: timedelta = YEAR) -> CertInfo:
    """A leaf with exactly ``remaining`` lifetime left at NOW."""
    return leaf(NOW + remaining - lifetime, NOW + remaining)


def verdict(cert: CertInfo, policy: Policy | None = None) -> tuple[str, Severity] | None:
    """The expiry verdict on a watched file holding ``cert`` (no rotation involved)."""
    snap = snapshot(client(), server(), plain(Role.WATCHED, WATCHED, cert))
    found = [f for f in expiry.check(snap, NOW, policy or Policy()) if f.path == WATCHED]
    return (found[0].code, found[0].severity) if found else None


EXPIRING = (codes.CERT_EXPIRING_SOON, Severity.WARNING)
CRITICAL = (codes.CERT_EXPIRING_SOON, Severity.CRITICAL)
EXPIRED = (codes.CERT_EXPIRED, Severity.CRITICAL)
NOT_YET = (codes.CERT_NOT_YET_VALID, Severity.WARNING)
SECOND = timedelta(seconds=1)


class TestThresholds:
    """One-year certificates: warning from 30 days left, critical from 7 (inclusive)."""

    @pytest.mark.parametrize(("cert", "expected"), [
        pytest.param(aged(0.5), None, id="half its life, healthy"),
        pytest.param(left(30 * DAY + SECOND), None, id="a second more than 30 days left"),
        pytest.param(left(30 * DAY), EXPIRING, id="exactly 30 days left, warning"),
        pytest.param(left(29 * DAY), EXPIRING, id="29 days left, warning"),
        pytest.param(left(7 * DAY + SECOND), EXPIRING, id="a second more than 7 days, warning"),
        pytest.param(left(7 * DAY), CRITICAL, id="exactly 7 days left, critical"),
        pytest.param(left(SECOND), CRITICAL, id="just about expired, critical"),
        pytest.param(left(timedelta(0)), EXPIRED, id="at notAfter, expired"),
        pytest.param(left(-SECOND), EXPIRED, id="a second past notAfter, expired"),
        pytest.param(leaf(NOW + SECOND, NOW + YEAR), NOT_YET, id="a second before notBefore"),
        pytest.param(leaf(NOW, NOW + YEAR), None, id="at notBefore, valid"),
    ])
    def test_one_year_certificate(self, cert: CertInfo, expected: tuple[str, Severity] | None
                                  ) -> None:
        assert verdict(cert) == expected

    @pytest.mark.parametrize(("remaining", "expected"), [
        pytest.param(timedelta(hours=4.8), None,
                     id="20 % left of 24h, inside the rotation window, healthy"),
        pytest.param(timedelta(hours=2.4) + SECOND, None, id="a second before 90 %, healthy"),
        pytest.param(timedelta(hours=2.4), EXPIRING, id="10 % left, warning"),
        pytest.param(timedelta(hours=2), EXPIRING, id="2h left, warning"),
        pytest.param(timedelta(minutes=73), EXPIRING, id="73 minutes left, warning"),
        pytest.param(timedelta(minutes=72), CRITICAL, id="5 % left, critical"),
        pytest.param(timedelta(minutes=10), CRITICAL, id="10 minutes left, critical"),
    ])
    def test_short_lived_certificate_thresholds_scale_with_lifetime(
            self, remaining: timedelta, expected: tuple[str, Severity] | None) -> None:
        assert verdict(left(remaining, timedelta(hours=24))) == expected

    def test_policy_days_move_the_thresholds(self) -> None:
        """--warning-days 60 --warning-fraction 0.2 warns a one-year certificate with 45 days
        left; the default fraction (36.5 days of a year) still caps --warning-days 60 alone."""
        assert verdict(left(45 * DAY)) is None
        assert verdict(left(45 * DAY), Policy(warning_days=60)) is None
        assert verdict(left(45 * DAY), Policy(warning_days=60, warning_fraction=0.2)) == EXPIRING

    def test_thresholds_are_the_smaller_of_days_and_fraction(self) -> None:
        critical, warning = expiry.thresholds(aged(0.5, timedelta(days=10)), Policy())
        assert (critical, warning) == (timedelta(hours=12), timedelta(days=1))


class TestMessages:
    def test_expiring_message_says_when_and_how_long_is_left(self) -> None:
        cert = left(3 * DAY + timedelta(hours=4, minutes=10))
        snap = snapshot(client(cert), server())
        f = only(list(expiry.check(snap, NOW, Policy())), codes.CERT_EXPIRING_SOON)
        assert f.severity is Severity.CRITICAL
        assert f"expires at {cert.not_after:%Y-%m-%dT%H:%M:%SZ}" in f.message
        assert "(in 3d 4h" in f.message
        assert "kubectl get csr" in f.message
        assert f.path == snap.certs[0].path

    def test_not_yet_valid_message_points_at_the_clock(self) -> None:
        snap = snapshot(client(leaf(NOW + timedelta(hours=2), NOW + YEAR)), server())
        f = only(list(expiry.check(snap, NOW, Policy())), codes.CERT_NOT_YET_VALID)
        assert "clock / NTP" in f.message
        assert "(in 2h 0m)" in f.message

    def test_expired_client_message_says_how_to_rejoin(self) -> None:
        snap = snapshot(client(left(-DAY)), server())
        f = only(list(expiry.check(snap, NOW, Policy())), codes.CERT_EXPIRED)
        assert "1d 0h ago" in f.message
        assert "kubeadm token create --print-join-command" in f.message

    def test_messages_are_one_line(self) -> None:
        snap = snapshot(client(left(-DAY)), server(left(DAY)), fallback(left(DAY)),
                        plain(Role.WATCHED, WATCHED, left(2 * DAY)),
                        anchors=(anchor(left(3 * DAY)),),
                        cfg=config(server_tls_bootstrap=False))
        found = list(expiry.check(snap, NOW, Policy()))
        assert len(found) == 4
        assert all("\n" not in f.message for f in found)


class TestLiveCertificates:
    def test_expired_history_never_alarms(self) -> None:
        """Old generations are history: only the current link is live."""
        old = left(-100 * DAY)
        snap = snapshot(history=(replace(history(Role.CLIENT), previous=old),))
        assert codes_of(evaluate(snap, NOW)) == []

    def test_leftover_kubelet_crt_is_not_judged_when_bootstrap_serves(self) -> None:
        snap = snapshot(client(), server(), fallback(left(-DAY)))
        assert list(expiry.check(snap, NOW, Policy())) == []

    def test_served_kubelet_crt_is_judged(self) -> None:
        snap = snapshot(client(), missing(Role.SERVER), fallback(left(-DAY)),
                        cfg=config(server_tls_bootstrap=False))
        f = only(list(expiry.check(snap, NOW, Policy())), codes.CERT_EXPIRED)
        assert f.path == fallback().path

    def test_tls_cert_file_is_judged_instead_of_kubelet_crt(self) -> None:
        tls = plain(Role.TLS_CERT_FILE, "/etc/kubelet/tls.crt", left(DAY))
        snap = snapshot(client(), missing(Role.SERVER), fallback(left(-DAY)), tls,
                        cfg=config(server_tls_bootstrap=False, tls_cert_file=tls.path))
        assert [f.path for f in expiry.check(snap, NOW, Policy())] == [tls.path]

    def test_rotated_server_cert_is_not_judged_when_bootstrap_is_off(self) -> None:
        snap = snapshot(client(), server(left(-DAY)), fallback(),
                        cfg=config(server_tls_bootstrap=False))
        assert list(expiry.check(snap, NOW, Policy())) == []

    def test_unknown_config_judges_the_server_cert_present_on_disk(self) -> None:
        snap = snapshot(client(), server(left(-DAY)), fallback(),
                        cfg=KubeletConfigInfo(path=CONFIG, present=False))
        assert [f.path for f in expiry.check(snap, NOW, Policy())] == [server().path]

    def test_trust_anchor_and_watched_files_are_judged(self) -> None:
        snap = snapshot(client(), server(), plain(Role.WATCHED, WATCHED, left(-DAY)),
                        anchors=(anchor(left(DAY)),))
        assert sorted(codes_of(list(expiry.check(snap, NOW, Policy())))) == [
            codes.CERT_EXPIRED, codes.CERT_EXPIRING_SOON]

    def test_stale_file_is_judged_on_its_last_good_leaf(self) -> None:
        stale = client(left(-DAY), stale_since=NOW - DAY,
                       read_error=ReadError(ReadProblem.TRUNCATED, "PEM block never ends"))
        snap = snapshot(stale, server())
        assert codes.CERT_EXPIRED in codes_of(list(expiry.check(snap, NOW, Policy())))


class TestDeadlines:
    def test_deadlines_are_not_before_thresholds_and_not_after(self) -> None:
        cert = aged(0.5)
        snap = snapshot(client(cert), server(cert), anchors=())
        got = set(expiry.deadlines(snap, Policy()))
        assert got == {cert.not_before, cert.not_after - 30 * DAY, cert.not_after - 7 * DAY,
                       cert.not_after}
