"""Specification of agent.checks: evaluate (order), judge (status), next_change (when to look
again), and the checks on real node trees read by agent.snapshot.build_snapshot."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from agent import codes, pkigen
from agent.checks import evaluate, judge, next_change
from agent.config import SourceSettings
from agent.model import (
    CsrState,
    Evaluation,
    Finding,
    KeyMatch,
    LinkProblem,
    Policy,
    Role,
    Severity,
    Snapshot,
    Status,
)
from agent.snapshot import build_snapshot
from tests.conftest import OpenSSL
from tests.snapshots import (
    NOW,
    YEAR,
    aged,
    api,
    broken_link,
    client,
    codes_of,
    config,
    csr,
    leaf,
    missing,
    plain,
    server,
    snapshot,
    with_api,
)

DAY = timedelta(days=1)
MIN = timedelta(minutes=1)
TICK = timedelta(microseconds=1)
WATCHED = "/etc/kubernetes/pki/front-proxy-client.crt"


def messy() -> Snapshot:
    """A node with a bit of everything wrong."""
    return snapshot(
        client(aged(0.95), key_match=KeyMatch.MISMATCH),
        broken_link(Role.SERVER, LinkProblem.DANGLING),
        plain(Role.WATCHED, WATCHED, leaf(NOW - YEAR, NOW - DAY)),
        plain(Role.WATCHED, "/etc/kubernetes/pki/apiserver.crt", leaf(NOW - YEAR, NOW)),
        cfg=config(rotate_certificates=None), api=api(csr("csr-a", MIN * 30)))


class TestEvaluate:
    def test_healthy_node_has_no_findings(self) -> None:
        assert evaluate(snapshot(), NOW) == ()

    def test_sorted_worst_first_then_code_then_path(self) -> None:
        found = evaluate(messy(), NOW)
        kubelet = "/var/lib/kubelet/pki/kubelet"
        assert [(f.severity, f.code, f.path) for f in found] == [
            (Severity.CRITICAL, codes.CERT_EXPIRED, "/etc/kubernetes/pki/apiserver.crt"),
            (Severity.CRITICAL, codes.CERT_EXPIRED, WATCHED),
            (Severity.CRITICAL, codes.KEY_MISMATCH, f"{kubelet}-client-current.pem"),
            (Severity.CRITICAL, codes.SERVING_CSR_PENDING, None),
            (Severity.CRITICAL, codes.SYMLINK_BROKEN, f"{kubelet}-server-current.pem"),
            (Severity.WARNING, codes.CERT_EXPIRING_SOON, f"{kubelet}-client-current.pem"),
            (Severity.WARNING, codes.ROTATION_OVERDUE, f"{kubelet}-client-current.pem"),
        ]

    def test_deterministic_whatever_the_input_order(self) -> None:
        snap = messy()
        shuffled = list(snap.certs)
        random.Random(4).shuffle(shuffled)  # noqa: S311 - a fixed order, not a secret
        assert evaluate(replace(snap, certs=tuple(shuffled)), NOW) == evaluate(snap, NOW)

    def test_every_message_is_one_line(self) -> None:
        found = evaluate(messy(), NOW)
        assert found and all(f.message and "\n" not in f.message for f in found)

    def test_a_file_judged_twice_is_reported_once(self) -> None:
        """--watch on the cert dir sees the client certificate a second time."""
        expired = leaf(NOW - YEAR, NOW - DAY)
        cf = client(expired)
        snap = snapshot(cf, server(), plain(Role.WATCHED, cf.path, expired))
        assert codes_of(evaluate(snap, NOW)) == [codes.CERT_EXPIRED]
        assert evaluate(snap, NOW)[0].path == cf.path

    def test_policy_is_used(self) -> None:
        snap = snapshot(client(), server(), plain(Role.WATCHED, WATCHED, aged(0.9)))
        assert evaluate(snap, NOW) == ()
        assert codes_of(evaluate(snap, NOW, Policy(warning_days=40))) == [
            codes.CERT_EXPIRING_SOON]


class TestJudge:
    @pytest.mark.parametrize(("snap", "status"), [
        pytest.param(snapshot(), Status.OK, id="healthy"),
        pytest.param(snapshot(cfg=config(rotate_certificates=False)), Status.WARNING,
                     id="a warning"),
        pytest.param(snapshot(missing(Role.CLIENT), server()), Status.CRITICAL,
                     id="a critical"),
    ])
    def test_status_is_the_worst_finding(self, snap: Snapshot, status: Status) -> None:
        ev = judge(snap, NOW)
        assert (ev.status, ev.now, ev.snapshot) == (status, NOW, snap)

    def test_only_info_findings_is_ok(self) -> None:
        info = Finding("SOMETHING_TO_KNOW", Severity.INFO, "just so you know")
        assert Evaluation(snapshot(), NOW, (info,)).status is Status.OK


def far() -> Snapshot:
    """A node with nothing due for months: the base of each next_change scenario."""
    return snapshot(client(aged(0.1)), server(aged(0.1)), anchors=())


FAR = aged(0.1).rotation_window_end


class TestNextChange:
    @pytest.mark.parametrize(("snap", "expected"), [
        pytest.param(far(), FAR, id="rotation window end of a healthy node"),
        pytest.param(replace(far(), certs=(*far().certs, plain(
            Role.WATCHED, WATCHED, leaf(NOW + DAY, NOW + YEAR)))), NOW + DAY,
            id="notBefore in the future"),
        pytest.param(snapshot(client(aged(0.85)), server(aged(0.1)), anchors=()),
                     aged(0.85).rotation_window_end, id="rotation window end"),
        pytest.param(replace(far(), certs=(*far().certs, plain(
            Role.WATCHED, WATCHED, leaf(NOW - YEAR, NOW + 40 * DAY)))), NOW + 10 * DAY,
            id="warning threshold crossing"),
        pytest.param(replace(far(), certs=(*far().certs, plain(
            Role.WATCHED, WATCHED, leaf(NOW - YEAR, NOW + 10 * DAY)))), NOW + 3 * DAY,
            id="critical threshold crossing"),
        pytest.param(replace(far(), certs=(*far().certs, plain(
            Role.WATCHED, WATCHED, leaf(NOW - YEAR, NOW + 3 * DAY)))), NOW + 3 * DAY,
            id="expiry"),
        pytest.param(with_api(api(csr("csr-a", MIN * 2)), far()), NOW + MIN * 8,
                     id="pending CSR becomes stale"),
        pytest.param(with_api(api(csr("csr-a", MIN * 30, CsrState.APPROVED,
                                      state_since=NOW - MIN)), far()), NOW + MIN * 4,
                     id="approved CSR times out"),
    ])
    def test_earliest_instant_of_each_kind(self, snap: Snapshot, expected: datetime) -> None:
        assert next_change(snap, NOW) == expected

    def test_the_verdict_changes_exactly_at_that_instant(self) -> None:
        """Evaluating a tick before shows the old verdict, at the instant the new one."""
        base = replace(far(), certs=(*far().certs, plain(
            Role.WATCHED, WATCHED, leaf(NOW - YEAR, NOW + 40 * DAY))),
            api=api(csr("csr-a", MIN * 2)))
        now = NOW
        for _ in range(6):
            at = next_change(base, now)
            assert at is not None and at > now
            before = {(f.code, f.severity) for f in evaluate(base, at - TICK)}
            assert before == {(f.code, f.severity) for f in evaluate(base, now)}
            assert {(f.code, f.severity) for f in evaluate(base, at)} != before
            now = at

    def test_instants_at_or_before_now_are_excluded(self) -> None:
        cert = aged(0.9)  # window end is exactly NOW
        snap = snapshot(client(cert), server(aged(0.1)), anchors=())
        assert next_change(snap, NOW) == cert.not_after - 30 * DAY

    def test_nothing_left_to_change(self) -> None:
        snap = snapshot(client(leaf(NOW - YEAR, NOW - DAY)), missing(Role.SERVER), anchors=())
        assert next_change(snap, NOW) is None

    def test_history_does_not_wake_the_daemon(self) -> None:
        snap = snapshot(client(leaf(NOW - YEAR, NOW - DAY)), missing(Role.SERVER), anchors=(),
                        cfg=config(server_tls_bootstrap=False))
        assert next_change(snap, NOW) is None


def write_config(root: Path, **fields: object) -> Path:
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "kubelet.config.k8s.io/v1beta1",
                                    "kind": "KubeletConfiguration", **fields}))
    return path


def real(root: Path, now: datetime, **fields: object) -> Snapshot:
    """build_snapshot on the tree under ``root`` with a kubelet config of ``fields``."""
    fields.setdefault("authentication", {"x509": {"clientCAFile": str(root / "ca.crt")}})
    settings = SourceSettings(cert_dir=root / "pki", kubelet_config=write_config(root, **fields),
                              node_name="node1")
    return build_snapshot(settings, now)


class TestRealFiles:
    """The checks on trees written in the kubelet's exact layout, read by the sources."""

    def test_healthy_bootstrap_node_with_leftover_fallback_is_ok(self, tmp_path: Path) -> None:
        pkigen.build_node(tmp_path, "node1", NOW)
        snap = real(tmp_path, NOW, serverTLSBootstrap=True, rotateCertificates=True)
        assert evaluate(snap, NOW) == ()

    def test_self_signed_fallback_is_detected(self, tmp_path: Path) -> None:
        pkigen.build_node(tmp_path, "node1", NOW, server=False)
        snap = real(tmp_path, NOW, rotateCertificates=True)
        assert codes_of(evaluate(snap, NOW)) == [codes.SERVER_CERT_SELF_SIGNED]

    def test_bootstrap_without_serving_certificate(self, tmp_path: Path) -> None:
        pkigen.build_node(tmp_path, "node1", NOW, server=False)
        snap = real(tmp_path, NOW, serverTLSBootstrap=True, rotateCertificates=True)
        assert codes_of(evaluate(snap, NOW)) == [codes.SERVER_CERT_MISSING]

    @pytest.mark.parametrize("stop_after", [1, 2, 4], ids=[
        "stale-updated-removed", "updated-link-created", "updated-renamed"])
    def test_swap_steps_that_keep_a_current_link_are_quiet(self, tmp_path: Path,
                                                           stop_after: int) -> None:
        pki = pkigen.build_node(tmp_path, "node1", NOW)
        new = pkigen.kubelet_client(pki.ca, "node1", NOW - DAY)
        path = pkigen.write_generation(pki.cert_dir, "client", new, NOW)
        pkigen.kubelet_swap(pki.cert_dir, "client", path, stop_after=stop_after)
        snap = real(tmp_path, NOW, serverTLSBootstrap=True, rotateCertificates=True)
        assert evaluate(snap, NOW) == ()

    def test_a_swap_stopped_between_remove_and_rename_is_an_interrupted_rotation(
            self, tmp_path: Path) -> None:
        pki = pkigen.build_node(tmp_path, "node1", NOW)
        new = pkigen.kubelet_client(pki.ca, "node1", NOW - DAY)
        path = pkigen.write_generation(pki.cert_dir, "client", new, NOW)
        pkigen.kubelet_swap(pki.cert_dir, "client", path, stop_after=3)
        snap = real(tmp_path, NOW, serverTLSBootstrap=True, rotateCertificates=True)
        found = evaluate(snap, NOW)
        assert codes_of(found) == [codes.SWAP_INTERRUPTED]
        assert "kubelet-client-updated.pem links to" in found[0].message

    def test_expired_history_is_quiet_but_an_overdue_current_is_not(self,
                                                                  tmp_path: Path) -> None:
        pki = pkigen.build_node(tmp_path, "node1", NOW, client_generations=6,
                                lifetime=timedelta(days=30))
        snap = real(tmp_path, NOW, serverTLSBootstrap=True, rotateCertificates=True)
        assert evaluate(snap, NOW) == ()
        later = pki.client.cert.not_valid_after_utc - DAY
        assert codes.ROTATION_OVERDUE in codes_of(evaluate(snap, later))

    def test_openssl_made_tls_cert_file(self, tmp_path: Path, openssl: OpenSSL) -> None:
        """A tlsCertFile made with the openssl CLI: trusted when signed by the cluster CA,
        SERVER_CERT_SELF_SIGNED when self-signed, and expiring on its own schedule."""
        signed_probe, _ = openssl.self_signed("probe", "/CN=probe")
        now = x509.load_pem_x509_certificate(signed_probe.read_bytes()).not_valid_before_utc
        now += DAY
        pki = pkigen.build_node(tmp_path, "node1", now, server=False, fallback=False)
        ca_key = tmp_path / "ca.key"
        ca_key.write_bytes(pki.ca.key_pem())
        tls, key = openssl.signed("tls", "/O=system:nodes/CN=system:node:node1", pki.ca_file,
                                  ca_key, extfile_text="subjectAltName=DNS:node1\n"
                                  "extendedKeyUsage=serverAuth\n")
        snap = real(tmp_path, now, rotateCertificates=True, tlsCertFile=str(tls),
                    tlsPrivateKeyFile=str(key))
        assert evaluate(snap, now) == ()
        # 30-day certificate: warning from 3 days left (10 %), critical from 1.5 days (5 %)
        assert codes_of(evaluate(snap, now + 26 * DAY + timedelta(hours=12))) == [
            codes.CERT_EXPIRING_SOON]
        own, own_key = openssl.self_signed("own", "/CN=node1")
        snap = real(tmp_path, now, rotateCertificates=True, tlsCertFile=str(own),
                    tlsPrivateKeyFile=str(own_key))
        assert codes_of(evaluate(snap, now)) == [codes.SERVER_CERT_SELF_SIGNED]
