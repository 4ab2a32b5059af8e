"""The reduced simulated year (bench/bench_alerts.py --reduced) passes with the shipped rules.

The agent's real snapshot, checks and collector on a simulated kubelet, the real
Prometheus rule engine (promtool backfill + prometheus), an oracle for the truth: any
missed incident, false alarm or lead time below its goal fails the run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import require_tool

REPO = Path(__file__).resolve().parent.parent


def test_reduced_simulation_has_no_miss_and_no_false_alarm() -> None:
    require_tool("promtool")
    require_tool("prometheus")
    result = subprocess.run([sys.executable, str(REPO / "bench" / "bench_alerts.py"),
                             "--reduced"], capture_output=True, text=True, timeout=300,
                            check=False, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "serving-never-approved" in result.stdout  # the table really ran the scenarios
