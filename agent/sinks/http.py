"""The agent's HTTP endpoint: ``/metrics``, ``/healthz`` and ``/status``.

:mod:`agent.sinks.httpserver` holds the connections (bounded, with deadlines); every
response is computed from the immutable state ``get_state()`` returns at request time, so
a request never touches the disk. A handler never raises (a failure becomes a 500, one log
event and ``internal_errors_total{component="http"}``) and requests are not logged.

- ``/metrics``: the :class:`~agent.sinks.metrics.AgentCollector` exposition; text format
  0.0.4, or OpenMetrics when the scraper's ``Accept`` asks for it.
- ``/healthz``: 200 ``ok`` once a state has been published, 503 before.
- ``/status``: the JSON status of the published evaluation (503 before the first one).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from agent.health import Health, HealthSnapshot
from agent.model import AgentState, Evaluation
from agent.sinks.httpserver import BoundedServer, Response, bind
from agent.sinks.metrics import EXPOSITIONS, Expositions, health_registry, process_registry

StateGetter = Callable[[], AgentState | None]
StatusJson = Callable[[Evaluation], Mapping[str, Any]]
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"
_EOF = b"# EOF\n"
PROCESS_TTL = 1.0
Encoder = Callable[[CollectorRegistry], bytes]
_log = structlog.get_logger(__name__)


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``HOST:PORT``, ``[IPV6]:PORT`` or ``:PORT`` (all IPv4 interfaces).

    Raises ``ValueError`` with the offending text when it is not one of those forms.
    """
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"--listen must be HOST:PORT, [IPV6]:PORT or :PORT, got {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"--listen: put an IPv6 address in brackets, e.g. [::1]:9731, "
                         f"got {listen!r}")
    return host or "0.0.0.0", int(port_text)  # noqa: S104 - ":PORT" means all interfaces


def _default_status_json(evaluation: Evaluation) -> Mapping[str, Any]:
    # Imported lazily: the JSON schema belongs to the CLI part and /metrics must not
    # depend on it.
    from agent.sinks.jsonout import evaluation_to_dict

    return evaluation_to_dict(evaluation)


class Endpoints:
    """Request routing, independent of the socket layer: path + Accept -> Response."""

    def __init__(self, get_state: StateGetter, status_json: StatusJson | None = None,
                 health: Health | None = None, expositions: Expositions = EXPOSITIONS) -> None:
        self._get_state = get_state
        self._status_json = status_json or _default_status_json
        self._health = health or Health()
        self._process = process_registry()
        # Health is rendered when it changed; process_* (2 ms of /proc reads: the cost of a
        # scrape under a flood) at most once per PROCESS_TTL seconds. Per content type.
        self._health_cache: dict[str, tuple[HealthSnapshot, bytes]] = {}
        self._process_cache: dict[str, tuple[float, bytes]] = {}
        # Shared with the daemon, which renders each state there before publishing it.
        self._expositions = expositions

    def respond(self, path: str, accept: str) -> Response:
        route = urlsplit(path).path
        try:
            if route == "/metrics":
                return self._metrics(accept)
            if route == "/healthz":
                return self._healthz()
            if route == "/status":
                return self._status()
        except Exception as exc:  # a request must get an answer, never a traceback
            self._health.internal_error("http")
            _log.error("http_request_failed", path=route, error=type(exc).__name__)
            return Response(HTTPStatus.INTERNAL_SERVER_ERROR, _TEXT,
                            f"internal error: {type(exc).__name__}\n".encode())
        return Response(HTTPStatus.NOT_FOUND, _TEXT,
                        b"not found: try /metrics, /healthz or /status\n")

    def _metrics(self, accept: str) -> Response:
        encoder, content_type = choose_encoder(accept)
        try:
            state = self._get_state()
        except Exception as exc:  # as AgentCollector does: answer "nothing evaluated"
            self._health.internal_error("http")
            _log.error("http_get_state_failed", error=type(exc).__name__)
            state = None
        # Rendered by the daemon before it published the state (a lookup here), or now for a
        # state or content type nobody rendered ahead.
        content_type, body = self._expositions.body(state, accept)
        # The agent's health and process_* move between evaluations: appended after the
        # cached verdict. OpenMetrics allows one "# EOF", last.
        live = self._live_health(encoder, content_type) + self._live_process(encoder,
                                                                             content_type)
        return Response(HTTPStatus.OK, content_type, _strip_eof(body) + live)

    def _live_health(self, encoder: Encoder, content_type: str) -> bytes:
        health = self._health.snapshot()
        cached = self._health_cache.get(content_type)
        if cached is None or cached[0] is not health:
            cached = self._health_cache[content_type] = (
                health, _strip_eof(encoder(health_registry(health))))
        return cached[1]

    def _live_process(self, encoder: Encoder, content_type: str) -> bytes:
        now = time.monotonic()
        cached = self._process_cache.get(content_type)
        if cached is None or now - cached[0] >= PROCESS_TTL:
            cached = self._process_cache[content_type] = (now, encoder(self._process))
        return cached[1]

    def _healthz(self) -> Response:
        if self._get_state() is None:
            return Response(HTTPStatus.SERVICE_UNAVAILABLE, _TEXT, b"no evaluation yet\n")
        return Response(HTTPStatus.OK, _TEXT, b"ok\n")

    def _status(self) -> Response:
        state = self._get_state()
        if state is None:
            body: Mapping[str, Any] = {"status": "UNKNOWN",
                                       "message": "no evaluation published yet"}
            return Response(HTTPStatus.SERVICE_UNAVAILABLE, _JSON, _json(body))
        return Response(HTTPStatus.OK, _JSON, _json(self._status_json(state.evaluation)))


def _strip_eof(body: bytes) -> bytes:
    return body[:-len(_EOF)] if body.endswith(_EOF) else body


def _json(body: Mapping[str, Any]) -> bytes:
    return (json.dumps(body, indent=2, default=str) + "\n").encode()


class MetricsServer:
    """A running endpoint; ``shutdown()`` stops it and closes the socket."""

    def __init__(self, sock: socket.socket, endpoints: Endpoints, health: Health) -> None:
        host, port = sock.getsockname()[:2]
        self.host, self.port = str(host), int(port)
        self._server = BoundedServer(sock, endpoints.respond, health.rejected)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def connections(self) -> int:
        return self._server.connections

    def shutdown(self) -> None:
        """Stop serving, close every connection and the socket (within about a second)."""
        self._server.shutdown()


def serve(listen: str, get_state: StateGetter, status_json: StatusJson | None = None,
          health: Health | None = None) -> MetricsServer:
    """Bind ``listen`` and serve in a background thread.

    Raises ``ValueError`` for a malformed ``listen`` and ``OSError`` when the address
    cannot be bound (in use, not local); ``:0`` picks a free port (see ``.port``).
    The socket is bound before this returns: a caller replacing a server binds the new
    one first and closes the old one only once this succeeded.
    """
    health = health or Health()
    sock = bind(*parse_listen(listen))
    return MetricsServer(sock, Endpoints(get_state, status_json, health), health)
