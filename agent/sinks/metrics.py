"""Prometheus exposition of the agent's state: every metric name, HELP and label lives here.

:class:`AgentCollector` is a prometheus_client custom collector: each ``collect()`` builds
fresh metric families from the immutable :class:`~agent.model.AgentState` that
``get_state()`` returns, so a scrape never touches the disk and never sees half an update.
:func:`render` gives the same families as text exposition for node_exporter's textfile
collector (no client-side timestamps: node_exporter refuses files that carry them).

Conventions: prefix ``kubelet_cert_agent_``, base units, instants as
``*_timestamp_seconds`` (never a "seconds left" that goes stale between scrapes), counters
end in ``_total``, and the HELP text of a family is a constant (node_exporter drops series
whose HELP differs between files). ``kubelet_cert_agent_status`` is a gauge holding the
Nagios code of the overall verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (no evaluation
published yet).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Literal

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import choose_encoder
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
from agent.sinks.exposition import Family, Samples

PREFIX = "kubelet_cert_agent_"
# What identifies one certificate in every per-certificate family; ``index`` (0-based position
# in the file) is added only where a file holds several exported certificates (a CA bundle).
# Everything descriptive is on ``certificate_info`` alone: a scrape repeats the long labels
# (subject, issuer, serial, target) once per certificate instead of once per family, and a
# rotation changes one info series instead of every numeric one. Join with
# ``* on(path, role, index) group_left(subject, serial) kubelet_cert_agent_certificate_info``.
CERT_LABELS = ("path", "role")
INDEX_LABEL = "index"
INFO_LABELS = (*CERT_LABELS, "target", "subject", "issuer", "serial")
_log = structlog.get_logger(__name__)


def _f(name: str, kind: Literal["gauge", "counter"], help_: str, *labels: str) -> Family:
    return Family(PREFIX + name, kind, help_, labels)


# -- per certificate (live certificates and trust anchors, role "ca") ----------------------
CERT_INFO = _f("certificate_info", "gauge",
               "Always 1; the labels describe the certificate at (path, role[, index]); "
               "target is present when path is a link.", *INFO_LABELS)
CERT_NOT_BEFORE = _f("certificate_not_before_timestamp_seconds", "gauge",
                     "Start of the certificate's validity (notBefore), Unix time.", *CERT_LABELS)
CERT_NOT_AFTER = _f("certificate_not_after_timestamp_seconds", "gauge",
                    "End of the certificate's validity (notAfter), Unix time.", *CERT_LABELS)
CERT_WINDOW_START = _f("certificate_rotation_window_start_timestamp_seconds", "gauge",
                       "Earliest instant the kubelet rotates this client or serving "
                       "certificate (notBefore + 70% of the lifetime), Unix time.", *CERT_LABELS)
CERT_WINDOW_END = _f("certificate_rotation_window_end_timestamp_seconds", "gauge",
                     "Latest instant the kubelet rotates this client or serving certificate "
                     "(notBefore + 90% of the lifetime), Unix time.", *CERT_LABELS)
CERT_SELF_SIGNED = _f("certificate_self_signed", "gauge",
                      "1 if one of the kubelet's own certificates is its self-signed fallback "
                      "or otherwise issued by a CA inside its own file, else 0.", *CERT_LABELS)
CERT_KEY_MATCH = _f("certificate_key_match", "gauge",
                    "1 if the private key belongs to the certificate, 0 if it does not; "
                    "absent when no key could be compared.", *CERT_LABELS)
CERT_TRUSTED = _f("certificate_trusted", "gauge",
                  "1 if the certificate chains to a known trust anchor, 0 if not; "
                  "absent when no trust anchor is known.", *CERT_LABELS)
CERT_STALE = _f("certificate_stale", "gauge",
                "1 while the file is unreadable and its series show the last good values; "
                "absent while it reads fine.", *CERT_LABELS)

KUBEADM_INFO = _f("kubeadm_certificate_info", "gauge",
                  "1 for each file `kubeadm certs check-expiration` lists, by kubeadm's name "
                  "(role kubeadm or kubeadm-ca on the certificate series).",
                  "name", "path", "externally_managed")

# -- verdict --------------------------------------------------------------------------------
FINDING = _f("finding", "gauge", "1 for each active finding (code: see the README).",
             "code", "severity", "path")
STATUS = _f("status", "gauge",
            "Overall verdict: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (nothing evaluated yet).")
INVENTORY_COMPLETE = _f("inventory_complete", "gauge",
                        "1 once every input has been read; 0 while the first scan of big "
                        "--watch directories runs and only the other certificates are shown.")

# -- history of timestamped generations ----------------------------------------------------
HISTORY_GENERATIONS = _f("history_generations", "gauge",
                         "Number of kubelet-<role>-<timestamp>.pem files in the cert dir.", "role")
HISTORY_BYTES = _f("history_bytes", "gauge",
                   "Total size of the kubelet-<role>-<timestamp>.pem files, bytes.", "role")
LAST_ROTATION = _f("last_rotation_timestamp_seconds", "gauge",
                   "When the current certificate of this role was issued (its notBefore), "
                   "Unix time.", "role")

# -- the agent itself ---------------------------------------------------------------------
BUILD_INFO = _f("build_info", "gauge", "Always 1; the version label is the agent's version.",
                "version")
START_TIME = _f("start_time_seconds", "gauge", "When the agent started, Unix time.")
LAST_EVALUATION = _f("last_evaluation_timestamp_seconds", "gauge",
                     "When the published verdict was computed, Unix time.")
EVALUATION_DURATION = _f("evaluation_duration_seconds", "gauge",
                         "How long the last snapshot and evaluation took, seconds.")
EVALUATIONS = _f("evaluations_total", "counter", "Evaluations run since the agent started.")
READ_ERRORS = _f("read_errors_total", "counter",
                 "Inputs (certificates, keys, kubelet config) that became unreadable, "
                 "by problem.", "problem")
FS_EVENTS = _f("filesystem_events_total", "counter",
               "Filesystem events seen on the watched paths.")
ROTATIONS = _f("rotations_observed_total", "counter",
               "Certificate rotations (a new serial under -current.pem) seen by the agent.",
               "role")
TEXTFILE_ERRORS = _f("textfile_write_errors_total", "counter",
                     "Failed writes of the node_exporter textfile.")

# -- API server and serving CSRs (absent when offline) -------------------------------------
CSR_PENDING = _f("serving_csr_pending", "gauge",
                 "Pending kubelet-serving CSRs this node made since its last issued "
                 "certificate, while the newest of them waits for approval; 0 when the node "
                 "is not waiting (abandoned CSRs never count).")
CSR_WAITING_SINCE = _f("serving_csr_waiting_since_timestamp_seconds", "gauge",
                       "Since when this node has been waiting for a serving certificate "
                       "(its first Pending CSR after the last issued certificate, or when the "
                       "certificate went overdue), Unix time; absent when not waiting.")
CSR_INFO = _f("serving_csr_info", "gauge", "1 for each of this node's kubelet-serving CSRs; "
              "state Abandoned: Pending, but the kubelet no longer waits for it.",
              "name", "state")
API_REQUESTS = _f("apiserver_requests_total", "counter",
                  "Requests the agent made to the API server, by outcome.", "outcome")
API_LAST_SUCCESS = _f("apiserver_last_success_timestamp_seconds", "gauge",
                      "When the API server last answered the agent successfully, Unix time.")
API_UP = _f("apiserver_up", "gauge",
            "1 if the agent's last request to the API server succeeded, 0 if it failed.")

# -- the agent's own health (issue 8): never a statement about the operator's files --------
SOURCE_UP = _f("source_up", "gauge",
               "1 if the agent could read this input at the last evaluation, 0 if not "
               "(cert dir, kubelet config, kubeconfig, API server).", "source")
INTERNAL_ERRORS = _f("internal_errors_total", "counter",
                     "Failures of the agent itself (a bug, EMFILE, ENOMEM), by component; "
                     "never a problem with a certificate.", "component")
VERDICT_STALE = _f("verdict_stale", "gauge",
                   "1 while evaluations fail for the agent's own reasons and the published "
                   "verdict is the last good one.")
HTTP_REJECTED = _f("http_rejected_total", "counter",
                   "HTTP connections closed without an answer, by reason.", "reason")
API_RESTARTS = _f("api_thread_restarts_total", "counter",
                  "Times the API server monitor thread died and was restarted.")
HEALTH_FAMILIES: tuple[Family, ...] = (INTERNAL_ERRORS, VERDICT_STALE, HTTP_REJECTED,
                                       API_RESTARTS)

# -- the kubelet's serving port (absent with --no-probe) ------------------------------------
SERVING_UP = _f("kubelet_serving_up", "gauge",
                "1 if the kubelet's serving port completed (or refused with a TLS alert) a "
                "handshake at the last probe, 0 if refused, timed out or not TLS.")

FAMILIES: tuple[Family, ...] = (
    CERT_INFO, CERT_NOT_BEFORE, CERT_NOT_AFTER, CERT_WINDOW_START, CERT_WINDOW_END,
    CERT_SELF_SIGNED, CERT_KEY_MATCH, CERT_TRUSTED, CERT_STALE, KUBEADM_INFO, FINDING,
    STATUS, INVENTORY_COMPLETE, HISTORY_GENERATIONS, HISTORY_BYTES, LAST_ROTATION, BUILD_INFO,
    START_TIME, LAST_EVALUATION, EVALUATION_DURATION, EVALUATIONS, READ_ERRORS, FS_EVENTS,
    ROTATIONS, TEXTFILE_ERRORS, CSR_PENDING, CSR_WAITING_SINCE, CSR_INFO, API_REQUESTS,
    API_LAST_SUCCESS, API_UP, SOURCE_UP, SERVING_UP, *HEALTH_FAMILIES,
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


class HealthCollector:
    """A collector for :func:`health_metrics` of whatever ``get_health()`` returns."""

    def __init__(self, get_health: Callable[[], HealthSnapshot]) -> None:
        self._get_health = get_health

    def collect(self) -> Iterable[Metric]:
        return health_metrics(self._get_health())

    def describe(self) -> Iterator[Metric]:
        return iter(())


def build_metrics(state: AgentState | None) -> list[Metric]:
    """Every metric family for ``state``; only build info and status 3 when it is None."""
    return build_samples(state).metrics()


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


class AgentCollector:
    """A custom collector rendering whatever ``get_state()`` returns at scrape time.

    Never reads files and never raises: if ``get_state`` or rendering fails, the scrape
    still answers with build info and status 3 (UNKNOWN), and the error is logged.
    """

    def __init__(self, get_state: Callable[[], AgentState | None]) -> None:
        self._get_state = get_state

    def collect(self) -> Iterable[Metric]:
        try:
            return build_metrics(self._get_state())
        except Exception as exc:  # a scrape must answer even if a state is malformed
            _log.error("metrics_render_failed", error=f"{type(exc).__name__}: {exc}")
            return build_metrics(None)

    def describe(self) -> Iterator[Metric]:
        # Nothing to describe up front: the families depend on the state at scrape time.
        return iter(())


def registry_for(get_state: Callable[[], AgentState | None]) -> CollectorRegistry:
    """A fresh registry holding only an :class:`AgentCollector`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(get_state))
    return registry


# What a plain scraper and Prometheus (OpenMetrics 1.0.0 first) are answered with, rendered
# ahead and written by agent.sinks.exposition (same bytes, a fraction of the time).
_TEXT_0_0_4 = choose_encoder("")[1]
_OPENMETRICS_1 = choose_encoder("application/openmetrics-text;version=1.0.0")[1]


class Expositions:
    """The rendered exposition of the last ``keep`` states, per content type.

    A state is immutable, so its exposition is too: :meth:`prerender` renders it before the
    daemon publishes the state, and a scrape of a published state is a dictionary lookup:
    it never waits for a render of thousands of certificates (nor on the evaluation that
    produces the next state). States are matched by identity; ``keep`` is 2 so that the
    state being prepared never evicts the one still being served.
    """

    def __init__(self, keep: int = 2) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._entries: list[tuple[AgentState | None, dict[str, bytes]]] = []

    def body(self, state: AgentState | None, accept: str = "") -> tuple[str, bytes]:
        """(content type, body) of ``state`` for a scraper sending ``accept``."""
        encoder, content_type = choose_encoder(accept)
        with self._lock:
            bodies = self._bodies(state)
            found = bodies.get(content_type)
        if found is None:
            found = _render(state, content_type, encoder)
            with self._lock:
                bodies[content_type] = found
        return content_type, found

    def prerender(self, state: AgentState | None) -> None:
        """Render ``state`` for the usual scrapers now, before anyone asks (one build of
        the samples for both formats; any other answer is rendered on first request)."""
        samples = _samples_of(state)
        text, openmetrics = samples.text(openmetrics=False), samples.text(openmetrics=True)
        with self._lock:
            bodies = self._bodies(state)
            bodies[_TEXT_0_0_4] = text
            bodies[_OPENMETRICS_1] = openmetrics

    def retain(self, state: AgentState | None) -> None:
        """Forget every state but ``state`` (once it is the published one: at 10,000
        certificates each body is megabytes). A scrape still holding an older state then
        renders it itself."""
        with self._lock:
            self._entries = [entry for entry in self._entries if entry[0] is state]

    def _bodies(self, state: AgentState | None) -> dict[str, bytes]:
        for known, bodies in self._entries:
            if known is state:
                return bodies
        bodies = {}
        self._entries = [*self._entries[-(self._keep - 1):], (state, bodies)]
        return bodies


EXPOSITIONS = Expositions()


def _samples_of(state: AgentState | None) -> Samples:
    try:
        return build_samples(state)
    except Exception as exc:  # as AgentCollector does: answer "nothing evaluated"
        _log.error("metrics_render_failed", error=f"{type(exc).__name__}: {exc}")
        return build_samples(None)


def _render(state: AgentState | None, content_type: str,
            encoder: Callable[[CollectorRegistry], bytes]) -> bytes:
    if content_type in (_TEXT_0_0_4, _OPENMETRICS_1):
        return _samples_of(state).text(openmetrics=content_type == _OPENMETRICS_1)
    return encoder(registry_for(lambda: state))


def render(state: AgentState | None, health: HealthSnapshot | None = None) -> bytes:
    """Text exposition (format 0.0.4) of ``state``, without timestamps, for the textfile.

    With ``health``, the agent-health families too (node_exporter users must see them).
    Never the ``process_*`` families: node_exporter exports its own under those names.
    """
    body = EXPOSITIONS.body(state)[1]  # rendered before the state was published
    return body if health is None else body + generate_latest(health_registry(health))


def health_registry(health: HealthSnapshot) -> CollectorRegistry:
    """A registry of the agent-health families of ``health``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(lambda: health))
    return registry


def process_registry() -> CollectorRegistry:
    """prometheus_client's ``process_*`` families (descriptors, memory, CPU) of this process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProcessCollector(registry=None))
    return registry
