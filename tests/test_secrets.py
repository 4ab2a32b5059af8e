"""No private-key material ever leaves the agent through ``check``'s outputs.

The node's files hold keys of every kind the agent may read (EC in the kubelet's
generations, RSA in kubelet.key, PKCS#8, a key that does not match its certificate,
a key made by the openssl CLI, a lone key, a truncated key). ``check`` runs in both
formats, in-process (stdout, stderr, structlog events) and as a real process, and
every output is scanned with :mod:`tests.secrets_scan`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent import pkigen
from agent.clock import utcnow
from tests.kubeapi import KubeApi, kubeconfig_doc
from tests.nodetree import NODE, NOW, Tree, healthy_node, run_in_process, run_subprocess
from tests.secrets_scan import (
    PrivateKey,
    assert_no_key_material,
    find_key_material,
    key_markers,
)


def _openssl_pair(directory: Path) -> Path:
    """A self-signed certificate and EC key written by the real openssl CLI, one file."""
    if shutil.which("openssl") is None:
        if os.environ.get("CI"):
            pytest.fail("openssl is required in CI")
        pytest.skip("openssl not installed")
    key, crt = directory / "openssl.key", directory / "openssl.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj", "/CN=openssl",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    combined = directory / "openssl-combined.pem"
    combined.write_bytes(crt.read_bytes() + key.read_bytes())
    key.unlink()
    crt.unlink()
    return combined


def _key_laden_node(root: Path) -> Tree:
    """A node whose files contain every kind of private key, some deliberately wrong."""
    tree = healthy_node(root, fallback=True)
    watched = root / "watched"
    watched.mkdir()
    ca = tree.pki.ca
    rsa_leaf = pkigen.issue("rsa-pkcs8", issuer=ca, usage="server", key_type="rsa",
                            not_before=NOW, not_after=NOW + timedelta(days=90))
    (watched / "rsa-pkcs8.pem").write_bytes(rsa_leaf.cert_pem() + rsa_leaf.key_pem(pkcs8=True))
    other = pkigen.new_key("ec")
    mismatched = pkigen.issue("mismatch", issuer=ca, not_before=NOW,
                              not_after=NOW + timedelta(days=90))
    (watched / "mismatch.pem").write_bytes(
        mismatched.cert_pem() + pkigen.Issued(mismatched.cert, other).key_pem(pkcs8=True))
    (watched / "only-key.pem").write_bytes(pkigen.Issued(rsa_leaf.cert,
                                                          pkigen.new_key("ec")).key_pem())
    truncated = pkigen.Issued(rsa_leaf.cert, pkigen.new_key("rsa")).key_pem()
    (watched / "truncated-key.pem").write_bytes(truncated[: len(truncated) // 2])
    _openssl_pair(watched)
    return tree


def _all_keys(root: Path) -> list[PrivateKey]:
    """Every private key in every file under ``root`` (complete PEM blocks only)."""
    keys: list[PrivateKey] = []
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        for block in data.split(b"-----BEGIN ")[1:]:
            pem = b"-----BEGIN " + block
            if b"PRIVATE KEY-----" not in pem.split(b"\n", 1)[0]:
                continue
            try:
                key = serialization.load_pem_private_key(pem, password=None)
            except ValueError:
                continue  # the truncated key: its body lines are checked below
            assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
            keys.append(key)
    return keys


def _truncated_lines(root: Path) -> list[str]:
    text = (root / "watched" / "truncated-key.pem").read_text()
    return [line for line in text.splitlines()[1:-1] if len(line) >= 20]


class TestSecretsScan:
    def test_scanner_finds_a_leaked_pem_key(self) -> None:
        """The helper catches a whole PEM key, one body line, and the scalar in hex."""
        key = pkigen.new_key("ec")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        markers = key_markers(key)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        assert find_key_material(pem, markers)
        assert find_key_material(f"x {pem.splitlines()[2]} y", markers)
        scalar = key.private_numbers().private_value
        assert find_key_material(f"d={scalar:x}", markers)
        assert find_key_material(f"d={scalar}", markers)
        assert not find_key_material("a harmless line of output", markers)


def _in_process_outputs(tree: Tree, capsys: pytest.CaptureFixture[str]) -> str:
    """stdout, stderr and structlog events of check in both formats, joined."""
    argv = tree.args("--watch", str(tree.root / "watched"))
    outputs: list[str] = []
    for fmt in ("table", "json"):
        with structlog.testing.capture_logs() as logs:
            run = run_in_process([*argv, "--format", fmt], capsys)
        assert run.code in (1, 2)
        outputs += [run.out, run.err, repr(logs)]
    return "\n".join(outputs)


class TestCheckNeverShowsKeys:
    def test_no_key_material_in_any_in_process_output(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Table and JSON, stdout, stderr and log events carry no key bytes or scalars."""
        tree = _key_laden_node(tmp_path)
        keys = _all_keys(tmp_path)
        assert len(keys) >= 8  # 3 client generations, server, kubelet.key, 3 watched + openssl
        text = _in_process_outputs(tree, capsys)
        assert "mismatch.pem" in text  # the files were really read and reported
        assert_no_key_material(text, key_markers(*keys, pem_label=False))
        assert not any(line in text for line in _truncated_lines(tmp_path))

    def test_no_private_key_label_in_any_output(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Not even the words 'PRIVATE KEY' appear: nothing of a key block is echoed."""
        tree = _key_laden_node(tmp_path)
        assert "PRIVATE KEY" not in _in_process_outputs(tree, capsys)

    def test_no_key_material_from_the_real_process(self, tmp_path: Path) -> None:
        """The installed command's stdout and stderr carry no key material either."""
        tree = _key_laden_node(tmp_path)
        run = run_subprocess(tree.args("--watch", str(tmp_path / "watched"), "--format",
                                       "json"))
        assert run.code in (1, 2), run.err
        markers = key_markers(*_all_keys(tmp_path), pem_label=False)
        assert_no_key_material(run.out + run.err, markers)
        assert NODE in run.out


BOOTSTRAP_TOKEN_ID, BOOTSTRAP_SECRET = "abcdef", "0123456789abcdef"  # test values only


class TestBootstrapTokenNeverShows:
    """The bootstrap kubeconfig's token, valid or rejected, in no output of ``check`` (table,
    JSON, stderr, log events; in-process and the real process) nor of the daemon's
    published state (JSON status, metrics)."""

    @pytest.fixture
    def kube_api(self, tmp_path: Path) -> Iterator[KubeApi]:
        api = KubeApi(root=tmp_path / "api", now=utcnow(), require_client_cert=False,
                      tokens=frozenset({f"{BOOTSTRAP_TOKEN_ID}.{BOOTSTRAP_SECRET}"}))
        yield api
        api.stop()

    def _argv(self, tmp_path: Path, api: KubeApi, fmt: str, token: str) -> list[str]:
        tree = healthy_node(tmp_path / "node", at=utcnow())
        bootstrap = tmp_path / "bootstrap-kubelet.conf"
        bootstrap.write_text(json.dumps(kubeconfig_doc(
            {"server": api.url, "certificate-authority": str(api.ca_file)}, {"token": token})))
        argv = tree.args("--no-probe", "--format", fmt, "--kubeconfig", str(api.kubeconfig()),
                         "--bootstrap-kubeconfig", str(bootstrap), "--at", "+0s")
        argv.remove("--offline")
        return argv

    @pytest.mark.parametrize("known", [True, False], ids=["valid", "rejected"])
    def test_not_in_any_check_output(self, tmp_path: Path, kube_api: KubeApi,
                                     capsys: pytest.CaptureFixture[str], known: bool) -> None:
        secret = BOOTSTRAP_SECRET if known else "fedcba9876543210"
        token = f"{BOOTSTRAP_TOKEN_ID}.{secret}"
        outputs = []
        for fmt in ("table", "json"):
            with structlog.testing.capture_logs() as logs:
                run = run_in_process(self._argv(tmp_path / fmt, kube_api, fmt, token), capsys)
            outputs += [run.out, run.err, repr(logs)]
        real = run_subprocess(self._argv(tmp_path / "real", kube_api, "json", token))
        outputs += [real.out, real.err]
        text = "\n".join(outputs)
        assert ("bootstrap_credentials_invalid" in text.lower()) is not known  # it was used
        assert secret not in text and token not in text
        assert [s.bearer for s in kube_api.requests("bootstrap-review")] == [True] * 3
