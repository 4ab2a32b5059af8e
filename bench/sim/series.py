"""The agent's exposition text -> sparse time series -> OpenMetrics for ``promtool``.

Extraction is generic: the exposition is parsed with prometheus_client's own parser and
every family an alert rule names is kept, whatever its labels (so a change of the
exposition's shape keeps working). Samples are written sparsely: at each change and
at least every ``REFRESH`` while a series exists; the engine's Prometheus runs with a
look-back of ``LOOKBACK`` so a query sees the last published value, as if scraped
continuously. A series that disappears gets one NaN sample (OpenMetrics text cannot
carry Prometheus' staleness marker): comparisons and arithmetic drop it at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

REFRESH = 3 * 3600.0  # seconds between repeated samples of an unchanged series
LOOKBACK = "4h"  # must exceed REFRESH
# The daemon re-evaluates every 5 minutes; its last-evaluation timestamp is written every
# 7 minutes here, so any 15-minute window holds two different values while the agent
# lives (what KubeletCertAgentStale's changes() needs), as with a real 1-minute scrape.
HEARTBEAT = 420.0

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]


def parse_exposition(text: str, keep: frozenset[str],
                     extra: dict[str, str]) -> dict[SeriesKey, float]:
    """Samples of the kept families, with ``extra`` labels (instance, job, scenario)."""
    out: dict[SeriesKey, float] = {}
    # Only the kept families go through the (slow, pure-Python) parser.
    lines = [line for line in text.splitlines()
             if _name(line) in keep]
    for family in text_string_to_metric_families("\n".join(lines) + "\n"):
        for sample in family.samples:
            if sample.name not in keep:
                continue
            labels = {**sample.labels, **extra}
            out[(sample.name, tuple(sorted(labels.items())))] = float(sample.value)
    return out


def _name(line: str) -> str:
    """The metric name a sample, HELP or TYPE line is about."""
    if line.startswith("#"):
        parts = line.split(" ", 3)
        return parts[2] if len(parts) > 2 else ""
    end = len(line)
    for stop in ("{", " "):
        at = line.find(stop)
        if 0 <= at < end:
            end = at
    return line[:end]


@dataclass
class _Series:
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


class SeriesStore:
    """Every exported series of a run, sparse, ready to be written as OpenMetrics."""

    def __init__(self) -> None:
        self._series: dict[SeriesKey, _Series] = {}
        self._live: dict[str, dict[SeriesKey, float]] = {}  # per source (node)
        self._last_tick = -math.inf
        self.heartbeat_name = ""  # the family whose value is "now": written sparsely

    def publish(self, source: str, at: float, samples: dict[SeriesKey, float]) -> None:
        """What ``source`` exposes from ``at`` on (replacing its previous set)."""
        previous = self._live.get(source, {})
        for key, value in samples.items():
            s = self._series.setdefault(key, _Series())
            old = previous.get(key)
            if old is None or not s.times or (old != value and not (
                    key[0] == self.heartbeat_name and at - s.times[-1] < HEARTBEAT)) or (
                    at - s.times[-1] >= REFRESH):
                self._append(s, at, value)
        for key in previous.keys() - samples.keys():
            self._append(self._series[key], at, math.nan)
        self._live[source] = dict(samples)

    def refresh(self, until: float) -> None:
        """Repeat every live series up to ``until`` (call before writing)."""
        for samples in self._live.values():
            for key, value in samples.items():
                s = self._series[key]
                t = s.times[-1] + REFRESH
                while t <= until:
                    self._append(s, t, value)
                    t += REFRESH

    def heartbeat(self, source: str, at: float, name: str, value: float) -> None:
        """``source`` re-published at ``at``: only the ``name`` series change (to ``value``,
        the node's clock)."""
        for key in self._live.get(source, {}):
            if key[0] == name:
                self._live[source][key] = value
                s = self._series[key]
                if at - s.times[-1] >= HEARTBEAT:
                    self._append(s, at, value)

    def tick(self, at: float) -> None:
        """Keep unchanged series fresh: repeat those last written ``REFRESH`` ago, and the
        heartbeat family every ``HEARTBEAT`` (a rule reads it with a range function, which
        sees only the samples inside its window: a frozen textfile is scraped every minute)."""
        for samples in self._live.values():
            for key, value in samples.items():
                if key[0] == self.heartbeat_name:
                    s = self._series[key]
                    if at - s.times[-1] >= HEARTBEAT and not math.isnan(s.values[-1]):
                        self._append(s, at, value)
        if at - self._last_tick < REFRESH / 4:
            return
        self._last_tick = at
        for samples in self._live.values():
            for key, value in samples.items():
                s = self._series[key]
                if at - s.times[-1] >= REFRESH:
                    self._append(s, at, value)

    @staticmethod
    def _append(s: _Series, at: float, value: float) -> None:
        if s.times and at <= s.times[-1]:
            s.values[-1] = value  # same instant: the later publication wins
            return
        s.times.append(at)
        s.values.append(value)

    def merge(self, other: SeriesStore) -> None:
        """Add another run's series (scenario labels keep them apart)."""
        self._series.update(other._series)

    def names(self) -> frozenset[str]:
        """Every metric name that has at least one sample."""
        return frozenset(key[0] for key in self._series)

    def sample_count(self) -> int:
        return sum(len(s.times) for s in self._series.values())

    def openmetrics(self) -> Iterable[str]:
        """OpenMetrics text, families grouped, each series in time order, ``# EOF``."""
        by_name: dict[str, list[SeriesKey]] = {}
        for key in self._series:
            by_name.setdefault(key[0], []).append(key)
        for name in sorted(by_name):
            yield f"# TYPE {name} gauge\n"
            for key in sorted(by_name[name]):
                labels = ",".join(f'{k}="{_escape(v)}"' for k, v in key[1])
                s = self._series[key]
                for t, v in zip(s.times, s.values, strict=True):
                    yield f"{name}{{{labels}}} {_value(v)} {t:.3f}\n"
        yield "# EOF\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(v: float) -> str:
    return "NaN" if math.isnan(v) else repr(v)
