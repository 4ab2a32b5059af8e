"""Every metric family the agent exports: name, type, HELP and label names.

Names are a contract (rules, dashboards, node_exporter's textfile): prefix
``kubelet_cert_agent_``, base units, instants as ``*_timestamp_seconds``, counters end in
``_total``, and the HELP text of a family is a constant (node_exporter drops series whose
HELP differs between files).
"""

from __future__ import annotations

from typing import Literal

from agent.sinks.exposition import Family

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
