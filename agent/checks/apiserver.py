"""The API server's answer about this node: APISERVER_* findings from ``snapshot.api``.

``snapshot.api is None`` means offline (``--offline`` or not asked): no finding. A
transient failure (unreachable, rate limited, bad response) is reported only after
``policy.api_failures_before_unreachable`` consecutive failures, so one blip is quiet.
A dedicated ServiceAccount identity (``--token-file``, packaging/kubernetes/rbac.yaml)
is not a node, so APISERVER_IDENTITY_MISMATCH judges every other identity only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

from agent import codes
from agent.kubelet import current_name, duration, iso, node_user
from agent.model import (
    ApiCredential,
    ApiError,
    ApiProblem,
    ApiState,
    CredentialKind,
    Finding,
    Policy,
    Role,
    Severity,
    Snapshot,
)

TRANSIENT = frozenset({ApiProblem.UNREACHABLE, ApiProblem.RATE_LIMITED, ApiProblem.BAD_RESPONSE})
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def _age(api: ApiState, now: datetime) -> str:
    if api.last_success is None:
        return "never synced"
    return f"last synced {iso(api.last_success)}, {duration(now - api.last_success)} ago"


def _client_path(snapshot: Snapshot) -> str:
    client = snapshot.cert(Role.CLIENT)
    return client.path if client is not None else os.path.join(
        snapshot.cert_dir, current_name(Role.CLIENT))


def _rejected(snapshot: Snapshot, cred: ApiCredential | None) -> str:
    """The credential the API server refused, by where it lives."""
    if cred is None or cred.kind is CredentialKind.NONE:
        return "the node's credentials"
    return {CredentialKind.CERT_FILE: f"the client certificate {cred.where}",
            CredentialKind.CERT_DATA: f"the client certificate embedded in {cred.where} "
                                      "(client-certificate-data)",
            CredentialKind.TOKEN_FILE: f"the token in {cred.where}",
            CredentialKind.TOKEN: f"the token embedded in {cred.where}"}[cred.kind]


def _auth_remedy(snapshot: Snapshot, cred: ApiCredential | None) -> str:
    if cred is not None and cred.kind in (CredentialKind.TOKEN_FILE, CredentialKind.TOKEN):
        return ("the token is invalid, expired or deleted: issue a new one "
                "(packaging/kubernetes/rbac.yaml) and reload the agent")
    if cred is not None and cred.kind is CredentialKind.CERT_DATA:
        return ("rotation never rewrites an embedded certificate, so the kubelet drops out "
                "too once it restarts: point client-certificate and client-key at "
                f"{_client_path(snapshot)}")
    path = cred.where if cred is not None and cred.kind is CredentialKind.CERT_FILE else (
        _client_path(snapshot))
    return ("the kubelet will drop out too: check the client certificate is valid and "
            f"signed by the cluster CA (`openssl x509 -noout -dates -issuer -in {path}`)")


def _error(snapshot: Snapshot, api: ApiState, err: ApiError, now: datetime,
           policy: Policy) -> Finding | None:
    status = f" (HTTP {err.status_code})" if err.status_code is not None else ""
    if err.problem is ApiProblem.AUTH_FAILED:
        return Finding(
            codes.APISERVER_AUTH_FAILED, Severity.CRITICAL,
            f"{api.server} rejects {_rejected(snapshot, api.credential)}{status}: "
            f"{err.detail}; {_auth_remedy(snapshot, api.credential)}", api.server)
    if err.problem is ApiProblem.FORBIDDEN:
        return Finding(
            codes.APISERVER_FORBIDDEN, Severity.WARNING,
            f"{api.server} forbids reading CSRs{status}: {err.detail}; grant get, list and "
            "watch on certificatesigningrequests (certificates.k8s.io) to this identity "
            "(packaging/kubernetes/rbac.yaml)", api.server)
    if err.problem is ApiProblem.NOT_CONFIGURED:
        return Finding(
            codes.APISERVER_NOT_CONFIGURED, Severity.WARNING,
            f"no kubeconfig or credentials for the API server ({err.detail}): pass "
            "--kubeconfig (or --token-file and --server), or --offline to check files only",
            api.server or None)
    if err.problem in TRANSIENT and (
            err.consecutive_failures >= policy.api_failures_before_unreachable):
        return Finding(
            codes.APISERVER_UNREACHABLE, Severity.WARNING,
            f"{api.server} failed {err.consecutive_failures} times in a row "
            f"({err.problem.value}{status}: {err.detail}): the CSR data is stale "
            f"({_age(api, now)}); check the network path and the API server's health",
            api.server)
    return None


def _identity(api: ApiState, node: str) -> Finding | None:
    user = api.identity_username
    if user is None or not node or user.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    if user == node_user(node) and "system:nodes" in api.identity_groups:
        return None
    groups = ", ".join(api.identity_groups) or "no groups"
    return Finding(
        codes.APISERVER_IDENTITY_MISMATCH, Severity.WARNING,
        f"{api.server} authenticates this node as {user} ({groups}), not "
        f"{node_user(node)} in system:nodes: the kubeconfig belongs to another node or "
        "is still the bootstrap one, or --node-name is wrong", api.server)


def check(snapshot: Snapshot, now: datetime, policy: Policy) -> Iterator[Finding]:
    """API error and identity findings (nothing when offline)."""
    api = snapshot.api
    if api is None:
        return
    if api.error is not None:
        found = _error(snapshot, api, api.error, now, policy)
        if found is not None:
            yield found
    mismatch = _identity(api, snapshot.node_name)
    if mismatch is not None:
        yield mismatch
