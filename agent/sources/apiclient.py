"""HTTP requests to the API server: list CSR pages, watch, ask who-am-I.

A thin layer on an injected ``requests.Session``: the TLS settings come from
``Credentials.ssl_context``; every failure (connection refused, TLS, timeout, HTTP
status, bad body) is raised as ``ApiFailure`` carrying a classified ``Failure``, so the
callers above handle one exception type. Messages never contain headers or secrets.
One client does one request at a time; ``abort()`` (from another thread) cuts the
watch stream in progress so that a stop or a credential change is not held up.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any, Final

import requests
from requests.adapters import HTTPAdapter

from agent import __version__
from agent.config import ApiSettings
from agent.kubelet import SERVING_SIGNER
from agent.model import ApiProblem
from agent.sources.apiparse import (
    Failure,
    ListPage,
    ShapeError,
    WatchEvent,
    classify_status,
    load_json,
    parse_identity,
    parse_list,
    parse_watch_line,
    shape_failure,
)
from agent.sources.kubeconfig import Credentials

CSR_PATH: Final = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
REVIEW_PATH: Final = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
PAGE_SIZE: Final = 500
WATCH_MARGIN: Final = 30.0  # seconds beyond timeoutSeconds before the socket gives up
MAX_BODY: Final = 64 << 20  # a CSR list page of 500 items is a few MiB at most
REVIEW_BODY: Final = (b'{"kind":"SelfSubjectReview",'
                      b'"apiVersion":"authentication.k8s.io/v1","metadata":{}}')


class ApiFailure(Exception):
    """A request that failed; ``failure`` says how (safe to log)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


class _TlsAdapter(HTTPAdapter):
    """Uses the credentials' SSLContext (CA bundle in memory, client certificate)."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._ctx
        super().init_poolmanager(*args, **kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # requests would set its default bundle (certifi) as ca_certs, which urllib3 then
        # loads INTO our context: the API server must be trusted by the kubeconfig's CA only.
        conn.cert_reqs = "CERT_REQUIRED" if verify else "CERT_NONE"
        conn.ca_certs = conn.ca_cert_dir = None


def _transport_failure(exc: requests.RequestException, server: str, api: ApiSettings
                       ) -> Failure:
    """An UNREACHABLE failure that says what happened, without the exception's noise."""
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            detail = (f"TLS verification of {server} failed: its certificate is not trusted "
                      "by the configured CA, or does not name this host")
        else:
            detail = f"TLS handshake with {server} failed (client certificate refused?)"
    elif isinstance(exc, requests.exceptions.ConnectTimeout):
        detail = f"no connection to {server} within {api.connect_timeout:g} s"
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        detail = f"no answer from {server} within {api.read_timeout:g} s (read timeout)"
    elif "refused" in text.lower():
        detail = f"connection to {server} refused"
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.ConnectionError):
        detail = f"connection to {server} failed or was cut"
    else:
        detail = f"request to {server} failed ({type(exc).__name__})"
    return Failure("unreachable", ApiProblem.UNREACHABLE, detail)


class ApiClient:
    """Requests for one set of credentials on one session."""

    def __init__(self, creds: Credentials, api: ApiSettings, session: requests.Session) -> None:
        self.creds, self.api, self.session = creds, api, session
        session.trust_env = False  # no proxies or .netrc credentials from the environment
        session.verify = creds.ssl_context.verify_mode != 0  # CERT_NONE only with --insecure
        session.mount("https://", _TlsAdapter(creds.ssl_context))
        session.headers.update({"User-Agent": f"kubelet-cert-agent/{__version__}",
                                "Accept": "application/json"})
        self._lock = threading.Lock()
        self._inflight: requests.Response | None = None
        self.aborted = False

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds.token}"} if self.creds.token else {}

    def _send(self, method: str, path: str, *, params: dict[str, str] | None = None,
              body: bytes | None = None, read_timeout: float | None = None) -> requests.Response:
        """One request with its body still to read; ApiFailure on transport or HTTP errors."""
        timeout = (self.api.connect_timeout, read_timeout or self.api.read_timeout)
        headers = self._headers()
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            resp = self.session.request(method, self.creds.server + path, params=params,
                                        data=body, headers=headers, timeout=timeout,
                                        stream=True, allow_redirects=False)
        except requests.RequestException as exc:
            raise ApiFailure(_transport_failure(exc, self.creds.server, self.api)) from None
        if resp.status_code >= 300:
            with resp:
                payload = self._read(resp)
            raise ApiFailure(classify_status(resp.status_code, payload,
                                             resp.headers.get("Retry-After")))
        return resp

    def _read(self, resp: requests.Response) -> bytes:
        try:
            data = resp.raw.read(MAX_BODY + 1, decode_content=True)
        except Exception as exc:  # urllib3/ssl/socket errors (ReadTimeoutError, ProtocolError)
            raise ApiFailure(_read_failure(exc, self.creds.server)) from None
        if len(data) > MAX_BODY:
            raise ApiFailure(Failure("bad-response", ApiProblem.BAD_RESPONSE,
                                     f"answer larger than {MAX_BODY} bytes"))
        return data

    def list_page(self, continue_token: str | None = None,
                  signer: str = SERVING_SIGNER) -> ListPage:
        """One page of ``signer``'s CSRs (all nodes': filtering on username is client-side)."""
        params = {"fieldSelector": f"spec.signerName={signer}", "limit": str(PAGE_SIZE)}
        if continue_token:
            params["continue"] = continue_token
        with self._send("GET", CSR_PATH, params=params) as resp:
            body = self._read(resp)
        try:
            return parse_list(body)
        except ShapeError as exc:
            raise ApiFailure(shape_failure(exc, "CSR list")) from None

    def call(self, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
        """One request whose answer is a JSON object; ApiFailure otherwise."""
        with self._send(method, path, body=body) as resp:
            data = self._read(resp)
        try:
            return load_json(data)
        except ShapeError as exc:
            raise ApiFailure(shape_failure(exc, path)) from None

    def review(self) -> tuple[str | None, tuple[str, ...]] | None:
        """Who the API server thinks we are; None when the server has no SelfSubjectReview."""
        try:
            with self._send("POST", REVIEW_PATH, body=REVIEW_BODY) as resp:
                body = self._read(resp)
        except ApiFailure as exc:
            if exc.failure.status_code == 404:  # API server older than 1.28: nothing to ask
                return None
            raise
        try:
            return parse_identity(body)
        except ShapeError as exc:
            raise ApiFailure(shape_failure(exc, "SelfSubjectReview")) from None

    def open_watch(self, resource_version: str, timeout_seconds: int) -> requests.Response:
        """Start a watch from ``resource_version``; read it with ``events``, then ``finish``."""
        params = {"fieldSelector": f"spec.signerName={SERVING_SIGNER}", "watch": "1",
                  "allowWatchBookmarks": "true", "resourceVersion": resource_version,
                  "timeoutSeconds": str(timeout_seconds)}
        with self._lock:
            self.aborted = False
        resp = self._send("GET", CSR_PATH, params=params,
                          read_timeout=timeout_seconds + WATCH_MARGIN)
        with self._lock:
            self._inflight = resp
            aborted = self.aborted
        if aborted:  # abort() came while the request was being sent
            self.abort()
        return resp

    def finish(self, resp: requests.Response) -> None:
        with self._lock:
            self._inflight = None
        resp.close()

    def events(self, resp: requests.Response) -> Iterator[WatchEvent]:
        """The events of an open watch, until the server closes it (ApiFailure if cut)."""
        try:
            for line in resp.iter_lines(chunk_size=None):
                if not line.strip():
                    continue
                try:
                    yield parse_watch_line(line)
                except ShapeError as exc:
                    raise ApiFailure(shape_failure(exc, "watch event")) from None
        except ApiFailure:
            raise
        except requests.RequestException as exc:
            raise ApiFailure(_transport_failure(exc, self.creds.server, self.api)) from None
        except Exception as exc:  # urllib3/ssl errors surface unwrapped from a cut stream
            raise ApiFailure(_read_failure(exc, self.creds.server)) from None

    def abort(self) -> None:
        """Cut the watch in progress (thread-safe); the reader sees the stream end."""
        with self._lock:
            resp, self.aborted = self._inflight, True
        sock = _socket_of(resp) if resp is not None else None
        if sock is not None:
            # shutdown (not close) wakes a reader blocked in recv() in the other thread.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def close(self) -> None:
        self.session.close()


def _read_failure(exc: BaseException, server: str) -> Failure:
    timeout = "timed out" in str(exc).lower() or isinstance(exc, TimeoutError)
    detail = (f"no data from {server} within the read timeout" if timeout
              else f"the answer from {server} was cut ({type(exc).__name__})")
    return Failure("unreachable", ApiProblem.UNREACHABLE, detail)


def _socket_of(resp: requests.Response) -> socket.socket | None:
    raw = resp.raw
    conn = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
    sock = getattr(conn, "sock", None)
    if sock is None:  # the connection may already be detached: go through the file object
        fp = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None

