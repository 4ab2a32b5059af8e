"""An :class:`~agent.model.AgentState` (or the agent's health) -> :class:`Samples`.

Sinks render verdicts, never re-derive them: every value here is read off the snapshot,
the evaluation or the counters. ``kubelet_cert_agent_status`` holds the Nagios code of the
overall verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (no evaluation published yet).
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client.metrics_core import Metric

from agent import __version__
from agent.health import COMPONENTS, REJECT_REASONS, HealthSnapshot
from agent.kubelet import KUBELET_ROLES, ROTATING_ROLES, SERVING_SIGNER
from agent.model import (
    AgentState,
    AgentStats,
    ApiProblem,
    ApiState,
    CertFile,
    CertInfo,
    CsrTrail,
    Evaluation,
    KeyMatch,
    ReadProblem,
    Role,
    Snapshot,
    Status,
)
from agent.sinks.exposition import Samples
from agent.sinks.families import (
    API_LAST_SUCCESS,
    API_REQUESTS,
    API_RESTARTS,
    API_UP,
    BUILD_INFO,
    CERT_INFO,
    CERT_KEY_MATCH,
    CERT_NOT_AFTER,
    CERT_NOT_BEFORE,
    CERT_SELF_SIGNED,
    CERT_STALE,
    CERT_TRUSTED,
    CERT_WINDOW_END,
    CERT_WINDOW_START,
    CSR_INFO,
    CSR_PENDING,
    CSR_WAITING_SINCE,
    EVALUATION_DURATION,
    EVALUATIONS,
    FINDING,
    FS_EVENTS,
    HISTORY_BYTES,
    HISTORY_GENERATIONS,
    HTTP_REJECTED,
    INDEX_LABEL,
    INTERNAL_ERRORS,
    INVENTORY_COMPLETE,
    KUBEADM_INFO,
    LAST_EVALUATION,
    LAST_ROTATION,
    READ_ERRORS,
    ROTATIONS,
    SERVING_UP,
    SOURCE_UP,
    START_TIME,
    STATUS,
    TEXTFILE_ERRORS,
    VERDICT_STALE,
)

# Counters are pre-initialised at 0 for these labels, so rate() works from the first scrape.
_ROTATION_ROLES = (Role.CLIENT.value, Role.SERVER.value)


def _ts(at: datetime) -> float:
    return at.timestamp()


def _yes_no(flag: bool | None) -> str:
    return "yes" if flag else "no"


def _bool(flag: bool) -> float:
    return 1.0 if flag else 0.0


def _add_cert(out: Samples, ident: dict[str, str], cert_file: CertFile, info: CertInfo) -> None:
    """The per-certificate series: info and validity (one per certificate of the file)."""
    described = dict(ident)
    if cert_file.target and cert_file.target != cert_file.path:
        described["target"] = cert_file.target
    described.update(subject=info.subject, issuer=info.issuer, serial=info.serial.lower())
    out.add_labelled(CERT_INFO, 1.0, described)
    out.add_labelled(CERT_NOT_BEFORE, _ts(info.not_before), ident)
    out.add_labelled(CERT_NOT_AFTER, _ts(info.not_after), ident)


def _add_file(out: Samples, ident: dict[str, str], cert_file: CertFile, role: Role) -> None:
    """The per-file facts: what the file's leaf is to the kubelet and whether it is stale."""
    leaf = cert_file.leaf
    # Only those have a window; an inverted validity has none (a backwards one would fire
    # the rotation alert).
    if role in ROTATING_ROLES and leaf is not None and leaf.not_before <= leaf.not_after:
        out.add_labelled(CERT_WINDOW_START, _ts(leaf.rotation_window_start), ident)
        out.add_labelled(CERT_WINDOW_END, _ts(leaf.rotation_window_end), ident)
    if role in KUBELET_ROLES:  # the self-signed fallback is a kubelet notion
        out.add_labelled(CERT_SELF_SIGNED, _bool(cert_file.self_signed), ident)
    if cert_file.name:  # kubeadm's name, for alerts that say `kubeadm certs renew <name>`
        out.add(KUBEADM_INFO, 1.0, (cert_file.name, cert_file.path,
                                    _yes_no(cert_file.externally_managed)))
    if cert_file.key_match in (KeyMatch.MATCH, KeyMatch.MISMATCH):
        out.add_labelled(CERT_KEY_MATCH, _bool(cert_file.key_match is KeyMatch.MATCH), ident)
    if cert_file.trusted is not None:
        out.add_labelled(CERT_TRUSTED, _bool(cert_file.trusted), ident)
    if cert_file.stale_since is not None:
        out.add_labelled(CERT_STALE, 1.0, ident)


def _add_certificates(out: Samples, snapshot: Snapshot) -> None:
    for cert_file in snapshot.certs:
        if cert_file.role is Role.KUBEADM_CA:  # a CA file: every CA of it can expire
            _add_bundle(out, cert_file, Role.KUBEADM_CA)
        elif cert_file.leaf is not None:
            ident = {"path": cert_file.path, "role": cert_file.role.value}
            _add_cert(out, ident, cert_file, cert_file.leaf)
            _add_file(out, ident, cert_file, cert_file.role)
    for anchor in snapshot.anchors:
        # A CA bundle holds several CAs: each is a trust anchor that can expire.
        _add_bundle(out, anchor, Role.TRUST_ANCHOR)


def _add_bundle(out: Samples, cert_file: CertFile, role: Role) -> None:
    """Every certificate of a CA file, with ``index`` when there are several."""
    cas = cert_file.chain or ((cert_file.leaf,) if cert_file.leaf else ())
    ident = {"path": cert_file.path, "role": role.value}
    for index, info in enumerate(cas):
        _add_cert(out, {**ident, INDEX_LABEL: str(index)} if len(cas) > 1 else ident,
                  cert_file, info)
    if cas:
        _add_file(out, ident, cert_file, role)


def _add_verdict(out: Samples, evaluation: Evaluation) -> None:
    out.add(STATUS, float(evaluation.status))
    out.add(INVENTORY_COMPLETE, _bool(evaluation.snapshot.complete))
    for finding in evaluation.findings:
        out.add(FINDING, 1.0, (finding.code, finding.severity.label, finding.path or ""))


def _add_history(out: Samples, snapshot: Snapshot) -> None:
    for history in snapshot.history:
        role = history.role.value
        out.add(HISTORY_GENERATIONS, float(history.count), (role,))
        out.add(HISTORY_BYTES, float(history.total_bytes), (role,))
        current = snapshot.cert(history.role)
        # The generation file names carry the kubelet's *local* time; notBefore is UTC.
        if current is not None and current.leaf is not None:
            out.add(LAST_ROTATION, _ts(current.leaf.not_before), (role,))


def _add_stats(out: Samples, stats: AgentStats, evaluation: Evaluation) -> None:
    if stats.started_at is not None:
        out.add(START_TIME, _ts(stats.started_at))
    out.add(LAST_EVALUATION, _ts(stats.last_evaluation or evaluation.now))
    out.add(EVALUATION_DURATION, stats.last_evaluation_duration_seconds)
    out.add(EVALUATIONS, float(stats.evaluations_total))
    for problem, count in stats.read_errors_total:
        out.add(READ_ERRORS, float(count), (problem,))
    for known in ReadProblem:
        out.add(READ_ERRORS, 0.0, (known.value,))
    out.add(FS_EVENTS, float(stats.fs_events_total))
    for role, count in stats.rotations_total:
        out.add(ROTATIONS, float(count), (role,))
    for role in _ROTATION_ROLES:
        out.add(ROTATIONS, 0.0, (role,))
    out.add(TEXTFILE_ERRORS, float(stats.textfile_errors_total))


def _add_api(out: Samples, api: ApiState, serving: CsrTrail | None) -> None:
    # The checks' verdict on the CSRs, not the raw list: abandoned CSRs never count.
    out.add(CSR_PENDING, float(len(serving.pending) if serving else 0))
    if serving is not None and serving.since is not None:
        out.add(CSR_WAITING_SINCE, _ts(serving.since))
    for csr in api.csrs:
        abandoned = serving is not None and serving.is_abandoned(csr)
        out.add(CSR_INFO, 1.0, (csr.name, "Abandoned" if abandoned else csr.state.value))
    for outcome, count in api.requests_by_outcome:
        out.add(API_REQUESTS, float(count), (outcome,))
    if api.last_success is not None:
        out.add(API_LAST_SUCCESS, _ts(api.last_success))
    out.add(API_UP, _bool(api.error is None))


def _add_sources(out: Samples, snapshot: Snapshot) -> None:
    out.add(SOURCE_UP, _bool(snapshot.cert_dir_error is None), ("cert_dir",))
    if snapshot.kubelet_config.path is not None:
        out.add(SOURCE_UP, _bool(snapshot.kubelet_config.error is None), ("kubelet_config",))
    api = snapshot.api
    if api is not None:
        configured = api.error is None or api.error.problem is not ApiProblem.NOT_CONFIGURED
        out.add(SOURCE_UP, _bool(configured), ("kubeconfig",))
        out.add(SOURCE_UP, _bool(api.error is None), ("apiserver",))


def health_metrics(health: HealthSnapshot) -> list[Metric]:
    """The agent-health families (moving between evaluations: rendered at each scrape)."""
    out = Samples()
    for component, count in health.internal_errors:
        out.add(INTERNAL_ERRORS, float(count), (component,))
    for component in COMPONENTS:
        out.add(INTERNAL_ERRORS, 0.0, (component,))
    out.add(VERDICT_STALE, _bool(health.stale_since is not None))
    for reason, count in health.http_rejected:
        out.add(HTTP_REJECTED, float(count), (reason,))
    for reason in REJECT_REASONS:
        out.add(HTTP_REJECTED, 0.0, (reason,))
    out.add(API_RESTARTS, float(health.api_restarts))
    return out.metrics()



def build_samples(state: AgentState | None) -> Samples:
    """Every sample for ``state``; only build info and status 3 when it is None."""
    out = Samples()
    out.add(BUILD_INFO, 1.0, (__version__,))
    if state is None:
        out.add(STATUS, float(Status.UNKNOWN))
        return out
    snapshot = state.evaluation.snapshot
    _add_verdict(out, state.evaluation)
    _add_certificates(out, snapshot)
    _add_history(out, snapshot)
    _add_stats(out, state.stats, state.evaluation)
    _add_sources(out, snapshot)
    if snapshot.api is not None:
        _add_api(out, snapshot.api, state.evaluation.csr_trail(SERVING_SIGNER))
    if snapshot.probe is not None:
        out.add(SERVING_UP, _bool(snapshot.probe.up))
    return out
