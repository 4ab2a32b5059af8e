"""What the kubelet really serves: one TLS handshake with its serving port.

The kubelet requests a client certificate but does not require one, so an anonymous
handshake shows the served chain (no verification: the point is to see what is served,
trusted or not). With serverTLSBootstrap on and no serving certificate yet, every
handshake fails with the TLS alert ``internal_error`` (``remote error: tls: internal
error`` in ``kubectl logs``). Refused, timed out, or not TLS at all means the kubelet is
down or listens elsewhere: reported as such, never as a certificate problem.

``Prober.probe`` never raises and lets at most one handshake run at a time: a caller
that comes while one is in flight gets the last result instead of a second connection.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from datetime import datetime

from agent.model import CertFile, ProbeOutcome, ProbeResult, Role
from agent.sources.parse import parse_bundle

DEFAULT_TIMEOUT = 3.0
_INTERNAL_ERROR = "TLSV1_ALERT_INTERNAL_ERROR"


def endpoint_url(host: str, port: int) -> str:
    """The served certificate's ``path``: where it was seen."""
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def _context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # We look at whatever is served, trusted or not; nothing is sent over this connection.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _chain_der(tls: ssl.SSLSocket) -> list[bytes]:
    """Every certificate the server sent, leaf first (the leaf alone if unavailable)."""
    sslobj = getattr(tls, "_sslobj", None)
    getter = getattr(sslobj, "get_unverified_chain", None)  # public only from Python 3.13
    if getter is not None:
        try:
            chain = getter() or []
            return [c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                    for c in chain]
        except Exception:  # noqa: S110 - fall back to the leaf
            pass
    leaf = tls.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _served(url: str, ders: list[bytes]) -> CertFile:
    pem = b"".join(ssl.DER_cert_to_PEM_cert(d).encode() for d in ders)
    parsed = parse_bundle(pem, keep_x509=False)
    return CertFile(role=Role.SERVED, path=url, size=sum(map(len, ders)),
                    read_error=parsed.error, chain=parsed.certificates, leaf=parsed.leaf,
                    self_signed=parsed.self_signed)


class _Failed(Exception):
    def __init__(self, outcome: ProbeOutcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome, self.detail = outcome, detail


def _connect(host: str, port: int, endpoint: str, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise _Failed(ProbeOutcome.TIMEOUT,
                      f"no connection to {endpoint} within {timeout:g} s") from None
    except ConnectionRefusedError:
        raise _Failed(ProbeOutcome.REFUSED, f"connection to {endpoint} refused") from None
    except OSError as exc:
        raise _Failed(ProbeOutcome.REFUSED, f"cannot connect to {endpoint} "
                      f"({exc.strerror or type(exc).__name__})") from None


def _handshake(raw: socket.socket, endpoint: str, timeout: float) -> list[bytes]:
    """The served chain; the socket's timeout bounds the whole handshake."""
    try:
        with _context().wrap_socket(raw, server_hostname=None) as tls:
            return _chain_der(tls)
    except ssl.SSLError as exc:
        reason = str(getattr(exc, "reason", "") or "")
        if reason == _INTERNAL_ERROR:
            raise _Failed(ProbeOutcome.INTERNAL_ERROR,
                          f"{endpoint} answers the TLS handshake with internal_error "
                          "(no serving certificate loaded)") from None
        raise _Failed(ProbeOutcome.NOT_TLS, f"{endpoint} is not a TLS server "
                      f"({reason or type(exc).__name__})") from None
    except TimeoutError:
        raise _Failed(ProbeOutcome.TIMEOUT, f"{endpoint} accepted the connection but no TLS "
                      f"handshake within {timeout:g} s") from None
    except OSError as exc:  # reset or closed during the handshake
        raise _Failed(ProbeOutcome.NOT_TLS, f"{endpoint} closed the connection during the "
                      f"TLS handshake ({exc.strerror or type(exc).__name__})") from None


def probe_once(host: str, port: int, now: datetime,
               timeout: float = DEFAULT_TIMEOUT) -> ProbeResult:
    """One handshake to ``host:port`` within ``timeout`` seconds. Never raises."""
    endpoint = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    started = time.monotonic()
    outcome, served = ProbeOutcome.SERVED, None
    try:
        with _connect(host, port, endpoint, timeout) as raw:
            ders = _handshake(raw, endpoint, timeout)
        if not ders:
            raise _Failed(ProbeOutcome.NOT_TLS,
                          f"{endpoint} completed a handshake without a certificate")
        served = _served(endpoint_url(host, port), ders)
        detail = f"{endpoint} serves {len(ders)} certificate(s)"
    except _Failed as failed:
        outcome, detail = failed.outcome, failed.detail
    except Exception as exc:  # the contract is "never raises"
        outcome, detail = ProbeOutcome.NOT_TLS, f"probe of {endpoint} failed " \
            f"({type(exc).__name__})"
    return ProbeResult(endpoint=endpoint, outcome=outcome, at=now, detail=detail,
                       served=served, duration_seconds=time.monotonic() - started)


class Prober:
    """At most one probe in flight; a caller that would start a second gets the last one."""

    def __init__(self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._lock = threading.Lock()
        self._last: ProbeResult | None = None
        self.probes_total = 0

    @property
    def last(self) -> ProbeResult | None:
        return self._last

    def probe(self, now: datetime) -> ProbeResult | None:
        if not self._lock.acquire(blocking=False):
            return self._last
        try:
            self._last = probe_once(self.host, self.port, now, self.timeout)
            self.probes_total += 1
            return self._last
        finally:
            self._lock.release()
