"""The reduced simulated year (bench/bench_alerts.py --reduced) passes with the shipped rules.

The agent's real snapshot, checks and collector on a simulated kubelet, the real
Prometheus rule engine (promtool backfill + prometheus), an oracle for the truth: any
missed incident, false alarm or lead time below its goal fails the run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.sim import fleet
from bench.sim.engine import Firing
from bench.sim.oracle import Incident
from bench.sim.world import DAY, at
from tests.conftest import require_tool

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # ~13 s: CI runs it in the slow step
def test_reduced_simulation_has_no_miss_and_no_false_alarm() -> None:
    require_tool("promtool")
    require_tool("prometheus")
    result = subprocess.run([sys.executable, str(REPO / "bench" / "bench_alerts.py"),
                             "--reduced"], capture_output=True, text=True, timeout=300,
                            check=False, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "serving-never-approved" in result.stdout  # the table really ran the scenarios


def _firing(alert: str, start: float, end: float, path: str,
            severity: str = "critical") -> Firing:
    labels = (("alertname", alert), ("instance", "n1"), ("path", path),
              ("severity", severity))
    return Firing(alert, severity, labels, start, end)


def test_two_pages_at_once_for_one_cause_are_one_too_many() -> None:
    """fleet.pages: a dedicated and a generic alert paging together count twice; a page
    handing over to the next counts once; another certificate's page is another cause."""
    expiry = at(30 * DAY)
    inc = Incident("n1", "client expired", expiry, 365 * DAY,
                   path_hint="kubelet-client-current.pem")
    client = "/pki/kubelet-client-current.pem"
    handover = [_firing("KubeletClientCertificateExpiringCritical", expiry - 7 * DAY, expiry,
                        client),
                _firing("KubeletCertificateExpired", expiry + 60, expiry + DAY, client),
                _firing("KubeletCertificateExpiringCritical", expiry - DAY, expiry + DAY,
                        "/pki/kubelet-server-current.pem")]
    assert len(fleet.pages(inc, handover)) == 1
    doubled = [*handover, _firing("KubeletCertAgentFindingCritical", expiry - 2 * DAY,
                                  expiry, client)]
    assert len(fleet.pages(inc, doubled)) == 2


def test_one_alert_as_several_series_for_one_cause_is_a_duplicate() -> None:
    one = _firing("KubeletCertAgentFindingWarning", at(0), at(DAY), "/x.pem", "warning")
    per_serial = Firing(one.alert, one.severity, (*one.labels, ("serial", "1f")),
                        one.start, one.end)
    assert fleet.duplicates([one]) == []
    assert len(fleet.duplicates([one, per_serial])) == 1
