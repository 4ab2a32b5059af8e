"""The connection layer of the HTTP endpoint: bounded, deadline-driven, quiet.

``http.server`` gives every connection a thread that blocks on each header line: ~1,000
slow clients exhausted the agent's descriptors, accept() spun, and each timed-out client
wrote a log line (issue 13). This server is one asyncio event loop in one thread (stdlib,
no new dependency): a waiting connection costs a socket and a small coroutine, not a
thread, and

- at most ``MAX_CONNECTIONS`` are held; at the cap the connection that has waited longest
  for its request is closed at once (a slow client cannot crowd out a scrape that sends
  its request right away), or the new one when every held connection is being answered;
- a request's line and headers must arrive within ``REQUEST_DEADLINE`` seconds of its
  first byte, however slowly they trickle, and an idle keep-alive connection is closed
  after ``IDLE_TIMEOUT``; an answer must be taken within ``WRITE_DEADLINE``;
- responses are computed by a small fixed pool (``WORKERS`` threads), never on the loop;
- the listen backlog is ``BACKLOG`` (``http.server``'s is 5);
- nothing is logged per connection: each closed-without-answer is counted in
  ``kubelet_cert_agent_http_rejected_total{reason}``.

Only GET and HEAD without a body are served; anything else gets 400/405 and is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus

MAX_CONNECTIONS = 64
WORKERS = 2
BACKLOG = 1024
REQUEST_DEADLINE = 5.0
IDLE_TIMEOUT = 60.0
WRITE_DEADLINE = 10.0
MAX_HEAD_BYTES = 16384
ACCEPT_RETRY_SECONDS = 0.1


@dataclass(frozen=True)
class Response:
    status: HTTPStatus
    content_type: str
    body: bytes


Respond = Callable[[str, str], Response]  # (path, Accept) -> response
Count = Callable[[str], None]  # a rejected connection, by reason


@dataclass(eq=False)
class _Conn:
    since: float  # when it started waiting for its current request
    waiting: bool = True
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def bind(host: str, port: int) -> socket.socket:
    """A listening, non-blocking TCP socket (raises OSError: in use, not local)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class BoundedServer:
    """Serves ``respond`` on an already bound socket in one background thread."""

    def __init__(self, sock: socket.socket, respond: Respond, rejected: Count) -> None:
        self._sock = sock
        self._respond = respond
        self._rejected = rejected
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="http-worker")
        self._conns: set[_Conn] = set()
        self._loop = asyncio.new_event_loop()
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._thread.start()
        self._started.wait(5)

    @property
    def connections(self) -> int:
        """Connections held now (for tests and the bench)."""
        return len(self._conns)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        acceptor = asyncio.create_task(self._accept_loop())
        self._started.set()
        await self._stopping.wait()
        acceptor.cancel()
        tasks = [c.task for c in self._conns if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.wait([acceptor, *tasks], timeout=0.5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _accept_loop(self) -> None:
        """Accept one connection at a time, so the cap holds before a descriptor is kept.

        (``asyncio.start_server`` accepts up to the whole backlog at once: 150 waiting
        clients were 150 descriptors before a single one could be refused.)
        """
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(self._sock)
            except OSError as exc:
                # Out of descriptors (another part of the agent, or the host): wait a
                # little instead of spinning on a listening socket that stays readable.
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                continue
            if len(self._conns) >= MAX_CONNECTIONS and not self._evict_one():
                self._rejected("too_many_connections")
                sock.close()
                continue
            with contextlib.suppress(OSError):  # two writes per answer: no Nagle delay
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(loop.time())
            self._conns.add(conn)
            conn.task = asyncio.create_task(self._connection(conn, sock))
            # An accept that finds a client waiting does not yield: let the evicted
            # connections close (their descriptors free) before the next accept.
            await asyncio.sleep(0)

    def shutdown(self, timeout: float = 1.0) -> None:
        """Stop accepting, close every connection and the socket; wait up to ``timeout``."""
        stopping = self._stopping
        if stopping is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop has already stopped
                self._loop.call_soon_threadsafe(stopping.set)
        self._thread.join(timeout)
        self._sock.close()

    # -- one connection ---------------------------------------------------------------

    async def _connection(self, conn: _Conn, sock: socket.socket) -> None:
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_HEAD_BYTES)
            await self._serve(reader, writer, conn)
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or we closed it: nothing to answer
        finally:
            self._conns.discard(conn)
            if writer is not None:
                writer.transport.abort()
            else:
                sock.close()

    def _evict_one(self) -> bool:
        """Close the connection that has waited longest for its request; False if none."""
        waiting = [c for c in self._conns if c.waiting]
        if not waiting:
            return False
        oldest = min(waiting, key=lambda c: c.since)
        self._conns.discard(oldest)
        self._rejected("too_many_connections")
        if oldest.task is not None:
            oldest.task.cancel()
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     conn: _Conn) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn.waiting, conn.since = True, loop.time()
            try:
                first = await asyncio.wait_for(reader.readexactly(1), IDLE_TIMEOUT)
            except TimeoutError:
                return  # an idle keep-alive connection: closing it is no rejection
            try:
                head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
                                                      REQUEST_DEADLINE)
            except TimeoutError:
                self._rejected("deadline")
                return
            except asyncio.LimitOverrunError:
                self._rejected("bad_request")  # counted first: the client may look at once
                await self._send(writer, _plain(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE),
                                 head_only=False, close=True)
                return
            conn.waiting = False
            request = _parse(head)
            if isinstance(request, HTTPStatus):
                self._rejected("bad_request")
                await self._send(writer, _plain(request), head_only=False, close=True)
                return
            method, path, accept, keep_alive = request
            answer = await loop.run_in_executor(self._pool, self._respond, path, accept)
            await self._send(writer, answer, head_only=method == "HEAD", close=not keep_alive)
            if not keep_alive:
                return

    async def _send(self, writer: asyncio.StreamWriter, answer: Response, *, head_only: bool,
                    close: bool) -> None:
        head = (f"HTTP/1.1 {answer.status.value} {answer.status.phrase}\r\n"
                f"Content-Type: {answer.content_type}\r\n"
                f"Content-Length: {len(answer.body)}\r\n"
                + ("Connection: close\r\n" if close else "") + "\r\n").encode("ascii")
        writer.write(head if head_only else head + answer.body)
        try:
            await asyncio.wait_for(writer.drain(), WRITE_DEADLINE)
        except TimeoutError:
            self._rejected("deadline")
            raise OSError("client did not read the answer in time") from None


def _plain(status: HTTPStatus) -> Response:
    return Response(status, "text/plain; charset=utf-8",
                    f"{status.value} {status.phrase}\n".encode())


def _parse(head: bytes) -> tuple[str, str, str, bool] | HTTPStatus:
    """(method, path, Accept, keep-alive) of a request head, or the error status to send."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return HTTPStatus.BAD_REQUEST
    method, path, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return HTTPStatus.BAD_REQUEST
        headers[name.lower()] = value.strip()
    if method not in ("GET", "HEAD"):
        return HTTPStatus.METHOD_NOT_ALLOWED
    if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
        return HTTPStatus.BAD_REQUEST  # a GET with a body: we do not read bodies
    connection = headers.get("connection", "").lower()
    keep_alive = (connection != "close") if version == "HTTP/1.1" else connection == "keep-alive"
    return method, path, headers.get("accept", ""), keep_alive
