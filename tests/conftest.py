"""Shared fixtures: a fixed instant, a kubelet-style node PKI, the real openssl CLI.

Other test modules may import the plain helpers: ``from tests.conftest import NOW,
require_tool``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import pkigen

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def require_tool(name: str) -> str:
    """The path of a Debian tool: skip the test locally if it is missing, fail in CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must install it: see .ci/run)")
        pytest.skip(message)
    return path


# RSA-2048 keys take 50-300 ms each to generate and every CA and kubelet.crt needs one:
# tests get them from a pool made once per session. Consecutive keys always differ (a
# certificate and the "wrong" key a test makes next are never the same key); no test
# needs an RSA key no other test has seen. EC keys (the kubelet's) stay fresh each time.
_RSA_POOL_SIZE = 24


@pytest.fixture(autouse=True, scope="session")
def _pooled_rsa_keys() -> Iterator[None]:
    fresh = pkigen.new_key
    pool: list[pkigen.PrivateKey] = []  # filled on demand, then reused in turn
    turn = itertools.count()

    def new_key(key_type: pkigen.KeyType = "ec") -> pkigen.PrivateKey:
        if key_type != "rsa":
            return fresh(key_type)
        if len(pool) < _RSA_POOL_SIZE:
            pool.append(fresh("rsa"))
            return pool[-1]
        return pool[next(turn) % _RSA_POOL_SIZE]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pkigen, "new_key", new_key)
        yield


@pytest.fixture(name="require_tool")
def _require_tool_fixture() -> object:
    """The :func:`require_tool` helper, for tests that prefer a fixture."""
    return require_tool


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def node_pki(tmp_path: Path) -> pkigen.NodePki:
    """A healthy node: ``tmp_path/pki`` (client with history, server, kubelet.crt) and ca.crt."""
    return pkigen.build_node(tmp_path, "node1", NOW)


@dataclass(frozen=True)
class OpenSSL:
    """Certificates made by the real ``openssl`` CLI, in ``directory``."""

    binary: str
    directory: Path

    def run(self, *args: str) -> None:
        subprocess.run([self.binary, *args], check=True, capture_output=True, timeout=60)

    def genkey(self, name: str, algorithm: str = "ec") -> Path:
        """``openssl genpkey``: ec (P-256), rsa (2048) or ed25519; PKCS#8 PEM."""
        out = self.directory / f"{name}.key"
        opts = {"ec": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
                "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
                "ed25519": ["-algorithm", "ED25519"]}[algorithm]
        self.run("genpkey", *opts, "-out", str(out))
        return out

    def self_signed(self, name: str, subject: str, algorithm: str = "ec",
                    extensions: Sequence[str] = ()) -> tuple[Path, Path]:
        """``openssl req -x509 -newkey``: a self-signed certificate and its key."""
        key = self.genkey(name, algorithm)
        cert = self.directory / f"{name}.crt"
        ext = [a for e in extensions for a in ("-addext", e)]
        self.run("req", "-x509", "-key", str(key), "-subj", subject, "-days", "30",
                 "-out", str(cert), *ext)
        return cert, key

    def signed(self, name: str, subject: str, ca_cert: Path, ca_key: Path, *,
               algorithm: str = "ec", extfile_text: str = "", serial: int = 4096) -> tuple[
                   Path, Path]:
        """``openssl req -new`` + ``openssl x509 -req``: a certificate signed by a CA."""
        key = self.genkey(name, algorithm)
        csr = self.directory / f"{name}.csr"
        cert = self.directory / f"{name}.crt"
        self.run("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        args = ["x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
                "-set_serial", str(serial), "-days", "30", "-out", str(cert)]
        if extfile_text:
            extfile = self.directory / f"{name}.ext"
            extfile.write_text(extfile_text)
            args += ["-extfile", str(extfile)]
        self.run(*args)
        return cert, key

    def to_der(self, cert: Path) -> Path:
        """``openssl x509 -outform DER``."""
        out = cert.with_suffix(".der")
        self.run("x509", "-in", str(cert), "-outform", "DER", "-out", str(out))
        return out

    def fingerprint(self, cert: Path) -> str:
        """``openssl x509 -fingerprint -sha256`` as lowercase hex without colons."""
        done = subprocess.run([self.binary, "x509", "-in", str(cert), "-noout", "-fingerprint",
                               "-sha256"], check=True, capture_output=True, text=True, timeout=60)
        return done.stdout.strip().split("=", 1)[1].replace(":", "").lower()


@pytest.fixture
def openssl(tmp_path: Path) -> OpenSSL:
    """The real ``openssl`` CLI writing under ``tmp_path/openssl``."""
    binary = require_tool("openssl")
    directory = tmp_path / "openssl"
    directory.mkdir()
    return OpenSSL(binary, directory)


@pytest.fixture(scope="session")
def kubeadm_template(tmp_path_factory: pytest.TempPathFactory) -> object:
    """One healthy kubeadm control plane per session (RSA keys take time to make)."""
    from tests import kubeadmtree

    return kubeadmtree.template(tmp_path_factory.mktemp("kubeadm"))


@pytest.fixture
def plane(kubeadm_template: object, tmp_path: Path) -> object:
    """This test's own copy of the kubeadm control plane (tests.kubeadmtree.Plane)."""
    from tests import kubeadmtree

    return kubeadmtree.copy_of(kubeadm_template, tmp_path)  # type: ignore[arg-type]
