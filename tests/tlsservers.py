"""Real servers on 127.0.0.1 (ephemeral port) standing in for the kubelet's serving port.

``TlsServer`` completes TLS handshakes with a given certificate chain, requesting but
not requiring a client certificate (as the kubelet does); ``internal_error=True`` makes
every handshake fail with the TLS alert internal_error (a kubelet with serverTLSBootstrap
and no certificate yet). ``RawServer`` accepts and then: never answers ("silent"),
speaks plain HTTP ("http") or sends bytes that are not TLS ("garbage").
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from agent import pkigen

Mode = Literal["silent", "http", "garbage"]


class _Loop:
    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted += 1
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> _Loop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TlsServer(_Loop):
    def __init__(self, leaf: pkigen.Issued | None = None,
                 chain: Sequence[pkigen.Issued] = (), *, internal_error: bool = False) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.verify_mode = ssl.CERT_OPTIONAL  # requested, not required: like the kubelet
        if internal_error:
            self.ctx.sni_callback = lambda *_: ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        if leaf is not None:
            with tempfile.TemporaryDirectory() as tmp:
                pem = Path(tmp) / "served.pem"
                pem.write_bytes(leaf.cert_pem() + b"".join(c.cert_pem() for c in chain)
                                + leaf.key_pem())
                self.ctx.load_cert_chain(pem)
            # the CA list sent with the client-certificate request, as the kubelet's clientCAFile
            self.ctx.load_verify_locations(cadata=(chain[-1] if chain else leaf).cert_pem()
                                           .decode())
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)  # until the client hangs up
        except (ssl.SSLError, OSError):
            pass


class RawServer(_Loop):
    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            if self.mode == "silent":
                self._stop.wait(10)
            elif self.mode == "http":
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
            else:
                conn.sendall(b"\x00\xffthis is not a TLS record\r\n" * 4)
