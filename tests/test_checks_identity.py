"""Specification of agent.checks.identity: self-signed serving, keys, node identity, trust."""

from __future__ import annotations

from typing import Any

import pytest

from agent import codes
from agent.checks import identity
from agent.model import CertInfo, KeyMatch, Policy, Role, Severity, Snapshot
from tests.snapshots import (
    NODE,
    NOW,
    client,
    codes_of,
    config,
    fallback,
    leaf,
    missing,
    only,
    plain,
    server,
    snapshot,
)

TLS = "/etc/kubernetes/kubelet/tls.crt"
NO_BOOTSTRAP = config(server_tls_bootstrap=False)


def check(snap: Snapshot) -> list[str]:
    return codes_of(list(identity.check(snap, NOW, Policy())))


class TestSelfSigned:
    def test_served_fallback_is_a_warning_with_both_fixes(self) -> None:
        snap = snapshot(client(), missing(Role.SERVER), fallback(), cfg=NO_BOOTSTRAP)
        f = only(list(identity.check(snap, NOW, Policy())), codes.SERVER_CERT_SELF_SIGNED)
        assert f.severity is Severity.WARNING
        assert f.path is not None and f.path.endswith("/kubelet.crt")
        assert "serverTLSBootstrap: true" in f.message
        assert "tlsCertFile" in f.message
        assert "kubectl logs/exec" in f.message

    def test_served_fallback_is_not_also_untrusted(self) -> None:
        snap = snapshot(client(), missing(Role.SERVER), fallback(trusted=False), cfg=NO_BOOTSTRAP)
        assert check(snap) == [codes.SERVER_CERT_SELF_SIGNED]

    def test_leftover_fallback_is_not_judged_when_bootstrap_serves(self) -> None:
        assert check(snapshot(client(), server(), fallback())) == []

    @pytest.mark.parametrize(("tls_kw", "expected"), [
        pytest.param({"self_signed": True, "trusted": False}, [codes.SERVER_CERT_SELF_SIGNED],
                     id="self-signed in the kubelet's sense"),
        pytest.param({"leaf": leaf(self_issued=True), "trusted": False},
                     [codes.SERVER_CERT_SELF_SIGNED], id="self-issued leaf"),
        pytest.param({"trusted": True}, [], id="signed by the cluster CA"),
        pytest.param({"trusted": False}, [codes.UNTRUSTED_ISSUER], id="signed by another CA"),
    ])
    def test_tls_cert_file(self, tls_kw: dict[str, Any], expected: list[str]) -> None:
        tls = plain(Role.TLS_CERT_FILE, TLS, **tls_kw)
        snap = snapshot(client(), missing(Role.SERVER), fallback(), tls,
                        cfg=config(server_tls_bootstrap=False, tls_cert_file=TLS))
        assert check(snap) == expected


class TestKeyMismatch:
    def test_mismatched_key_inside_the_pem_is_critical(self) -> None:
        bad = client(key_match=KeyMatch.MISMATCH)
        f = only(list(identity.check(snapshot(bad, server()), NOW, Policy())),
                 codes.KEY_MISMATCH)
        assert (f.severity, f.path) == (Severity.CRITICAL, bad.path)
        assert f"inside {bad.target}" in f.message

    def test_separate_key_file_is_the_path(self) -> None:
        crt = fallback(key_match=KeyMatch.MISMATCH)
        snap = snapshot(client(), missing(Role.SERVER), crt, cfg=NO_BOOTSTRAP)
        f = only(list(identity.check(snap, NOW, Policy())), codes.KEY_MISMATCH)
        assert f.path == crt.key_path

    @pytest.mark.parametrize("match", [KeyMatch.MATCH, KeyMatch.ABSENT], ids=str)
    def test_matching_or_absent_key_is_fine(self, match: KeyMatch) -> None:
        assert check(snapshot(client(key_match=match), server())) == []

    def test_watched_files_are_not_checked_for_keys(self) -> None:
        watched = plain(Role.WATCHED, "/etc/kubernetes/pki/x.crt", key_match=KeyMatch.MISMATCH)
        assert check(snapshot(client(), server(), watched)) == []


class TestClientIdentity:
    @pytest.mark.parametrize(("cert", "ok"), [
        pytest.param(leaf(), True, id="CN=system:node:node1, O=system:nodes"),
        pytest.param(leaf(orgs=("system:nodes", "extra")), True, id="extra organization"),
        pytest.param(leaf(cn="system:node:node2"), False, id="another node's certificate"),
        pytest.param(leaf(orgs=()), False, id="no O=system:nodes"),
        pytest.param(leaf(cn="node1"), False, id="bare host name as CN"),
    ])
    def test_subject_must_name_this_node(self, cert: CertInfo, ok: bool) -> None:
        found = check(snapshot(client(cert), server()))
        assert found == ([] if ok else [codes.IDENTITY_MISMATCH])

    def test_message_shows_the_subject_and_the_expected_one(self) -> None:
        snap = snapshot(client(leaf(cn="system:node:node2")), server())
        f = only(list(identity.check(snap, NOW, Policy())), codes.IDENTITY_MISMATCH)
        assert "CN=system:node:node2" in f.message
        assert f"CN=system:node:{NODE},O=system:nodes" in f.message

    def test_no_node_name_no_identity_check(self) -> None:
        snap = snapshot(client(leaf(cn="system:node:node2")), server(), node_name="")
        assert check(snap) == []


class TestServerIdentity:
    @pytest.mark.parametrize(("node", "dns", "ips", "ok"), [
        pytest.param("node1", ("node1",), (), True, id="node name among DNS SANs"),
        pytest.param("node1", ("Node1.",), (), True, id="case and trailing dot ignored"),
        pytest.param("node1", ("node1.example.com",), ("10.0.0.5",), False,
                     id="only the FQDN"),
        pytest.param("10.0.0.5", (), ("10.0.0.5",), True, id="IP node name among IP SANs"),
        pytest.param("10.0.0.5", ("node1",), ("10.0.0.6",), False, id="IP node name missing"),
        pytest.param("node1", (), (), False, id="no SANs at all"),
    ])
    def test_sans_must_name_this_node(self, node: str, dns: tuple[str, ...],
                                      ips: tuple[str, ...], ok: bool) -> None:
        cert = leaf(cn=f"system:node:{node}", dns_names=dns, ip_addresses=ips)
        snap = snapshot(client(leaf(cn=f"system:node:{node}")), server(cert), node_name=node)
        assert check(snap) == ([] if ok else [codes.IDENTITY_MISMATCH])


class TestUntrusted:
    @pytest.mark.parametrize(("trusted", "expected"), [
        pytest.param(True, [], id="chains to an anchor"),
        pytest.param(None, [], id="no anchor known"),
        pytest.param(False, [codes.UNTRUSTED_ISSUER], id="does not chain"),
    ])
    def test_client(self, trusted: bool | None, expected: list[str]) -> None:
        assert check(snapshot(client(trusted=trusted), server())) == expected

    def test_server_untrusted_names_issuer_and_anchors(self) -> None:
        cert = leaf(issuer="CN=rogue", dns_names=(NODE,))
        snap = snapshot(client(), server(cert, trusted=False))
        f = only(list(identity.check(snap, NOW, Policy())), codes.UNTRUSTED_ISSUER)
        assert f.severity is Severity.WARNING
        assert "'CN=rogue'" in f.message
        assert "/etc/kubernetes/pki/ca.crt" in f.message

    def test_watched_files_are_not_judged_for_trust(self) -> None:
        watched = plain(Role.WATCHED, "/etc/kubernetes/pki/x.crt", trusted=False)
        assert check(snapshot(client(), server(), watched)) == []
