"""Each published state's exposition, rendered once before it is published.

A scrape of a published state is a dictionary lookup plus parts to write (and, for a
scraper accepting gzip, a member compressed once per state); :func:`render` gives the text
exposition for node_exporter's textfile collector (no client-side timestamps:
node_exporter refuses files that carry them).
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder

from agent.health import HealthSnapshot
from agent.model import AgentState
from agent.sinks.collectors import health_registry, registry_for
from agent.sinks.exposition import EOF, Samples
from agent.sinks.samples import build_samples

_log = structlog.get_logger(__name__)

# What a plain scraper and Prometheus (OpenMetrics 1.0.0 first) are answered with, rendered
# ahead and written by agent.sinks.exposition (same bytes, a fraction of the time).
_TEXT_0_0_4 = choose_encoder("")[1]
_OPENMETRICS_1 = choose_encoder("application/openmetrics-text;version=1.0.0")[1]
# Level 1: a 4 MB exposition in tens of milliseconds, about a tenth of its size (label
# values repeat from line to line); higher levels cost more time than they save bytes.
GZIP_LEVEL = 1


class Rendered:
    """One state's exposition in one content type, as parts written one after the other.

    ``open`` is the exposition without OpenMetrics' final ``# EOF`` (a scrape writes the
    live families after it, then the EOF); the text and OpenMetrics renderings share their
    big parts (:meth:`Samples.parts`). :meth:`gzipped` is ``open`` as one gzip member,
    compressed on first request and kept: a gzip stream may hold several members, and the
    live families follow as a member of their own.
    """

    __slots__ = ("_gzip", "_lock", "eof", "open")

    def __init__(self, open_parts: tuple[bytes, ...], *, eof: bool) -> None:
        self.open = open_parts
        self.eof = eof
        self._gzip: bytes | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, body: bytes) -> Rendered:
        """From a complete body (prometheus_client's encoders)."""
        if body.endswith(EOF):
            return cls((body[:-len(EOF)],), eof=True)
        return cls((body,), eof=False)

    @property
    def full(self) -> bytes:
        """The whole exposition (the textfile, tests): joined, so a copy."""
        return b"".join(self.open) + (EOF if self.eof else b"")

    def gzipped(self) -> bytes:
        with self._lock:  # two workers asking at once compress once
            if self._gzip is None:
                compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
                self._gzip = b"".join([*map(compressor.compress, self.open),
                                       compressor.flush()])
            return self._gzip


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
        self._entries: list[tuple[AgentState | None, dict[str, Rendered]]] = []

    def body(self, state: AgentState | None, accept: str = "") -> tuple[str, bytes]:
        """(content type, body) of ``state`` for a scraper sending ``accept``."""
        content_type, rendered = self.rendered(state, accept)
        return content_type, rendered.full

    def rendered(self, state: AgentState | None, accept: str = "") -> tuple[str, Rendered]:
        """(content type, :class:`Rendered`) of ``state`` for a scraper sending ``accept``."""
        encoder, content_type = choose_encoder(accept)
        with self._lock:
            bodies = self._bodies(state)
            found = bodies.get(content_type)
        if found is None:
            found = Rendered.of(_render(state, content_type, encoder))
            with self._lock:
                bodies[content_type] = found
        return content_type, found

    def prerender(self, state: AgentState | None) -> None:
        """Render ``state`` for the usual scrapers now, before anyone asks (one build of
        the samples for both formats; any other answer is rendered on first request)."""
        text_parts, openmetrics_parts = _samples_of(state).parts()
        text = Rendered(text_parts, eof=False)
        openmetrics = Rendered(openmetrics_parts, eof=True)
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

    def _bodies(self, state: AgentState | None) -> dict[str, Rendered]:
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

