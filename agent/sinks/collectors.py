"""prometheus_client collectors and registries over the agent's samples.

:class:`AgentCollector` builds fresh metric families from the immutable state
``get_state()`` returns at each ``collect()``, so a scrape never touches the disk and never
sees half an update; it is the reference (and the fallback for content types the agent does
not render itself, see :mod:`agent.sinks.prerender`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.metrics_core import Metric

from agent.health import HealthSnapshot
from agent.model import AgentState
from agent.sinks.samples import build_samples, health_metrics

_log = structlog.get_logger(__name__)


class HealthCollector:
    """A collector for :func:`health_metrics` of whatever ``get_health()`` returns."""

    def __init__(self, get_health: Callable[[], HealthSnapshot]) -> None:
        self._get_health = get_health

    def collect(self) -> Iterable[Metric]:
        return health_metrics(self._get_health())

    def describe(self) -> Iterator[Metric]:
        return iter(())


def build_metrics(state: AgentState | None) -> list[Metric]:
    """Every metric family for ``state``; only build info and status 3 when it is None."""
    return build_samples(state).metrics()



class AgentCollector:
    """A custom collector rendering whatever ``get_state()`` returns at scrape time.

    Never reads files and never raises: if ``get_state`` or rendering fails, the scrape
    still answers with build info and status 3 (UNKNOWN), and the error is logged.
    """

    def __init__(self, get_state: Callable[[], AgentState | None]) -> None:
        self._get_state = get_state

    def collect(self) -> Iterable[Metric]:
        try:
            return build_metrics(self._get_state())
        except Exception as exc:  # a scrape must answer even if a state is malformed
            _log.error("metrics_render_failed", error=f"{type(exc).__name__}: {exc}")
            return build_metrics(None)

    def describe(self) -> Iterator[Metric]:
        # Nothing to describe up front: the families depend on the state at scrape time.
        return iter(())


def registry_for(get_state: Callable[[], AgentState | None]) -> CollectorRegistry:
    """A fresh registry holding only an :class:`AgentCollector`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(get_state))
    return registry



def health_registry(health: HealthSnapshot) -> CollectorRegistry:
    """A registry of the agent-health families of ``health``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HealthCollector(lambda: health))
    return registry


def process_registry() -> CollectorRegistry:
    """prometheus_client's ``process_*`` families (descriptors, memory, CPU) of this process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProcessCollector(registry=None))
    return registry

