"""parse_bundle / parse_key: every format the kubelet and operators write, every failure."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from agent import pkigen
from agent.model import ReadProblem
from agent.sources.parse import parse_bundle, parse_key
from tests.conftest import NOW, OpenSSL

CA = pkigen.cluster_ca(NOW)
CLIENT = pkigen.kubelet_client(CA, "node1", NOW - timedelta(days=10))
SERVER = pkigen.kubelet_server(CA, "node1", NOW - timedelta(days=10),
                               ip_addresses=("10.0.0.5", "fd00::5"))
OTHER_CA = pkigen.cluster_ca(NOW, cn="other-cluster")


def spki(issued: pkigen.Issued) -> str:
    der = issued.key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def pem_block(label: str, body: bytes) -> bytes:
    return (f"-----BEGIN {label}-----\n".encode() + base64.encodebytes(body)
            + f"-----END {label}-----\n".encode())


class TestPemBundles:
    def test_kubelet_generation_file_gives_leaf_and_matching_key(self) -> None:
        """The kubelet's own layout (certificate then EC key) yields the leaf and its key hash."""
        parsed = parse_bundle(CLIENT.cert_pem() + CLIENT.key_pem())
        assert parsed.error is None and parsed.format == "pem"
        assert parsed.leaf is not None and parsed.leaf.subject_cn == "system:node:node1"
        assert parsed.key_present and parsed.key_spki_sha256 == parsed.leaf.spki_sha256

    @pytest.mark.parametrize("layout", ["key-first", "key-between", "pkcs8-key", "rsa-key"])
    def test_key_anywhere_and_in_any_format_is_found(self, layout: str) -> None:
        """A private key is found before, between or after certificates, SEC1, PKCS#1 or PKCS#8."""
        rsa_leaf = pkigen.issue("rsa", issuer=CA, key_type="rsa", not_before=NOW,
                                not_after=NOW + timedelta(days=1))
        data, issued = {
            "key-first": (CLIENT.key_pem() + CLIENT.cert_pem() + CA.cert_pem(), CLIENT),
            "key-between": (CLIENT.cert_pem() + CLIENT.key_pem() + CA.cert_pem(), CLIENT),
            "pkcs8-key": (CLIENT.cert_pem() + CLIENT.key_pem(pkcs8=True), CLIENT),
            "rsa-key": (rsa_leaf.cert_pem() + rsa_leaf.key_pem(), rsa_leaf),
        }[layout]
        parsed = parse_bundle(data)
        assert parsed.error is None and parsed.key_error is None
        assert parsed.key_spki_sha256 == spki(issued) == parsed.leaf.spki_sha256  # type: ignore[union-attr]

    def test_certificates_keep_file_order_and_leaf_is_first_non_ca(self) -> None:
        """With the CA written first, the leaf is still the end-entity certificate."""
        parsed = parse_bundle(CA.cert_pem() + SERVER.cert_pem())
        assert [c.subject_cn for c in parsed.certificates] == ["kubernetes", "system:node:node1"]
        assert parsed.leaf is not None and parsed.leaf.subject_cn == "system:node:node1"

    def test_bundle_of_only_cas_uses_the_first_as_leaf(self) -> None:
        """A CA bundle has no end-entity certificate: the first certificate stands for it."""
        parsed = parse_bundle(CA.cert_pem() + OTHER_CA.cert_pem())
        assert parsed.leaf is not None and parsed.leaf.subject_cn == "kubernetes"

    def test_text_around_blocks_is_ignored(self) -> None:
        """``openssl x509 -text`` output and comments around the PEM blocks do not matter."""
        parsed = parse_bundle(b"Certificate:\n    Data: ...\n" + CLIENT.cert_pem() + b"# end\n")
        assert parsed.error is None and len(parsed.certificates) == 1

    def test_crlf_line_endings_are_accepted(self) -> None:
        """A bundle edited on Windows (CRLF) still parses."""
        parsed = parse_bundle(CLIENT.cert_pem().replace(b"\n", b"\r\n"))
        assert parsed.error is None and parsed.leaf is not None

    def test_no_key_means_key_absent(self) -> None:
        """A certificate without a key reports no key and no key error."""
        parsed = parse_bundle(CLIENT.cert_pem())
        assert not parsed.key_present and parsed.key_spki_sha256 is None
        assert parsed.key_error is None


class TestCertInfo:
    def test_every_field_is_filled(self) -> None:
        """Subject, issuer, serial, fingerprint, validity, SANs, usages and key facts are set."""
        info = parse_bundle(SERVER.cert_pem()).leaf
        assert info is not None
        assert info.subject == "CN=system:node:node1,O=system:nodes"
        assert info.issuer == "CN=kubernetes"
        assert info.serial == format(SERVER.cert.serial_number, "x")
        assert info.fingerprint_sha256 == hashlib.sha256(SERVER.cert_der()).hexdigest()
        assert info.not_before == NOW - timedelta(days=10)
        assert info.not_before.tzinfo is UTC and info.not_after.tzinfo is UTC
        assert info.subject_orgs == ("system:nodes",)
        assert info.dns_names == ("node1",)
        assert info.ip_addresses == ("10.0.0.5", "fd00::5")
        assert info.key_usage == ("digital_signature",)
        assert info.ext_key_usage == ("serverAuth",)
        assert info.key_algorithm == "EC P-256"
        assert info.spki_sha256 == spki(SERVER)
        assert not info.is_ca and not info.self_issued

    def test_ca_is_recognised_as_ca_and_self_issued(self) -> None:
        """A root CA: is_ca, self_issued, RSA 2048, key_cert_sign."""
        info = parse_bundle(CA.cert_pem()).leaf
        assert info is not None and info.is_ca and info.self_issued
        assert info.key_algorithm == "RSA 2048"
        assert "key_cert_sign" in info.key_usage

    def test_email_and_uri_sans_are_other_sans(self, openssl: OpenSSL) -> None:
        """SANs that are neither DNS nor IP are kept, prefixed with their type."""
        cert, _ = openssl.self_signed(
            "odd", "/CN=odd", extensions=["subjectAltName=email:a@example.com,URI:spiffe://x/y"])
        info = parse_bundle(cert.read_bytes()).leaf
        assert info is not None
        assert info.other_sans == ("email:a@example.com", "URI:spiffe://x/y")
        assert info.sans == ("email:a@example.com", "URI:spiffe://x/y")


class TestDer:
    def test_der_certificate_is_parsed(self) -> None:
        """A single DER certificate parses with format "der"."""
        parsed = parse_bundle(SERVER.cert_der())
        assert parsed.error is None and parsed.format == "der"
        assert parsed.leaf is not None and parsed.leaf.dns_names == ("node1",)

    def test_der_private_key_alone_is_no_certificate(self) -> None:
        """A DER private key is recognised and reported as holding no certificate."""
        der = CLIENT.key.private_bytes(serialization.Encoding.DER,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
        parsed = parse_bundle(der)
        assert parsed.error is not None and parsed.error.problem is ReadProblem.NO_CERTIFICATE

    def test_der_garbage_is_garbage(self) -> None:
        """Bytes starting like ASN.1 but not a certificate are GARBAGE."""
        parsed = parse_bundle(b"\x30\x82\x01\x00" + b"\x00" * 40)
        assert parsed.error is not None and parsed.error.problem is ReadProblem.GARBAGE


class TestOpenSSLMade:
    @pytest.mark.parametrize(("algorithm", "name"),
                             [("ec", "EC P-256"), ("rsa", "RSA 2048"), ("ed25519", "Ed25519")])
    def test_self_signed_by_openssl_is_self_signed_with_matching_key(
            self, openssl: OpenSSL, algorithm: str, name: str) -> None:
        """``openssl req -x509`` certificates: algorithm named, self-signed, key matches."""
        cert, key = openssl.self_signed(f"ss-{algorithm}", "/CN=host", algorithm)
        parsed = parse_bundle(cert.read_bytes())
        assert parsed.leaf is not None and parsed.leaf.key_algorithm == name
        assert parsed.self_signed and parsed.leaf.self_issued
        assert parse_key(key.read_bytes()) == (parsed.leaf.spki_sha256, None)

    def test_ca_signed_der_from_openssl_chains_to_the_anchor(self, openssl: OpenSSL) -> None:
        """``openssl x509 -req`` + ``-outform DER``: trusted by its CA, exact serial and digest."""
        ca_cert, ca_key = openssl.self_signed("ca", "/CN=openssl-ca", "rsa",
                                              ["basicConstraints=critical,CA:TRUE"])
        leaf, _ = openssl.signed("leaf", "/O=system:nodes/CN=system:node:node1", ca_cert, ca_key,
                                 extfile_text="subjectAltName=DNS:node1,IP:10.1.2.3\n"
                                              "extendedKeyUsage=serverAuth\n", serial=0xABCDEF)
        anchor = parse_bundle(ca_cert.read_bytes()).x509_certificates
        parsed = parse_bundle(openssl.to_der(leaf).read_bytes(), anchor)
        assert parsed.format == "der" and parsed.leaf is not None
        assert parsed.leaf.serial == "abcdef"
        assert parsed.leaf.fingerprint_sha256 == openssl.fingerprint(leaf)
        assert parsed.leaf.subject_orgs == ("system:nodes",)
        assert parsed.leaf.ip_addresses == ("10.1.2.3",)
        assert parsed.chain_verified_to_anchor is True and not parsed.self_signed


def _flip_base64(pem: bytes) -> bytes:
    lines = pem.splitlines(keepends=True)
    lines[3] = b"!!!!" + lines[3][4:]
    return b"".join(lines)


def _bad_der_in_frame() -> bytes:
    return pem_block("CERTIFICATE", b"\x30\x03\x02\x01\x01")


@pytest.mark.parametrize(("data", "problem", "words"), [
    pytest.param(b"", ReadProblem.EMPTY, "empty", id="empty"),
    pytest.param(b"  \n\t\n", ReadProblem.EMPTY, "blanks", id="only-whitespace"),
    pytest.param(CLIENT.cert_pem()[:300], ReadProblem.TRUNCATED, "no END", id="truncated"),
    pytest.param(b"hello, I am not a certificate\n", ReadProblem.GARBAGE, "neither", id="garbage"),
    pytest.param(CLIENT.key_pem(), ReadProblem.NO_CERTIFICATE,
                 "holds a private key but no certificate", id="key-only"),
    pytest.param(CLIENT.key_pem(pkcs8=True), ReadProblem.NO_CERTIFICATE,
                 "holds a private key but no certificate", id="pkcs8-key-only"),
    pytest.param(pem_block("CERTIFICATE REQUEST", b"\x30\x00"), ReadProblem.NO_CERTIFICATE,
                 "CERTIFICATE REQUEST", id="csr-only"),
    pytest.param(CLIENT.cert_pem().replace(b"END CERTIFICATE", b"END PRIVATE KEY"),
                 ReadProblem.TRUNCATED, "(certificate) has no END line", id="mismatched-end"),
    pytest.param(_flip_base64(CLIENT.cert_pem()), ReadProblem.BAD_CERTIFICATE, "base64",
                 id="base64-garbage-in-frame"),
    pytest.param(_bad_der_in_frame(), ReadProblem.BAD_CERTIFICATE, "not a valid X.509",
                 id="bad-der-in-frame"),
    pytest.param(CA.cert_pem() + _bad_der_in_frame(), ReadProblem.BAD_CERTIFICATE, "#2",
                 id="second-block-bad"),
])
def test_bad_input_gives_a_specific_read_error(data: bytes, problem: ReadProblem,
                                               words: str) -> None:
    """Each kind of bad input maps to its own ReadProblem with a message saying why."""
    parsed = parse_bundle(data)
    assert parsed.error is not None
    assert parsed.error.problem is problem
    assert words in parsed.error.detail
    assert parsed.certificates == () and parsed.leaf is None


class TestKeys:
    def test_mismatched_key_has_a_different_hash(self) -> None:
        """A bundle whose key belongs to another certificate exposes two different hashes."""
        parsed = parse_bundle(CLIENT.cert_pem() + SERVER.key_pem())
        assert parsed.leaf is not None and parsed.key_spki_sha256 == spki(SERVER)
        assert parsed.key_spki_sha256 != parsed.leaf.spki_sha256

    def test_corrupt_key_is_a_key_error_without_key_bytes(self) -> None:
        """A broken key block is a key error whose message holds none of the key's text."""
        lines = CLIENT.key_pem().splitlines(keepends=True)
        broken = lines[0] + lines[1][:20] + b"\n" + lines[-1]
        parsed = parse_bundle(CLIENT.cert_pem() + broken)
        assert parsed.error is None and parsed.key_present
        assert parsed.key_error is not None and parsed.key_spki_sha256 is None
        assert lines[1][:20].decode() not in parsed.key_error.detail

    def test_encrypted_key_cannot_be_checked(self) -> None:
        """An encrypted PKCS#8 key is reported as such, not as a mismatch."""
        enc = CLIENT.key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"pw"))
        spki_hash, error = parse_key(enc)
        assert spki_hash is None and error is not None and "encrypted" in error.detail

    @pytest.mark.parametrize(("data", "problem"), [
        pytest.param(b"", ReadProblem.EMPTY, id="empty"),
        pytest.param(CLIENT.cert_pem(), ReadProblem.NO_CERTIFICATE, id="certificate-not-key"),
        pytest.param(b"secret-looking garbage", ReadProblem.GARBAGE, id="garbage"),
    ])
    def test_separate_key_file_errors(self, data: bytes, problem: ReadProblem) -> None:
        """parse_key reports empty, keyless and garbage key files specifically."""
        spki_hash, error = parse_key(data)
        assert spki_hash is None and error is not None and error.problem is problem
        assert "secret-looking" not in error.detail

    def test_separate_der_key_file_is_read(self) -> None:
        """A DER key file (PKCS#8) gives the public key hash."""
        der = SERVER.key.private_bytes(serialization.Encoding.DER,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
        assert parse_key(der) == (spki(SERVER), None)


class TestChain:
    def test_kubelet_fallback_is_self_signed_even_though_issuer_differs(self, tmp_path: Path
                                                                        ) -> None:
        """kubelet.crt (leaf issued by a throw-away CA in the same file) is self-signed."""
        crt, _ = pkigen.self_signed_fallback(tmp_path, "node1", NOW)
        parsed = parse_bundle(crt.read_bytes(), [CA.cert])
        assert parsed.leaf is not None and parsed.leaf.issuer != parsed.leaf.subject
        assert parsed.self_signed and parsed.chain_verified_to_anchor is False

    def test_fallback_without_anchors_is_still_self_signed(self, tmp_path: Path) -> None:
        """Without anchors trust is unknown (None) but the fallback is still detected."""
        crt, _ = pkigen.self_signed_fallback(tmp_path, "node1", NOW)
        parsed = parse_bundle(crt.read_bytes())
        assert parsed.self_signed and parsed.chain_verified_to_anchor is None

    def test_cluster_signed_certificate_is_trusted_not_self_signed(self) -> None:
        """A leaf signed by the cluster CA chains to that anchor and is not self-signed."""
        parsed = parse_bundle(SERVER.cert_pem() + SERVER.key_pem(), [CA.cert])
        assert parsed.chain_verified_to_anchor is True and not parsed.self_signed

    def test_cluster_signed_certificate_without_anchors(self) -> None:
        """Without anchors the same leaf has unknown trust and is not self-signed."""
        parsed = parse_bundle(SERVER.cert_pem())
        assert parsed.chain_verified_to_anchor is None and not parsed.self_signed

    def test_other_cluster_certificate_is_untrusted(self) -> None:
        """A leaf from another cluster's CA does not chain to our anchor."""
        foreign = pkigen.kubelet_client(OTHER_CA, "node1", NOW)
        parsed = parse_bundle(foreign.cert_pem(), [CA.cert])
        assert parsed.chain_verified_to_anchor is False and not parsed.self_signed

    def test_intermediate_in_file_leads_to_the_anchor(self) -> None:
        """leaf + intermediate in the file, root as anchor: trusted through the file's chain."""
        inter = pkigen.issue("intermediate", issuer=CA, usage="ca", key_type="ec",
                             not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=9))
        leaf = pkigen.kubelet_client(inter, "node1", NOW - timedelta(days=1))
        parsed = parse_bundle(leaf.cert_pem() + inter.cert_pem(), [CA.cert])
        assert parsed.chain_verified_to_anchor is True and not parsed.self_signed

    def test_same_name_different_key_is_not_trusted(self) -> None:
        """An impostor CA with the anchor's name does not make its leaves trusted."""
        impostor = pkigen.cluster_ca(NOW)  # also CN=kubernetes, another key
        leaf = pkigen.kubelet_client(impostor, "node1", NOW)
        assert parse_bundle(leaf.cert_pem(), [CA.cert]).chain_verified_to_anchor is False

    def test_anchor_itself_is_trusted(self) -> None:
        """A file holding the anchor certificate itself is trusted, not self-signed."""
        parsed = parse_bundle(CA.cert_pem(), [CA.cert])
        assert parsed.chain_verified_to_anchor is True and not parsed.self_signed
