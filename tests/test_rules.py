"""The packaged Prometheus alert rules: valid, and every alert unit-tested with promtool."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from agent import codes
from agent.sinks import metrics
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
