"""Reading credentials from a kubeconfig and flags (agent/sources/kubeconfig.py)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import pkigen
from agent.config import ApiSettings
from agent.model import ApiError, ApiProblem
from agent.sources.apiserver import fetch_once
from agent.sources.kubeconfig import Credentials, load_credentials
from tests.conftest import require_tool
from tests.kubeapi import KubeApi, kubeconfig_doc

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    api = KubeApi(tmp_path_factory.mktemp("api"), NOW)
    yield api
    api.stop()


def creds(api: ApiSettings, scratch_dir: Path | None = None) -> Credentials:
    result = load_credentials(api, scratch_dir=scratch_dir)
    assert isinstance(result, Credentials), result
    return result


def error(api: ApiSettings) -> ApiError:
    result = load_credentials(api, candidates=())
    assert isinstance(result, ApiError)
    assert result.problem is ApiProblem.NOT_CONFIGURED
    return result


def write(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


class TestLoadCredentials:
    def test_file_references_reach_the_server(self, kube_api: KubeApi) -> None:
        """CA file and client cert+key in one file (kubelet-client-current.pem) work."""
        state = fetch_once(kube_api.settings(), "node1", lambda: NOW)
        assert state.error is None and state.identity_username == "system:node:node1"
        assert kube_api.seen[-1].client_cn == "system:node:node1"

    def test_embedded_data_reaches_the_server_and_leaves_no_file(
            self, kube_api: KubeApi, tmp_path: Path) -> None:
        """*-data fields work; the private scratch copy of the key is removed at once."""
        scratch = tmp_path / "scratch"
        settings = kube_api.settings(kubeconfig=kube_api.kubeconfig("embedded.conf", embed=True))
        c = creds(settings, scratch_dir=scratch)
        assert c.auth.startswith("client certificate embedded")
        assert list(scratch.iterdir()) == []
        state = fetch_once(settings, "node1", lambda: NOW,
                           load=lambda a: load_credentials(a, scratch_dir=scratch))
        assert state.error is None and state.csrs

    def test_relative_paths_are_relative_to_the_kubeconfig(self, tmp_path: Path) -> None:
        """certificate-authority: ca.crt next to the kubeconfig is found from any cwd."""
        node = pkigen.build_node(tmp_path, "node1", NOW)
        doc = kubeconfig_doc({"server": "https://127.0.0.1:6443",
                              "certificate-authority": "../ca.crt"},
                             {"client-certificate": "kubelet-client-current.pem",
                              "client-key": "kubelet-client-current.pem"})
        path = write(node.cert_dir / "kubelet.conf", doc)
        c = creds(ApiSettings(kubeconfig=path))
        assert c.auth == f"client certificate {node.cert_dir / 'kubelet-client-current.pem'}"
        assert c.server == "https://127.0.0.1:6443"

    def test_insecure_skip_tls_verify_is_refused(self, kube_api: KubeApi) -> None:
        """insecure-skip-tls-verify: true needs --insecure."""
        path = kube_api.kubeconfig("insecure.conf",
                                   extra_cluster={"insecure-skip-tls-verify": True})
        assert "insecure-skip-tls-verify" in error(ApiSettings(kubeconfig=path)).detail

    @pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
    def test_insecure_is_allowed_with_the_flag(self, kube_api: KubeApi) -> None:
        """With --insecure the server is reached without verifying it."""
        path = kube_api.kubeconfig("insecure.conf", extra_cluster={
            "insecure-skip-tls-verify": True, "certificate-authority": "/nonexistent"})
        state = fetch_once(kube_api.settings(kubeconfig=path, insecure=True), "node1",
                           lambda: NOW)
        assert state.error is None

    def test_flags_override_the_kubeconfig(self, kube_api: KubeApi, tmp_path: Path) -> None:
        """--server, --api-ca-file and --token-file win over the kubeconfig."""
        token = write(tmp_path / "token", "s3cr3t-token\n")
        c = creds(kube_api.settings(server="https://10.0.0.1:6443/", token_file=token,
                                    api_ca_file=kube_api.ca_file))
        assert c.server == "https://10.0.0.1:6443" and c.token == "s3cr3t-token"
        assert "s3cr3t" not in repr(c)

    @pytest.mark.parametrize(("content", "expected"), [
        ("{{{ not yaml", "not valid YAML"),
        ("- a\n- b\n", "not a YAML mapping"),
        (json.dumps({"apiVersion": "v1", "clusters": []}), "no current-context"),
        (json.dumps({"current-context": "x", "contexts": []}), "context 'x' not found"),
    ], ids=["garbage", "a-list", "no-current-context", "unknown-context"])
    def test_broken_kubeconfigs_are_explained(self, tmp_path: Path, content: str,
                                              expected: str) -> None:
        """A kubeconfig that cannot be used gives NOT_CONFIGURED naming the problem."""
        path = write(tmp_path / "kubelet.conf", content)
        detail = error(ApiSettings(kubeconfig=path)).detail
        assert expected in detail and str(path) in detail

    def test_bad_base64_is_explained_without_contents(self, tmp_path: Path) -> None:
        """Embedded data that is not base64 names the field, not the value."""
        doc = kubeconfig_doc({"server": "https://x:6443"},
                             {"client-key-data": "PRIVATE-KEY-NOT-BASE64!!"})
        detail = error(ApiSettings(kubeconfig=write(tmp_path / "k.conf", doc))).detail
        assert "client-key-data is not valid base64" in detail
        assert "PRIVATE-KEY" not in detail

    def test_a_key_that_does_not_load_is_reported_without_its_bytes(
            self, kube_api: KubeApi) -> None:
        """A client key not matching the certificate: clear error, no key material."""
        other = pkigen.new_key()
        key_pem = pkigen.Issued(kube_api.client.cert, other).key_pem()
        path = kube_api.kubeconfig("mismatch.conf", embed=True, user={
            "client-certificate-data": base64.b64encode(kube_api.client.cert_pem()).decode(),
            "client-key-data": base64.b64encode(key_pem).decode()})
        detail = error(ApiSettings(kubeconfig=path)).detail
        assert "could not be loaded" in detail
        assert "PRIVATE KEY" not in detail and key_pem.decode()[40:80] not in detail

    def test_an_encrypted_key_is_refused_without_asking_for_a_pass_phrase(
            self, kube_api: KubeApi, tmp_path: Path) -> None:
        """A pass-phrase protected client key (openssl CLI): NOT_CONFIGURED, no prompt,
        nothing raised."""
        key, cert = tmp_path / "enc.key", tmp_path / "enc.crt"
        subprocess.run([require_tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-keyout", str(key), "-out", str(cert),
                        "-subj", "/CN=system:node:node1", "-days", "1",
                        "-passout", "pass:secret"], check=True, capture_output=True,
                       stdin=subprocess.DEVNULL)
        path = kube_api.kubeconfig("encrypted.conf", user={"client-certificate": str(cert),
                                                           "client-key": str(key)})
        assert "could not be loaded" in error(ApiSettings(kubeconfig=path)).detail

    def test_missing_kubeconfig_is_not_configured(self, tmp_path: Path) -> None:
        """--kubeconfig naming a missing file: NOT_CONFIGURED with the path."""
        assert "not found" in error(ApiSettings(kubeconfig=tmp_path / "nope")).detail

    def test_nothing_found_is_not_configured(self) -> None:
        """No kubeconfig anywhere and no --server: NOT_CONFIGURED saying what to pass."""
        assert "--kubeconfig" in error(ApiSettings()).detail

    def test_missing_client_certificate_file(self, kube_api: KubeApi, tmp_path: Path) -> None:
        """A client-certificate path that does not exist is named."""
        missing = tmp_path / "gone.pem"
        path = kube_api.kubeconfig("missing.conf", user={"client-certificate": str(missing),
                                                         "client-key": str(missing)})
        assert f"client-certificate {missing} not found" in error(
            ApiSettings(kubeconfig=path)).detail

    def test_server_must_be_https(self, tmp_path: Path) -> None:
        """A plain-http server is refused."""
        doc = kubeconfig_doc({"server": "http://127.0.0.1:8080"}, {"token": "t"})
        assert "not https://" in error(ApiSettings(kubeconfig=write(tmp_path / "k", doc))).detail

    def test_token_auth_sends_a_bearer_token(self, tmp_path: Path) -> None:
        """A tokenFile identity (see rbac.yaml) authenticates without a client cert."""
        api = KubeApi(tmp_path / "api", NOW, require_client_cert=False,
                      tokens=frozenset({"agent-token"}))
        try:
            token = write(tmp_path / "token", "agent-token\n")
            path = api.kubeconfig("token.conf", user={"tokenFile": str(token)})
            state = fetch_once(ApiSettings(kubeconfig=path), "node1", lambda: NOW)
            assert state.error is None
            assert all(s.bearer and s.client_cn is None for s in api.seen)
        finally:
            api.stop()


class TestSpecialFiles:
    def test_token_file_that_is_a_fifo_is_refused_without_blocking(self, tmp_path: Path) -> None:
        fifo = tmp_path / "token"
        os.mkfifo(fifo)
        result = load_credentials(ApiSettings(server="https://127.0.0.1:6443", token_file=fifo),
                                  candidates=())
        assert isinstance(result, ApiError)
        assert result.problem is ApiProblem.NOT_CONFIGURED
        assert f"token file {fifo} is a FIFO" in result.detail
