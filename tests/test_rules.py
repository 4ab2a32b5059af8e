"""The packaged Prometheus alert rules: valid, and every alert unit-tested with promtool."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agent import codes
from agent.checks import judge
from agent.model import AgentState, CsrInfo, Policy
from agent.sinks import metrics
from tests import snapshots as hand
from tests.conftest import require_tool

PROM_DIR = Path(__file__).resolve().parent.parent / "packaging" / "prometheus"
RULES = PROM_DIR / "kubelet-cert-agent-rules.yaml"
RULE_TESTS = PROM_DIR / "kubelet-cert-agent-rules.test.yaml"
SCRAPE_CONFIG = PROM_DIR / "scrape-config.example.yaml"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("promtool"), *args], capture_output=True, text=True,
                          timeout=120, check=False, cwd=PROM_DIR)


def _alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


class TestRuleFile:
    def test_promtool_check_rules_accepts_the_rules(self) -> None:
        """`promtool check rules` parses every expression and template."""
        result = _promtool("check", "rules", RULES.name)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_promtool_unit_tests_pass(self) -> None:
        """`promtool test rules` runs the firing and not-firing cases of every alert."""
        result = _promtool("test", "rules", RULE_TESTS.name)
        assert result.returncode == 0, result.stdout + result.stderr

    @pytest.mark.parametrize("alert", [a["alert"] for a in _alerts()])
    def test_every_alert_is_tested_firing_and_not_firing(self, alert: str) -> None:
        """Each alert appears in the unit tests once with expected alerts and once without."""
        cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
                 for case in test["alert_rule_test"] if case["alertname"] == alert]
        assert any(case["exp_alerts"] for case in cases), f"{alert} never tested firing"
        assert any(not case["exp_alerts"] for case in cases), f"{alert} never tested silent"

    @pytest.mark.parametrize("alert", _alerts(), ids=lambda a: str(a["alert"]))
    def test_every_alert_has_severity_summary_and_description(self, alert: dict[str, object]
                                                               ) -> None:
        """An SRE gets a severity to route on and a description that says what to do."""
        assert alert["labels"]["severity"] in ("warning", "critical")  # type: ignore[index]
        annotations = alert["annotations"]
        assert annotations["summary"] and len(annotations["description"]) > 60  # type: ignore[index]

    def test_rules_only_use_metric_names_the_agent_exports(self) -> None:
        """A renamed metric cannot silently break an alert: every agent name used exists."""
        exported = {f.name for f in metrics.FAMILIES}
        used = set()
        for alert in _alerts():
            used |= set(re_names(str(alert["expr"])))
        assert used and used <= exported, used - exported

    def test_rules_only_use_finding_codes_that_exist(self) -> None:
        """Every `code=` an alert matches is a real finding code."""
        text = RULES.read_text()
        quoted = [c for alert in _alerts()
                  for c in re_codes(str(alert["expr"]))]
        assert quoted and set(quoted) <= codes.ALL, set(quoted) - codes.ALL
        assert "kubelet_cert_agent_finding" in text


def re_names(expr: str) -> list[str]:
    return re.findall(r"\b(kubelet_cert_agent_[a-z_]+)", expr)


def re_codes(expr: str) -> list[str]:
    found: list[str] = []
    for match in re.findall(r'code=~?"([^"]+)"', expr):
        found += match.split("|")
    return found


class TestScrapeConfig:
    def test_example_scrape_config_is_valid_prometheus_configuration(self, tmp_path: Path
                                                                      ) -> None:
        """The example jobs, wrapped in a prometheus.yml, pass `promtool check config`.

        Debian's promtool is built without Kubernetes service discovery: when it rejects
        kubernetes_sd_configs as an unknown field, the other jobs are still checked.
        """
        example = yaml.safe_load(SCRAPE_CONFIG.read_text())
        jobs = example["scrape_configs"]
        assert {job["job_name"] for job in jobs} >= {"kubelet-cert-agent"}
        result = self._check(tmp_path, jobs)
        if "kubernetes_sd_configs not found" in result.stdout + result.stderr:
            jobs = [job for job in jobs if "kubernetes_sd_configs" not in job]
            assert jobs, "no job left to check"
            result = self._check(tmp_path, jobs)
        assert result.returncode == 0, result.stdout + result.stderr

    @staticmethod
    def _check(tmp_path: Path, jobs: list[dict[str, object]]
               ) -> subprocess.CompletedProcess[str]:
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "scrape_configs": jobs}))
        return _promtool("check", "config", str(config))


class TestAlertsOnTheAgentsOwnMetrics:
    """The agent's real exposition fed to promtool: the alert follows the verdict."""

    EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # promtool's time() starts at 0

    def _state(self, *csrs: CsrInfo) -> AgentState:
        # A serving certificate issued 2 h before time() 0, valid for a year.
        serving = hand.server(hand.leaf(self.EPOCH - timedelta(hours=2),
                                        self.EPOCH + timedelta(days=365)))
        snap = hand.snapshot(hand.client(hand.leaf(self.EPOCH - timedelta(days=10))), serving,
                             taken_at=self.EPOCH, api=hand.api(*csrs, last_success=self.EPOCH))
        return AgentState(evaluation=judge(snap, self.EPOCH, Policy()))

    def _promtool_fires(self, tmp_path: Path, state: AgentState
                        ) -> subprocess.CompletedProcess[str]:
        series = []
        for family in text_string_to_metric_families(metrics.render(state).decode()):
            for sample in family.samples:
                if not (sample.name.startswith("kubelet_cert_agent_serving_csr")
                        or sample.name == metrics.FINDING.name):  # the alert reads findings
                    continue
                labels = ",".join(f'{k}="{v}"' for k, v in
                                  sorted({**sample.labels, "instance": "n1"}.items()))
                series.append({"series": f"{sample.name}{{{labels}}}",
                               "values": f"{sample.value:g}x40"})
        assert series
        test = {"rule_files": [str(RULES)], "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": [
                    {"eval_time": "30m", "alertname": "KubeletServingCsrPending",
                     "exp_alerts": []}]}]}
        path = tmp_path / "agent-metrics.test.yaml"
        path.write_text(yaml.safe_dump(test))
        return _promtool("test", "rules", str(path))

    def test_a_csr_abandoned_before_the_current_certificate_never_pages(
            self, tmp_path: Path) -> None:
        """Pending for 5 h, but the serving certificate was issued 2 h ago: history."""
        state = self._state(hand.csr("csr-old", timedelta(hours=5), now=self.EPOCH))
        assert not [f for f in state.evaluation.findings
                    if f.code == codes.SERVING_CSR_PENDING]
        result = self._promtool_fires(tmp_path, state)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_a_node_really_waiting_does_page(self, tmp_path: Path) -> None:
        """The same pipeline is able to fire: a CSR made after the certificate, 1 h old."""
        state = self._state(hand.csr("csr-new", timedelta(hours=1), now=self.EPOCH))
        result = self._promtool_fires(tmp_path, state)
        assert result.returncode != 0 and "KubeletServingCsrPending" in result.stdout + \
            result.stderr
