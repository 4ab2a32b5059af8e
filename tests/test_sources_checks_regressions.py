"""Regressions found in review: the served certificate, --watch over a cert dir, non-link
-current.pem entries and key labels in messages."""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509

from agent import codes, pkigen
from agent.checks import evaluate, files
from agent.config import SourceSettings
from agent.kubelet import served_role
from agent.model import (
    KubeletConfigInfo,
    LinkProblem,
    LinkState,
    Policy,
    ReadError,
    ReadProblem,
    Role,
)
from agent.snapshot import build_snapshot
from agent.sources.parse import parse_bundle, parse_key
from tests import conftest
from tests.snapshots import CONFIG, NOW, client, fallback, leaf, only, server, snapshot


class TestServedRole:
    def test_config_without_server_tls_bootstrap_serves_kubelet_crt(self) -> None:
        """A config read cleanly that leaves serverTLSBootstrap out means the kubelet's
        default (false): a leftover kubelet-server-current.pem is not what it serves."""
        cfg = KubeletConfigInfo(path=CONFIG, present=True, rotate_certificates=True)
        snap = snapshot(client(), server(), fallback(), cfg=cfg)
        assert served_role(snap) is Role.SELF_SIGNED
        assert codes.SERVER_CERT_SELF_SIGNED in [f.code for f in evaluate(snap, NOW)]

    def test_expired_leftover_server_cert_does_not_alarm_under_that_config(self) -> None:
        cfg = KubeletConfigInfo(path=CONFIG, present=True, rotate_certificates=True)
        old = leaf(NOW - timedelta(days=400), NOW - timedelta(days=35))
        snap = snapshot(client(), server(old), fallback(), cfg=cfg)
        assert codes.CERT_EXPIRED not in [f.code for f in evaluate(snap, NOW)]

    def test_unreadable_config_still_guesses_from_the_disk(self) -> None:
        cfg = KubeletConfigInfo(path=CONFIG, present=True,
                                error=ReadError(ReadProblem.GARBAGE, "not YAML"))
        assert served_role(snapshot(client(), server(), fallback(), cfg=cfg)) is Role.SERVER


class TestWatchedCertDir:
    def test_expired_history_under_watch_never_alarms(self, node_pki: pkigen.NodePki) -> None:
        """--watch on a directory holding the kubelet's history skips the generations."""
        oldest = node_pki.client_history[0]
        assert x509.load_pem_x509_certificate(
            oldest.read_bytes()).not_valid_after_utc < conftest.NOW  # expired history
        source = SourceSettings(cert_dir=node_pki.cert_dir, kubelet_config=None,
                                ca_files=(node_pki.ca_file,), node_name="node1",
                                watch_paths=(node_pki.cert_dir,))
        snap = build_snapshot(source, conftest.NOW)
        assert str(oldest) not in [c.path for c in snap.certs]
        assert codes.CERT_EXPIRED not in [f.code for f in evaluate(snap, conftest.NOW)]


class TestNonLinkCurrent:
    def test_fifo_in_place_of_the_link_is_not_described_as_a_link(self) -> None:
        path = client().path
        odd = client(leaf=None, chain=(), target=None,
                     link=LinkState(path, False, problem=LinkProblem.NOT_REGULAR))
        f = only(list(files.check(snapshot(odd, server()), NOW, Policy())),
                 codes.SYMLINK_BROKEN)
        assert "-> None" not in f.message and "ln -sfn" not in f.message
        assert "is not a symlink" in f.message and "remove it" in f.message


class TestKeyLabelsNeverEchoed:
    def test_corrupt_key_error_does_not_name_the_private_key_label(self) -> None:
        issued = pkigen.kubelet_client(pkigen.cluster_ca(NOW), "node1", NOW)
        lines = issued.key_pem().splitlines(keepends=True)
        broken = lines[0] + lines[1][:20] + b"\n" + lines[-1]
        parsed = parse_bundle(issued.cert_pem() + broken)
        assert parsed.key_error is not None and "PRIVATE KEY" not in parsed.key_error.detail
        _, error = parse_key(broken)
        assert error is not None and "PRIVATE KEY" not in error.detail

    def test_unsupported_key_label_is_not_echoed(self) -> None:
        data = b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
        parsed = parse_bundle(data)
        assert parsed.error is not None and parsed.error.problem is ReadProblem.NO_CERTIFICATE
        assert "PRIVATE KEY" not in parsed.error.detail
