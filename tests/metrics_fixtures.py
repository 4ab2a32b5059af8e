"""A fully populated, deterministic AgentState for the metrics, textfile and HTTP tests.

Built with the hand-built model factory (tests/snapshots.py) so that every metric value is
known exactly; the tests that need real files use tests/nodetree.real_node_state instead.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from agent import codes
from agent.checks.csr import trail
from agent.kubelet import SERVING_SIGNER
from agent.model import (
    AgentState,
    AgentStats,
    ApiError,
    ApiProblem,
    ApiState,
    CertFile,
    CertInfo,
    CsrInfo,
    CsrState,
    Evaluation,
    Finding,
    KeyMatch,
    ReadError,
    ReadProblem,
    Role,
    RoleHistory,
    Severity,
    Snapshot,
)
from tests import snapshots as hand

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
NODE = "node-1"
PKI = hand.CERT_DIR
CLIENT_PATH = f"{PKI}/kubelet-client-current.pem"
CLIENT_TARGET = f"{PKI}/kubelet-client-2025-01-01-00-05-00.pem"
SERVER_PATH = f"{PKI}/kubelet-server-current.pem"
SERVER_TARGET = f"{PKI}/kubelet-server-2025-03-01-00-00-00.pem"
SELF_SIGNED_PATH = f"{PKI}/kubelet.crt"
BROKEN_PATH = "/etc/kubernetes/pki/broken.crt"
CA_PATH = hand.CA
NODE_SUBJECT = f"CN=system:node:{NODE},O=system:nodes"


def cert_info(serial: str, not_before: datetime, days: int, *, subject: str = NODE_SUBJECT,
              issuer: str = "CN=kubernetes", is_ca: bool = False) -> CertInfo:
    return hand.cert(not_before, not_before + timedelta(days=days), subject=subject,
                     issuer=issuer, serial=serial, fingerprint_sha256="ab" * 32, is_ca=is_ca)


CLIENT_LEAF = cert_info("0a1b2c", datetime(2025, 1, 1, tzinfo=UTC), 365)
SERVER_LEAF = cert_info("ff01", datetime(2025, 3, 1, tzinfo=UTC), 365)
SELF_SIGNED_LEAF = cert_info("1234", datetime(2024, 11, 1, tzinfo=UTC), 365,
                             subject="CN=node-1@1730419200", issuer="CN=node-1-ca@1730419200")
CA_1 = cert_info("01", datetime(2022, 1, 1, tzinfo=UTC), 3650, subject="CN=kubernetes",
                 issuer="CN=kubernetes", is_ca=True)
CA_2 = cert_info("02", datetime(2024, 1, 1, tzinfo=UTC), 3650, subject="CN=kubernetes-next",
                 issuer="CN=kubernetes-next", is_ca=True)
PENDING_OLDEST = NOW - timedelta(hours=2)


def certs() -> tuple[CertFile, ...]:
    return (
        hand.current(Role.CLIENT, CLIENT_LEAF, stamp="2025-01-01-00-05-00"),
        CertFile(role=Role.SERVER, path=SERVER_PATH, target=SERVER_TARGET,
                 read_error=ReadError(ReadProblem.PERMISSION_DENIED, "permission denied"),
                 chain=(SERVER_LEAF,), leaf=SERVER_LEAF, key_match=KeyMatch.MISMATCH,
                 trusted=False, stale_since=NOW - timedelta(minutes=3)),
        CertFile(role=Role.SELF_SIGNED, path=SELF_SIGNED_PATH, target=SELF_SIGNED_PATH,
                 chain=(SELF_SIGNED_LEAF,), leaf=SELF_SIGNED_LEAF, self_signed=True,
                 key_path=f"{PKI}/kubelet.key", key_match=KeyMatch.UNREADABLE),
        CertFile(role=Role.WATCHED, path=BROKEN_PATH, target=BROKEN_PATH,
                 read_error=ReadError(ReadProblem.GARBAGE, "neither PEM nor DER")),
    )


def api_state() -> ApiState:
    csrs = (
        CsrInfo(name="csr-old", created=PENDING_OLDEST, state=CsrState.PENDING,
                username=f"system:node:{NODE}", signer="kubernetes.io/kubelet-serving"),
        CsrInfo(name="csr-new", created=NOW - timedelta(minutes=20), state=CsrState.PENDING,
                username=f"system:node:{NODE}", signer="kubernetes.io/kubelet-serving"),
        CsrInfo(name="csr-done", created=NOW - timedelta(days=90), state=CsrState.ISSUED,
                username=f"system:node:{NODE}", signer="kubernetes.io/kubelet-serving"),
    )
    return ApiState(server=hand.SERVER_URL, last_success=NOW - timedelta(seconds=30),
                    csrs=csrs, requests_by_outcome=(("success", 10), ("auth-failed", 2)))


def failing_api_state() -> ApiState:
    return ApiState(server=hand.SERVER_URL, last_success=None,
                    error=ApiError(ApiProblem.UNREACHABLE, "connection refused",
                                   consecutive_failures=4),
                    requests_by_outcome=(("unreachable", 4),))


def snapshot(api: ApiState | None = None) -> Snapshot:
    return hand.snapshot(
        *certs(), taken_at=NOW, node_name=NODE, cfg=hand.config(client_ca_file=None),
        anchors=(CertFile(role=Role.TRUST_ANCHOR, path=CA_PATH, target=CA_PATH,
                          chain=(CA_1, CA_2), leaf=CA_1),),
        history=(RoleHistory(role=Role.CLIENT, count=3, total_bytes=3000),
                 RoleHistory(role=Role.SERVER, count=1, total_bytes=1100)),
        api=api,
    )


FINDINGS = (
    Finding(codes.KEY_MISMATCH, Severity.CRITICAL, "the key does not match", SERVER_PATH),
    Finding(codes.CERT_UNREADABLE, Severity.WARNING, "garbage", BROKEN_PATH),
    Finding(codes.SERVING_CSR_PENDING, Severity.WARNING, "approve csr-new", None),
)


def stats() -> AgentStats:
    return AgentStats(started_at=NOW - timedelta(hours=1), evaluations_total=5,
                      last_evaluation=NOW, last_evaluation_duration_seconds=0.0125,
                      read_errors_total=(("garbage", 2),), fs_events_total=17,
                      rotations_total=(("client", 1),), textfile_errors_total=0)


def full_state() -> AgentState:
    """Every family populated: certificates, anchors, findings, history, stats, API."""
    api = api_state()
    serving = trail(api.csrs, SERVING_SIGNER)  # the checks' verdict on these CSRs
    return AgentState(evaluation=Evaluation(snapshot(api), NOW, FINDINGS, (serving,)),
                      stats=stats())


def quiet_state() -> AgentState:
    """A healthy offline node: no findings, no API, default counters."""
    snap = snapshot()
    healthy = replace(snap, certs=snap.certs[:1], history=snap.history[:1])
    return AgentState(evaluation=Evaluation(healthy, NOW, ()))
