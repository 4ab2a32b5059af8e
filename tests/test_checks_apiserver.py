"""Specification of agent.checks.apiserver: what the API server's answers mean for the node."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from agent import codes
from agent.checks import apiserver
from agent.model import (
    ApiCredential,
    ApiProblem,
    ApiState,
    CredentialKind,
    Finding,
    Policy,
    Severity,
)
from tests.snapshots import NOW, SERVER_URL, api, api_error, codes_of, only, snapshot, with_api


def check(state: ApiState, policy: Policy | None = None) -> list[Finding]:
    return list(apiserver.check(with_api(state), NOW, policy or Policy()))


class TestErrors:
    def test_offline_gives_nothing(self) -> None:
        assert list(apiserver.check(snapshot(), NOW, Policy())) == []

    def test_healthy_api_gives_nothing(self) -> None:
        assert check(api()) == []

    @pytest.mark.parametrize(("problem", "failures", "expected"), [
        pytest.param(ApiProblem.AUTH_FAILED, 1, (codes.APISERVER_AUTH_FAILED, Severity.CRITICAL),
                     id="401 at once"),
        pytest.param(ApiProblem.FORBIDDEN, 1, (codes.APISERVER_FORBIDDEN, Severity.WARNING),
                     id="403 at once"),
        pytest.param(ApiProblem.NOT_CONFIGURED, 1,
                     (codes.APISERVER_NOT_CONFIGURED, Severity.WARNING), id="no kubeconfig"),
        pytest.param(ApiProblem.UNREACHABLE, 2, None, id="unreachable twice: a blip"),
        pytest.param(ApiProblem.UNREACHABLE, 3,
                     (codes.APISERVER_UNREACHABLE, Severity.WARNING), id="unreachable 3 times"),
        pytest.param(ApiProblem.RATE_LIMITED, 3,
                     (codes.APISERVER_UNREACHABLE, Severity.WARNING), id="429 3 times"),
        pytest.param(ApiProblem.BAD_RESPONSE, 4,
                     (codes.APISERVER_UNREACHABLE, Severity.WARNING), id="garbage 4 times"),
        pytest.param(ApiProblem.BAD_RESPONSE, 1, None, id="garbage once"),
    ])
    def test_every_problem_maps_to_one_finding(self, problem: ApiProblem, failures: int,
                                               expected: tuple[str, Severity] | None) -> None:
        found = check(api(error=api_error(problem, failures)))
        assert [(f.code, f.severity) for f in found] == ([expected] if expected else [])

    def test_unreachable_threshold_is_a_policy(self) -> None:
        state = api(error=api_error(ApiProblem.UNREACHABLE, 1))
        assert codes_of(check(state, Policy(api_failures_before_unreachable=1))) == [
            codes.APISERVER_UNREACHABLE]

    @pytest.mark.parametrize(("last_success", "words"), [
        pytest.param(NOW - timedelta(hours=2), "2h 0m ago", id="synced two hours ago"),
        pytest.param(None, "never synced", id="never synced"),
    ])
    def test_unreachable_says_how_stale_the_csr_data_is(self, last_success: object,
                                                        words: str) -> None:
        state = api(error=api_error(ApiProblem.UNREACHABLE, 3), last_success=last_success)
        f = only(check(state), codes.APISERVER_UNREACHABLE)
        assert "CSR data is stale" in f.message
        assert words in f.message
        assert f.path == SERVER_URL

    def test_forbidden_names_the_missing_rbac(self) -> None:
        f = only(check(api(error=api_error(ApiProblem.FORBIDDEN, status_code=403))),
                 codes.APISERVER_FORBIDDEN)
        assert "get, list and watch on certificatesigningrequests" in f.message
        assert "HTTP 403" in f.message

    def test_auth_failed_points_at_the_client_certificate(self) -> None:
        f = only(check(api(error=api_error(ApiProblem.AUTH_FAILED, status_code=401))),
                 codes.APISERVER_AUTH_FAILED)
        assert "kubelet-client-current.pem" in f.message
        assert "signed by the cluster CA" in f.message

    @pytest.mark.parametrize(("credential", "names", "hint"), [
        pytest.param(ApiCredential(CredentialKind.CERT_FILE, "/etc/kubernetes/kubelet.crt"),
                     "the client certificate /etc/kubernetes/kubelet.crt",
                     "-in /etc/kubernetes/kubelet.crt`", id="client-certificate file"),
        pytest.param(ApiCredential(CredentialKind.CERT_DATA, "/etc/kubernetes/kubelet.conf"),
                     "the client certificate embedded in /etc/kubernetes/kubelet.conf "
                     "(client-certificate-data)",
                     "rotation never rewrites an embedded certificate", id="embedded cert"),
        pytest.param(ApiCredential(CredentialKind.TOKEN_FILE, "/etc/kca/token"),
                     "the token in /etc/kca/token", "invalid, expired or deleted",
                     id="token file"),
    ])
    def test_auth_failed_names_the_credential_that_was_rejected(
            self, credential: ApiCredential, names: str, hint: str) -> None:
        """Not always kubelet-client-current.pem: what the kubeconfig really points at."""
        state = api(error=api_error(ApiProblem.AUTH_FAILED, status_code=401),
                    credential=credential)
        f = only(check(state), codes.APISERVER_AUTH_FAILED)
        assert f"rejects {names} (HTTP 401)" in f.message
        assert hint in f.message

    def test_not_configured_offers_kubeconfig_or_offline(self) -> None:
        f = only(check(api(error=api_error(ApiProblem.NOT_CONFIGURED))),
                 codes.APISERVER_NOT_CONFIGURED)
        assert "--kubeconfig" in f.message
        assert "--offline" in f.message


class TestIdentity:
    @pytest.mark.parametrize(("user", "groups", "mismatch"), [
        pytest.param("system:node:node1", ("system:nodes",), False, id="this node"),
        pytest.param("system:node:node2", ("system:nodes",), True, id="another node"),
        pytest.param("system:node:node1", ("system:authenticated",), True,
                     id="not in system:nodes"),
        pytest.param("system:bootstrap:abcdef", ("system:bootstrappers",), True,
                     id="still the bootstrap token"),
        pytest.param("system:serviceaccount:kube-system:kubelet-cert-agent", (), False,
                     id="dedicated service account from --token-file"),
        pytest.param(None, (), False, id="identity not known"),
    ])
    def test_identity_must_be_this_node(self, user: str | None, groups: tuple[str, ...],
                                        mismatch: bool) -> None:
        found = check(api(identity_username=user, identity_groups=groups))
        assert codes_of(found) == ([codes.APISERVER_IDENTITY_MISMATCH] if mismatch else [])

    def test_message_shows_who_the_api_server_sees(self) -> None:
        f = only(check(api(identity_username="system:node:node2",
                           identity_groups=("system:nodes",))),
                 codes.APISERVER_IDENTITY_MISMATCH)
        assert "as system:node:node2 (system:nodes)" in f.message
        assert "not system:node:node1" in f.message


class TestPaths:
    """The `path` of API findings, as the README's metrics table documents it."""

    @pytest.mark.parametrize("problem", [ApiProblem.AUTH_FAILED, ApiProblem.FORBIDDEN,
                                         ApiProblem.UNREACHABLE, ApiProblem.NOT_CONFIGURED])
    def test_api_findings_carry_the_server_url(self, problem: ApiProblem) -> None:
        (f,) = check(api(error=api_error(problem, 5)))
        assert f.code.startswith("APISERVER_") and f.path == SERVER_URL

    def test_the_readme_says_so(self) -> None:
        readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
        row = next(line for line in readme.splitlines()
                   if line.startswith("| `kubelet_cert_agent_finding`"))
        assert "the API server URL for `APISERVER_*` findings" in row
        assert '`path` is `""` for API findings' not in readme
