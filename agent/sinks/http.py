"""The agent's HTTP endpoint: ``/metrics``, ``/healthz`` and ``/status``.

A ``ThreadingHTTPServer`` in a background thread; every response is computed from the
immutable state ``get_state()`` returns at request time, so a request never touches the
disk. A handler never raises (a failure becomes a 500 and one log event) and requests are
not logged (no stderr line per scrape).

- ``/metrics``: the :class:`~agent.sinks.metrics.AgentCollector` exposition; text format
  0.0.4, or OpenMetrics when the scraper's ``Accept`` asks for it; gzip-compressed when
  ``Accept-Encoding`` allows it (Prometheus always does).
- ``/healthz``: 200 ``ok`` once a state has been published, 503 before.
- ``/status``: the JSON status of the published evaluation (503 before the first one).
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import structlog

from agent.model import AgentState, Evaluation
from agent.sinks.metrics import EXPOSITIONS, Expositions

StateGetter = Callable[[], AgentState | None]
StatusJson = Callable[[Evaluation], Mapping[str, Any]]
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"
_log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    content_type: str
    body: bytes
    encoding: str | None = None  # Content-Encoding ("gzip"), None for identity


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
                 expositions: Expositions = EXPOSITIONS) -> None:
        self._get_state = get_state
        self._status_json = status_json or _default_status_json
        # Shared with the daemon, which renders each state there before publishing it.
        self._expositions = expositions

    def respond(self, path: str, accept: str, accept_encoding: str = "") -> Response:
        route = urlsplit(path).path
        try:
            if route == "/metrics":
                return self._metrics(accept, gzip="gzip" in accept_encoding.lower())
            if route == "/healthz":
                return self._healthz()
            if route == "/status":
                return self._status()
        except Exception as exc:  # a request must get an answer, never a traceback
            _log.error("http_request_failed", path=route, error=type(exc).__name__)
            return Response(HTTPStatus.INTERNAL_SERVER_ERROR, _TEXT,
                            f"internal error: {type(exc).__name__}\n".encode())
        return Response(HTTPStatus.NOT_FOUND, _TEXT,
                        b"not found: try /metrics, /healthz or /status\n")

    def _metrics(self, accept: str, *, gzip: bool = False) -> Response:
        try:
            state = self._get_state()
        except Exception as exc:  # as AgentCollector does: answer "nothing evaluated"
            _log.error("http_get_state_failed", error=type(exc).__name__)
            state = None
        if gzip:  # as Prometheus asks: a tenth of the bytes, compressed once per state
            content_type, body = self._expositions.gzipped(state, accept)
            return Response(HTTPStatus.OK, content_type, body, "gzip")
        content_type, body = self._expositions.body(state, accept)
        return Response(HTTPStatus.OK, content_type, body)

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


def _json(body: Mapping[str, Any]) -> bytes:
    return (json.dumps(body, indent=2, default=str) + "\n").encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Prometheus scrapes
    timeout = 30  # a silent client cannot hold a thread forever
    # Headers and body are two writes: with Nagle's algorithm and the client's delayed ACK
    # every keep-alive response would wait ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def do_GET(self) -> None:
        self._answer(with_body=True)

    def do_HEAD(self) -> None:
        self._answer(with_body=False)

    def _answer(self, *, with_body: bool) -> None:
        response = self.server.endpoints.respond(self.path, self.headers.get("Accept", ""),
                                                 self.headers.get("Accept-Encoding", ""))
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        if response.encoding is not None:
            self.send_header("Content-Encoding", response.encoding)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if with_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], endpoints: Endpoints) -> None:
        self.endpoints = endpoints
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() resolves the host name (getfqdn), a DNS round trip at
        # start-up for nothing: bind without it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Client disconnects and the like: one quiet log event instead of a stderr traceback.
        _log.debug("http_connection_error", client=str(client_address))


class MetricsServer:
    """A running endpoint; ``shutdown()`` stops it and closes the socket."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self.host = str(server.server_address[0])
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, name="http",
                                        kwargs={"poll_interval": 0.5}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def shutdown(self) -> None:
        """Stop serving, close the socket and wait for the serving thread."""
        stopper = threading.Thread(target=self._server.shutdown, name="http-stop")
        stopper.start()
        # serve_forever() notices a shutdown only between two selects: a connection wakes
        # it now instead of at the next poll.
        with contextlib.suppress(OSError):
            socket.create_connection((self.host, self.port), timeout=1).close()
        stopper.join()
        self._server.server_close()
        self._thread.join()


def serve(listen: str, get_state: StateGetter, status_json: StatusJson | None = None
          ) -> MetricsServer:
    """Bind ``listen`` and serve in a background thread.

    Raises ``ValueError`` for a malformed ``listen`` and ``OSError`` when the address
    cannot be bound (in use, not local); ``:0`` picks a free port (see ``.port``).
    """
    return MetricsServer(_Server(parse_listen(listen), Endpoints(get_state, status_json)))
