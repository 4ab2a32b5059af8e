"""A real local HTTPS kube-apiserver stand-in that replays recorded responses.

``KubeApi`` listens on 127.0.0.1 (port chosen by the OS) with TLS from a test CA made by
``agent.pkigen`` and, by default, requires a client certificate (the agent's is
``CN=system:node:node1, O=system:nodes``). It answers each request from a script: per
kind of request ("list", "watch", "review") a queue of ``Reply`` objects, the last one
repeating. Replies replay ``tests/fixtures/kube-api/`` byte for byte, with their
recorded status code and headers; watch streams go out chunked, one event per chunk.
Faults: synthesised Status bodies (429 with Retry-After, 500), malformed JSON, a stream
cut in the middle of an event, a request that is never answered.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from agent import pkigen
from agent.config import ApiSettings

FIXTURES = Path(__file__).parent / "fixtures" / "kube-api"
CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
REVIEW_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
NODE_PATH = "/api/v1/nodes/"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "date", "keep-alive"}


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    stream: tuple[bytes, ...] | None = None  # chunked, one chunk per item (watch events)
    cut: bool = False  # end the stream by dropping the connection, without the last chunk
    hold: bool = False  # keep the stream open until the server is released or stopped
    hang: bool = False  # read the request and never answer
    name: str = "synthesised"


def _headers_of(name: str) -> tuple[int, tuple[tuple[str, str], ...]]:
    lines = (FIXTURES / "headers" / f"{name}.headers").read_text().splitlines()
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            if key.strip().lower() not in HOP_BY_HOP:
                headers.append((key.strip(), value.strip()))
    return status, tuple(headers)


def recorded(name: str, **changes: Any) -> Reply:
    """The recorded response ``name``: status, headers and body exactly as recorded."""
    body = (FIXTURES / name).read_bytes()
    status, headers = _headers_of(name)
    if name.endswith(".jsonl"):
        return Reply(status, b"", headers, tuple(body.splitlines(keepends=True)),
                     name=name, **changes)
    return Reply(status, body, headers, name=name, **changes)


def status_reply(code: int, reason: str, message: str,
                 headers: Sequence[tuple[str, str]] = ()) -> Reply:
    """A synthesised Status body, shaped like the recorded ones."""
    body = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {},
                       "status": "Failure", "message": message, "reason": reason,
                       "code": code}, separators=(",", ":")).encode()
    return Reply(code, body, (("Content-Type", "application/json"), *headers))


def list_reply(items: Sequence[dict[str, Any]], resource_version: str,
               continue_token: str | None = None) -> Reply:
    """A synthesised CertificateSigningRequestList page made of recorded items."""
    meta: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    doc = {"kind": "CertificateSigningRequestList", "apiVersion": "certificates.k8s.io/v1",
           "metadata": meta, "items": list(items)}
    return Reply(200, json.dumps(doc).encode())


def cut_stream(name: str, whole_lines: int) -> Reply:
    """The first ``whole_lines`` events of a recorded stream, then half of the next one,
    then the connection drops."""
    lines = recorded(name).stream or ()
    partial = lines[whole_lines][: len(lines[whole_lines]) // 2]
    return Reply(200, b"", recorded(name).headers, (*lines[:whole_lines], partial), cut=True,
                 name=f"{name} (cut)")


def fixture_json(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_bytes())
    return doc


@dataclass(frozen=True)
class Seen:
    """A request as the server received it (never the token itself)."""

    method: str
    path: str
    query: dict[str, str]
    client_cn: str | None
    bearer: bool
    kind: str


def closed_port() -> int:
    """A 127.0.0.1 port with nothing listening (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes: with Nagle on, each keep-alive response
    # waits for the client's delayed ACK (~40 ms), which made paginated tests crawl.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _kind(self, path: str, query: dict[str, str], bearer: bool) -> str:
        if path == CSR_PATH and self.command == "GET":
            kind = "watch" if query.get("watch") in ("1", "true") else "list"
            client = CLIENT_SIGNER in query.get("fieldSelector", "")
            return f"client-{kind}" if client else kind
        if path == REVIEW_PATH and self.command == "POST":
            return "bootstrap-review" if bearer else "review"
        if path == SSAR_PATH and self.command == "POST":
            return "ssar"
        if path.startswith(NODE_PATH) and self.command == "GET":
            return "node"
        return "other"

    def _client_cn(self) -> str | None:
        cert = self.request.getpeercert() if isinstance(self.request, ssl.SSLSocket) else None
        for rdn in (cert or {}).get("subject", ()):
            for pair in rdn:
                if pair[0] == "commonName":
                    return str(pair[1])
        return None

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        auth = self.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        kind = self._kind(url.path, query, token is not None)
        cn = self._client_cn()
        self.server.api.record(Seen(self.command, url.path, query, cn, token is not None, kind))
        if cn is None and token not in self.server.api.tokens:
            self._reply(recorded("list-bad-token-401.json"))
            return
        self._reply(self.server.api.next_reply(kind))

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def _reply(self, reply: Reply) -> None:
        api = self.server.api
        if reply.hang:
            api.released.wait(30)
            self.close_connection = True
            return
        self.send_response(reply.status)
        for key, value in reply.headers:
            self.send_header(key, value)
        if reply.stream is None:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in reply.stream:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        if reply.cut:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if reply.hold:
            api.released.wait(30)
        self.wfile.write(b"0\r\n\r\n")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: KubeApi

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.do_handshake()  # in the request thread, not in accept()
        except (ssl.SSLError, OSError):
            request.close()
            return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up early are part of the tests


@dataclass
class KubeApi:
    """The fake API server and the files a client needs to reach it."""

    root: Path
    now: datetime
    require_client_cert: bool = True
    tokens: frozenset[str] = frozenset()
    seen: list[Seen] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        # Valid years before `now`: `check --at` judges the kubeconfig's CA at a fixed instant.
        self.ca = pkigen.issue("kubernetes", not_before=self.now - timedelta(days=5 * 365),
                               not_after=self.now + timedelta(days=10 * 365), usage="ca",
                               key_type="rsa")
        self.ca_file = self.root / "ca.crt"
        self.ca_file.write_bytes(self.ca.cert_pem())
        serving = pkigen.issue("kube-apiserver", issuer=self.ca, usage="server",
                               dns_names=("localhost",), ip_addresses=("127.0.0.1",),
                               not_before=self.now - timedelta(days=1),
                               not_after=self.now + timedelta(days=365))
        server_pem = self.root / "apiserver.pem"
        pkigen.write_private(server_pem, serving.cert_pem() + serving.key_pem())
        self.client = pkigen.kubelet_client(self.ca, "node1", self.now - timedelta(days=1))
        self.client_pem = pkigen.write_private(self.root / "kubelet-client-current.pem",
                                               self.client.cert_pem() + self.client.key_pem())
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(server_pem)
        ctx.load_verify_locations(self.ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_OPTIONAL
        self._lock = threading.Lock()
        self._script: dict[str, deque[Reply]] = {
            "list": deque([recorded("list-node1-signer-kubelet-serving.json")]),
            "watch": deque([recorded("watch-node1-serving-bookmarks.jsonl")]),
            "review": deque([recorded("selfsubjectreview-node1.json")]),
            "client-list": deque([recorded("list-node1-client-signer.json")]),
            "client-watch": deque([recorded("watch-node1-client-signer.jsonl")]),
            "bootstrap-review": deque([recorded("ssr-bootstrap-valid.json")]),
            "ssar": deque([recorded("ssar-node1-selfnodeclient-allowed.json")]),
            "node": deque([recorded("get-node1-node.json")]),
            "other": deque([recorded("get-node1-404.json")]),
        }
        self._httpd = _Server(("127.0.0.1", 0), _Handler, bind_and_activate=True)
        self._httpd.api = self
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True,
                                             do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._httpd.server_address[1]}"

    def stop(self) -> None:
        self.released.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def script(self, kind: str, *replies: Reply) -> None:
        """Answer the next requests of ``kind`` with ``replies`` (the last one repeats)."""
        with self._lock:
            self._script[kind] = deque(replies)

    def next_reply(self, kind: str) -> Reply:
        with self._lock:
            queue = self._script[kind]
            return queue.popleft() if len(queue) > 1 else queue[0]

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def requests(self, kind: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.kind == kind]

    def kubeconfig(self, name: str = "kubelet.conf", *, embed: bool = False,
                   server: str | None = None, extra_cluster: dict[str, Any] | None = None,
                   user: dict[str, Any] | None = None) -> Path:
        """A kubelet-style kubeconfig for this server (files, or embedded data)."""
        cluster: dict[str, Any] = {"server": server or self.url}
        if embed:
            cluster["certificate-authority-data"] = _b64(self.ca_file.read_bytes())
            user = user if user is not None else {
                "client-certificate-data": _b64(self.client.cert_pem()),
                "client-key-data": _b64(self.client.key_pem())}
        else:
            cluster["certificate-authority"] = str(self.ca_file)
            user = user if user is not None else {
                "client-certificate": str(self.client_pem), "client-key": str(self.client_pem)}
        cluster.update(extra_cluster or {})
        path = self.root / name
        path.write_text(json.dumps(kubeconfig_doc(cluster, user)))  # JSON is YAML
        return path

    def settings(self, **changes: Any) -> ApiSettings:
        base: dict[str, Any] = {"kubeconfig": self.kubeconfig(), "csr_interval": 60.0,
                                "connect_timeout": 2.0, "read_timeout": 2.0}
        base.update(changes)
        return ApiSettings(**base)


def kubeconfig_doc(cluster: dict[str, Any], user: dict[str, Any],
                   context: str = "default-context") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "default-cluster", "cluster": cluster}],
            "contexts": [{"name": context,
                          "context": {"cluster": "default-cluster", "user": "default-auth"}}],
            "users": [{"name": "default-auth", "user": user}]}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def fixture_files() -> Iterator[Path]:
    yield from sorted(p for p in FIXTURES.iterdir() if p.suffix in (".json", ".jsonl"))
