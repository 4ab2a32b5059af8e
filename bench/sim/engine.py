"""The real rule engine: promtool backfills the series, a real Prometheus evaluates the rules.

``promtool tsdb create-blocks-from openmetrics`` turns the simulated series into TSDB
blocks; a ``prometheus`` server (loopback, ephemeral port, look-back widened to match the
sparse series) opens them, and each shipped alert's ``expr`` is evaluated by its PromQL
engine with ``query_range`` at the rule-evaluation step (1 minute) over the whole run,
every scenario at once (a ``scenario`` label keeps them apart). The only
rule-manager semantics applied here is ``for:``: an alert fires once its expression has
returned the same series at every evaluation for that long.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.sim.series import LOOKBACK

STEP = 60  # seconds: Prometheus' usual rule evaluation interval
MAX_POINTS = 10_000  # per series per query (Prometheus refuses more than 11,000)


@dataclass(frozen=True)
class Rule:
    name: str
    expr: str
    hold: float  # the rule's ``for:``, seconds
    severity: str


@dataclass(frozen=True)
class Firing:
    """One firing episode of an alert: [start, end) in Unix seconds."""

    alert: str
    severity: str
    labels: tuple[tuple[str, str], ...]
    start: float
    end: float

    def label(self, name: str) -> str:
        return dict(self.labels).get(name, "")


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """A Prometheus duration (``1h30m``, ``5m``, ``0s``) in seconds."""
    total = 0.0
    for number, unit in re.findall(r"(\d+)(ms|[smhdwy])", text):
        total += int(number) * _UNITS[unit]
    return total


def load_rules(path: Path) -> list[Rule]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return [Rule(r["alert"], r["expr"].strip(), parse_duration(str(r.get("for", "0s"))),
                 r.get("labels", {}).get("severity", "none"))
            for g in groups for r in g["rules"] if "alert" in r]


def metric_names(rules: Iterable[Rule]) -> frozenset[str]:
    """Every metric name the rules read (the families worth exporting)."""
    names: set[str] = set()
    for rule in rules:
        names.update(re.findall(r"\b(kubelet_cert_agent_[a-z_]+|up)\b", rule.expr))
    return frozenset(names)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """A real Prometheus over backfilled blocks, stopped on exit."""

    def __init__(self, openmetrics: Iterable[str], workdir: Path) -> None:
        self.dir = workdir
        source = workdir / "series.om"
        with source.open("w") as out:
            out.writelines(openmetrics)
        data = workdir / "data"
        subprocess.run([_tool("promtool"), "tsdb", "create-blocks-from", "openmetrics",
                        "--max-block-duration=87600h", str(source), str(data)],
                       check=True, capture_output=True, timeout=300)
        source.unlink()
        config = workdir / "prometheus.yml"
        config.write_text("global: {}\n")
        self.port = _free_port()
        self._proc = subprocess.Popen(
            [_tool("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={data}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=100y", f"--query.lookback-delta={LOOKBACK}",
             "--query.max-samples=200000000", "--log.level=error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()

    def _wait_ready(self) -> None:
        for _ in range(600):  # bounded: 60 s
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self._proc.poll() is not None:
                raise RuntimeError("prometheus exited at start")
            time.sleep(0.1)
        raise RuntimeError("prometheus did not become ready")

    def query_range(self, query: str, start: float, end: float) -> list[dict[str, object]]:
        params = urllib.parse.urlencode({"query": query, "start": start, "end": end,
                                         "step": STEP})
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/v1/query_range",
                                         data=params.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=300) as r:  # noqa: S310 - loopback http
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(f"query failed: {body}")
        return list(body["data"]["result"])

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (Debian: apt-get install prometheus)")
    return found


def _chunks(start: float, end: float) -> Iterator[tuple[float, float]]:
    t = start
    while t <= end:
        stop = min(end, t + STEP * (MAX_POINTS - 1))
        yield t, stop
        t = stop + STEP


def _episodes(rule: Rule, labels: tuple[tuple[str, str], ...],
              times: list[float]) -> Iterator[Firing]:
    """Firing episodes from the evaluation instants at which ``expr`` returned the series."""
    run_start = previous = None
    for t in [*times, None]:
        if t is not None and previous is not None and t - previous <= STEP:
            previous = t
            continue
        if run_start is not None and previous is not None:
            fire = run_start + STEP * -(-rule.hold // STEP)  # first evaluation at/after hold
            if fire <= previous:
                yield Firing(rule.name, rule.severity, labels, fire, previous + STEP)
        run_start = previous = t


def evaluate(rules: list[Rule], openmetrics: Iterable[str], start: float,
             end: float, present: frozenset[str] | None = None) -> list[Firing]:
    """Every firing episode of every rule over [start, end].

    ``present``: the metric names the series hold; a rule reading none of them (and not
    built on ``absent()``) returns nothing whatever the instant, so it is not queried."""
    if present is not None:
        rules = [r for r in rules if "absent(" in r.expr or metric_names([r]) & present]
    workdir = Path(tempfile.mkdtemp(prefix="sim-prom-"))
    prom = None
    try:
        prom = Prometheus(openmetrics, workdir)
        jobs = [(r, c) for r in rules for c in _chunks(start, end)]
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            parts = list(pool.map(lambda j: (j[0], prom.query_range(j[0].expr, *j[1])), jobs))
    finally:
        if prom is not None:
            prom.close()
        shutil.rmtree(workdir, ignore_errors=True)
    points: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}
    for rule, part in parts:
        for result in part:
            metric = dict(result["metric"])  # type: ignore[call-overload]
            metric.pop("__name__", None)
            metric.update({"alertname": rule.name, "severity": rule.severity})
            key = (rule.name, tuple(sorted(metric.items())))
            values: list[list[object]] = result["values"]  # type: ignore[assignment]
            points.setdefault(key, []).extend(float(str(v[0])) for v in values)
    by_name = {r.name: r for r in rules}
    firings: list[Firing] = []
    for (name, labels), times in points.items():
        firings.extend(_episodes(by_name[name], labels, sorted(set(times))))
    return sorted(firings, key=lambda f: (f.start, f.alert))
