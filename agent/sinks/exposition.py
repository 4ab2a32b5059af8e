"""Samples of metric families, and their text exposition without prometheus_client's cost.

prometheus_client renders a sample in several microseconds (OpenMetrics checks every
character of every label name); ten thousand certificates are tens of thousands of samples,
rendered twice (text and OpenMetrics) for every published state. :class:`Samples` collects
them as plain tuples and :func:`text` writes both formats directly. The output is
byte-for-byte prometheus_client's (tests/test_metrics.py compares them on every fixture),
which stays the reference and the fallback: :meth:`Samples.metrics` gives its objects for
the registry API and for any other content type a scraper asks for.

Only what the agent exports is handled: gauges and counters without timestamps, created
samples or exemplars, with names and label names in Prometheus' legacy character set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.utils import floatToGoString

Labels = tuple[tuple[str, str], ...]
# prometheus_client's own value formatting (Go's: 1.7797248e+09, +Inf), so the bytes agree.
_value: Callable[[float], str] = floatToGoString


@dataclass(frozen=True)
class Family:
    """One metric family: its name (with ``_total`` for counters), type, HELP and labels."""

    name: str
    kind: Literal["gauge", "counter"]
    help: str
    labels: tuple[str, ...] = ()

    def new(self) -> GaugeMetricFamily | CounterMetricFamily:
        """A fresh, empty prometheus_client family to add samples to."""
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.help, labels=self.labels)
        return GaugeMetricFamily(self.name, self.help, labels=self.labels)


class Samples:
    """Samples per family in insertion order, dropping duplicate label sets (Prometheus
    rejects them)."""

    def __init__(self) -> None:
        self._families: dict[Family, dict[Labels, float]] = {}

    def add(self, family: Family, value: float, labels: Sequence[str] = ()) -> None:
        """A sample whose label values are, in order, those of ``family.labels``."""
        self.add_labelled(family, value, dict(zip(family.labels, labels, strict=True)))

    def add_labelled(self, family: Family, value: float, labels: dict[str, str]) -> None:
        """A sample with these labels (any subset of names; sorted as the formats want)."""
        samples = self._families.get(family)
        if samples is None:
            samples = self._families[family] = {}
        samples.setdefault(tuple(sorted(labels.items())), value)

    def metrics(self) -> list[Metric]:
        """The same samples as prometheus_client families."""
        out: list[Metric] = []
        for family, samples in self._families.items():
            metric = family.new()
            for labels, value in samples.items():
                metric.add_sample(family.name, dict(labels), value)  # counters end in _total
            out.append(metric)
        return out

    def text(self, *, openmetrics: bool) -> bytes:
        """Text format 0.0.4, or OpenMetrics 1.0.0 (HELP escaping, counter naming, EOF)."""
        out: list[str] = []
        for family, samples in self._families.items():
            name = family.name
            if openmetrics:
                base = name.removesuffix("_total") if family.kind == "counter" else name
                help_text = _escape(family.help)
                out.append(f"# HELP {base} {help_text}\n# TYPE {base} {family.kind}\n")
            else:
                help_text = family.help.replace("\\", r"\\").replace("\n", r"\n")
                out.append(f"# HELP {name} {help_text}\n# TYPE {name} {family.kind}\n")
            for labels, value in samples.items():
                if labels:
                    pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    out.append(f"{name}{{{pairs}}} {_value(value)}\n")
                else:
                    out.append(f"{name} {_value(value)}\n")
        if openmetrics:
            out.append("# EOF\n")
        return "".join(out).encode()


def _escape(value: str) -> str:
    """A label value (or OpenMetrics HELP): backslash, newline and double quote escaped."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value
