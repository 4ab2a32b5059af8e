"""Prometheus exposition of the agent's state (the public face of four modules).

- :mod:`agent.sinks.families`: every metric name, HELP and label;
- :mod:`agent.sinks.samples`: state -> samples (``build_samples``, ``health_metrics``);
- :mod:`agent.sinks.collectors`: prometheus_client collectors and registries;
- :mod:`agent.sinks.prerender`: each state's bodies rendered before it is published, and
  the textfile's :func:`render`.


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

from agent.sinks.collectors import (
    AgentCollector,
    HealthCollector,
    build_metrics,
    health_registry,
    process_registry,
    registry_for,
)
from agent.sinks.exposition import Family, Samples
from agent.sinks.families import (
    API_LAST_SUCCESS,
    API_REQUESTS,
    API_RESTARTS,
    API_UP,
    BUILD_INFO,
    CERT_INFO,
    CERT_KEY_MATCH,
    CERT_LABELS,
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
    FAMILIES,
    FINDING,
    FS_EVENTS,
    HEALTH_FAMILIES,
    HISTORY_BYTES,
    HISTORY_GENERATIONS,
    HTTP_REJECTED,
    INDEX_LABEL,
    INFO_LABELS,
    INTERNAL_ERRORS,
    INVENTORY_COMPLETE,
    KUBEADM_INFO,
    LAST_EVALUATION,
    LAST_ROTATION,
    PREFIX,
    READ_ERRORS,
    ROTATIONS,
    SERVING_UP,
    SOURCE_UP,
    START_TIME,
    STATUS,
    TEXTFILE_ERRORS,
    VERDICT_STALE,
)
from agent.sinks.prerender import (
    EXPOSITIONS,
    GZIP_LEVEL,
    Expositions,
    Rendered,
    render,
)
from agent.sinks.samples import build_samples, health_metrics

__all__ = [
    "API_LAST_SUCCESS",
    "API_REQUESTS",
    "API_RESTARTS",
    "API_UP",
    "BUILD_INFO",
    "CERT_INFO",
    "CERT_KEY_MATCH",
    "CERT_LABELS",
    "CERT_NOT_AFTER",
    "CERT_NOT_BEFORE",
    "CERT_SELF_SIGNED",
    "CERT_STALE",
    "CERT_TRUSTED",
    "CERT_WINDOW_END",
    "CERT_WINDOW_START",
    "CSR_INFO",
    "CSR_PENDING",
    "CSR_WAITING_SINCE",
    "EVALUATIONS",
    "EVALUATION_DURATION",
    "EXPOSITIONS",
    "FAMILIES",
    "FINDING",
    "FS_EVENTS",
    "GZIP_LEVEL",
    "HEALTH_FAMILIES",
    "HISTORY_BYTES",
    "HISTORY_GENERATIONS",
    "HTTP_REJECTED",
    "INDEX_LABEL",
    "INFO_LABELS",
    "INTERNAL_ERRORS",
    "INVENTORY_COMPLETE",
    "KUBEADM_INFO",
    "LAST_EVALUATION",
    "LAST_ROTATION",
    "PREFIX",
    "READ_ERRORS",
    "ROTATIONS",
    "SERVING_UP",
    "SOURCE_UP",
    "START_TIME",
    "STATUS",
    "TEXTFILE_ERRORS",
    "VERDICT_STALE",
    "AgentCollector",
    "Expositions",
    "Family",
    "HealthCollector",
    "Rendered",
    "Samples",
    "build_metrics",
    "build_samples",
    "health_metrics",
    "health_registry",
    "process_registry",
    "registry_for",
    "render",
]
