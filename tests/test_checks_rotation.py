"""Specification of agent.checks.rotation: the kubelet's 70-90 % window and rotateCertificates."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent import codes
from agent.checks import rotation
from agent.model import CertFile, CertInfo, KubeletConfigInfo, Policy, Severity
from tests.snapshots import (
    CONFIG,
    NOW,
    YEAR,
    client,
    codes_of,
    config,
    leaf,
    only,
    server,
    snapshot,
)

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)


def lived(elapsed: timedelta, lifetime: timedelta = YEAR) -> CertInfo:
    """A leaf issued ``elapsed`` before NOW."""
    return leaf(NOW - elapsed, NOW - elapsed + lifetime)


def overdue_roles(*certs: CertFile, cfg: KubeletConfigInfo | None = None) -> list[str]:
    snap = snapshot(*certs, cfg=cfg)
    return [f.path.rsplit("/", 1)[-1] for f in rotation.overdue(snap, NOW) if f.path]


class TestOverdue:
    """Past 90 % of its life the kubelet should have replaced the certificate."""

    @pytest.mark.parametrize(("cert", "overdue"), [
        pytest.param(lived(YEAR * 0.5), False, id="half its life"),
        pytest.param(lived(YEAR * 0.7), False, id="window opens at 70 %"),
        pytest.param(lived(YEAR * 0.8), False, id="inside the window"),
        pytest.param(lived(YEAR * 0.9 - SECOND), False, id="a second before 90 %"),
        pytest.param(lived(YEAR * 0.9), True, id="at 90 %, overdue"),
        pytest.param(lived(YEAR * 0.9 + SECOND), True, id="a second after 90 %"),
        pytest.param(lived(YEAR - SECOND), True, id="just about expired"),
        pytest.param(lived(YEAR), False, id="expired is CERT_EXPIRED, not overdue"),
        pytest.param(lived(timedelta(hours=21.6), timedelta(hours=24)), True,
                     id="24h cert at 90 %"),
        pytest.param(lived(timedelta(hours=21.5), timedelta(hours=24)), False,
                     id="24h cert at 89.6 %"),
    ])
    def test_client_window_end(self, cert: CertInfo, overdue: bool) -> None:
        found = overdue_roles(client(cert), server())
        assert found == (["kubelet-client-current.pem"] if overdue else [])

    @pytest.mark.parametrize(("cfg", "expected"), [
        pytest.param(config(server_tls_bootstrap=True), ["kubelet-server-current.pem"],
                     id="serverTLSBootstrap true: rotated by the kubelet"),
        pytest.param(config(server_tls_bootstrap=False), [], id="serverTLSBootstrap false"),
        pytest.param(config(server_tls_bootstrap=None), [], id="serverTLSBootstrap unknown"),
    ])
    def test_server_only_with_server_tls_bootstrap(self, cfg: KubeletConfigInfo,
                                                   expected: list[str]) -> None:
        assert overdue_roles(client(), server(lived(YEAR * 0.95)), cfg=cfg) == expected

    @pytest.mark.parametrize(("rotate", "expected"), [
        pytest.param(True, ["kubelet-client-current.pem"], id="rotateCertificates true"),
        pytest.param(None, ["kubelet-client-current.pem"], id="rotateCertificates unknown"),
        pytest.param(False, [], id="rotateCertificates false: ROTATION_DISABLED instead"),
    ])
    def test_client_only_when_rotation_is_on(self, rotate: bool | None,
                                             expected: list[str]) -> None:
        cfg = config(rotate_certificates=rotate)
        assert overdue_roles(client(lived(YEAR * 0.95)), server(), cfg=cfg) == expected

    def test_message_names_the_window_end_and_where_to_look(self) -> None:
        cert = lived(YEAR * 0.95)
        f = only(list(rotation.overdue(snapshot(client(cert), server()), NOW)),
                 codes.ROTATION_OVERDUE)
        assert f.severity is Severity.WARNING
        assert f"by {cert.rotation_window_end:%Y-%m-%dT%H:%M:%SZ}" in f.message
        assert "certificate request was not signed" in f.message
        assert "kubectl get csr" in f.message

    def test_a_stale_leaf_still_counts(self) -> None:
        """A file unreadable now but last seen at 95 % is still overdue."""
        stale = client(lived(YEAR * 0.95), stale_since=NOW - DAY)
        assert codes_of(list(rotation.overdue(snapshot(stale, server()), NOW))) == [
            codes.ROTATION_OVERDUE]


class TestDisabled:
    def test_rotate_certificates_false_is_a_warning_on_the_config(self) -> None:
        cert = lived(YEAR * 0.5)
        snap = snapshot(client(cert), server(), cfg=config(rotate_certificates=False))
        f = only(list(rotation.disabled(snap)), codes.ROTATION_DISABLED)
        assert (f.severity, f.path) == (Severity.WARNING, CONFIG)
        assert "rotateCertificates: true" in f.message
        assert f"{cert.not_after:%Y-%m-%dT%H:%M:%SZ}" in f.message

    @pytest.mark.parametrize("rotate", [True, None], ids=["true", "not set"])
    def test_only_an_explicit_false_counts(self, rotate: bool | None) -> None:
        snap = snapshot(cfg=config(rotate_certificates=rotate))
        assert list(rotation.disabled(snap)) == []

    def test_without_a_client_certificate_the_message_still_reads(self) -> None:
        snap = snapshot(server(), cfg=config(rotate_certificates=False))
        f = only(list(rotation.disabled(snap)), codes.ROTATION_DISABLED)
        assert "will not renew its client certificate;" in f.message


class TestDeadlines:
    def test_window_end_of_each_managed_certificate(self) -> None:
        c, s = lived(YEAR * 0.2), lived(YEAR * 0.3)
        snap = snapshot(client(c), server(s))
        assert set(rotation.deadlines(snap, Policy())) == {c.rotation_window_end,
                                                          s.rotation_window_end}

    def test_unmanaged_certificates_have_no_window(self) -> None:
        snap = snapshot(client(), server(),
                        cfg=config(rotate_certificates=False, server_tls_bootstrap=False))
        assert list(rotation.deadlines(snap, Policy())) == []
