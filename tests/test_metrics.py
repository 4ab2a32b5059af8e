"""agent.sinks.metrics: what a scrape shows, read back with a fresh registry per test."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from agent import __version__, codes
from agent.checks.csr import trail
from agent.kubelet import SERVING_SIGNER
from agent.model import (
    AgentState,
    AgentStats,
    CertFile,
    CertInfo,
    Evaluation,
    Finding,
    Role,
    Severity,
)
from agent.sinks import metrics
from agent.sinks.metrics import AgentCollector, render
from tests import metrics_fixtures as fx
from tests.conftest import require_tool
from tests.nodetree import real_node_state
from tests.secrets_scan import assert_no_key_material, key_markers

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "metrics" / "golden.prom"
P = "kubelet_cert_agent_"
LabelsOf = Callable[[], dict[str, str]]


def registry(state: AgentState | None) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(AgentCollector(lambda: state))
    return reg


def value(state: AgentState | None, name: str, /, **labels: str) -> float | None:
    return registry(state).get_sample_value(P + name, labels)


def client_labels() -> dict[str, str]:
    return {"role": "client", "path": fx.CLIENT_PATH}


def server_labels() -> dict[str, str]:
    return {"role": "server", "path": fx.SERVER_PATH}


def self_signed_labels() -> dict[str, str]:
    return {"role": "kubelet-crt", "path": fx.SELF_SIGNED_PATH}


def ca_labels(which: int) -> dict[str, str]:
    return {"role": "ca", "path": fx.CA_PATH, "index": str(which - 1)}


def ca_labels_file() -> dict[str, str]:
    return {"role": "ca", "path": fx.CA_PATH}


def with_state(snapshot_changes: dict[str, object] | None = None,
               findings: tuple[Finding, ...] = fx.FINDINGS,
               stats: AgentStats | None = None) -> AgentState:
    snap = dataclasses.replace(fx.snapshot(fx.api_state()), **(snapshot_changes or {}))
    return AgentState(Evaluation(snap, fx.NOW, findings), stats or fx.stats())


class TestCertificateFamilies:
    def test_validity_and_rotation_window_are_unix_timestamps(self) -> None:
        """notBefore, notAfter and the 70 %/90 % rotation window are exported as instants."""
        state, leaf = fx.full_state(), fx.CLIENT_LEAF
        labels = client_labels()
        assert value(state, "certificate_not_before_timestamp_seconds", **labels) == \
            leaf.not_before.timestamp()
        assert value(state, "certificate_not_after_timestamp_seconds", **labels) == \
            leaf.not_after.timestamp()
        assert value(state, "certificate_rotation_window_start_timestamp_seconds", **labels) \
            == (leaf.not_before + timedelta(days=365 * 0.7)).timestamp()
        assert value(state, "certificate_rotation_window_end_timestamp_seconds", **labels) \
            == (leaf.not_before + timedelta(days=365 * 0.9)).timestamp()

    @pytest.mark.parametrize(("labels", "expected"), [
        pytest.param(client_labels, 1.0, id="match-is-1"),
        pytest.param(server_labels, 0.0, id="mismatch-is-0"),
        pytest.param(self_signed_labels, None, id="unreadable-key-is-absent"),
    ])
    def test_key_match(self, labels: LabelsOf, expected: float | None) -> None:
        """Key match is 1 or 0, and absent when the key could not be compared."""
        assert value(fx.full_state(), "certificate_key_match", **labels()) == expected

    @pytest.mark.parametrize(("labels", "expected"), [
        pytest.param(client_labels, 1.0, id="trusted-is-1"),
        pytest.param(server_labels, 0.0, id="untrusted-is-0"),
        pytest.param(self_signed_labels, None, id="no-anchor-known-is-absent"),
    ])
    def test_trusted(self, labels: LabelsOf, expected: float | None) -> None:
        """Trust is 1 or 0, and absent when no trust anchor is known."""
        assert value(fx.full_state(), "certificate_trusted", **labels()) == expected

    @pytest.mark.parametrize(("name", "labels", "expected"), [
        pytest.param("certificate_self_signed", self_signed_labels, 1.0, id="fallback-self-signed"),
        pytest.param("certificate_self_signed", client_labels, 0.0, id="client-not-self-signed"),
        pytest.param("certificate_self_signed", ca_labels_file, None, id="not-for-a-ca"),
        pytest.param("certificate_stale", server_labels, 1.0, id="unreadable-now-is-stale"),
        pytest.param("certificate_stale", client_labels, None, id="fresh-has-no-stale-series"),
    ])
    def test_flags(self, name: str, labels: LabelsOf, expected: float | None) -> None:
        """Self-signed is a 0/1 flag on the kubelet's own certificates; stale shows only
        while it is true (one series fewer per certificate on a big node)."""
        assert value(fx.full_state(), name, **labels()) == expected

    @pytest.mark.parametrize(("labels", "leaf", "target"), [
        pytest.param(client_labels, fx.CLIENT_LEAF, fx.CLIENT_TARGET, id="client-link"),
        pytest.param(self_signed_labels, fx.SELF_SIGNED_LEAF, None, id="plain-file"),
    ])
    def test_info_carries_the_descriptive_labels_once(
            self, labels: LabelsOf, leaf: CertInfo, target: str | None) -> None:
        """Subject, issuer, serial and (for a link) the target are on the info series only."""
        described = {**labels(), "subject": leaf.subject, "issuer": leaf.issuer,
                     "serial": leaf.serial}
        if target is not None:
            described["target"] = target
        state = fx.full_state()
        assert value(state, "certificate_info", **described) == 1.0
        text = render(state).decode()
        numeric = [line for line in text.splitlines() if line.startswith(P + "certificate_")
                   and not line.startswith(P + "certificate_info")]
        assert numeric and not any("serial=" in line or "subject=" in line for line in numeric)

    def test_numeric_series_join_the_info_series_on_path_and_role(self) -> None:
        """Every numeric certificate series has exactly one info series with its identity."""
        ident = re.compile(r'^(kubelet_cert_agent_certificate_\w+)\{(.*)\} ', re.MULTILINE)
        info, numeric = set(), set()
        for name, labels in ident.findall(render(fx.full_state()).decode()):
            pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            key = (pairs["path"], pairs["role"], pairs.get("index"))
            (info if name.endswith("_info") else numeric).add(key)
        assert numeric and {(p, r) for p, r, _ in numeric} <= {(p, r) for p, r, _ in info}
        assert {k for k in numeric if k[2] is not None} <= info

    def test_one_certificate_costs_few_bytes(self) -> None:
        """A plain watched certificate is one info line and two validity lines, nothing else:
        the path is written three times and every other label once."""
        leaf = fx.cert_info("0102", fx.NOW, 90, subject="CN=watched", issuer="CN=kubernetes")
        watched = CertFile(role=Role.WATCHED, path="/etc/kubernetes/pki/front-proxy.crt",
                           target="/etc/kubernetes/pki/front-proxy.crt", chain=(leaf,),
                           leaf=leaf)
        lines = [line for line in render(with_state({"certs": (watched,)})).decode()
                 .splitlines() if "front-proxy.crt" in line and not line.startswith("#")]
        assert len(lines) == 3, lines
        assert sum(line.count("front-proxy.crt") for line in lines) == 3
        assert sum(line.count("CN=") for line in lines) == 2

    def test_a_file_without_a_certificate_has_no_certificate_series(self) -> None:
        """An unreadable file is reported as a finding, never as a certificate with no dates."""
        text = render(fx.full_state()).decode()
        assert fx.BROKEN_PATH not in text.replace(
            f'code="CERT_UNREADABLE",path="{fx.BROKEN_PATH}"', "")

    @pytest.mark.parametrize("which", [1, 2], ids=["first-ca", "second-ca"])
    def test_every_ca_of_an_anchor_bundle_is_exported_with_role_ca(self, which: int) -> None:
        """Each CA in a bundle has its own notAfter, and no rotation window."""
        state, labels = fx.full_state(), ca_labels(which)
        ca = fx.CA_1 if which == 1 else fx.CA_2
        assert value(state, "certificate_not_after_timestamp_seconds", **labels) == \
            ca.not_after.timestamp()
        assert value(state, "certificate_rotation_window_end_timestamp_seconds", **labels) is None

    def test_duplicate_certificate_entries_are_exported_once(self) -> None:
        """The same file listed twice (e.g. as clientCAFile and --ca-file) is one series."""
        snap = fx.snapshot()
        state = with_state({"anchors": snap.anchors * 2})
        lines = [line for line in render(state).decode().splitlines()
                 if line.startswith(P + "certificate_not_after") and 'role="ca"' in line]
        assert len(lines) == 2


class TestVerdict:
    @pytest.mark.parametrize(("findings", "expected"), [
        pytest.param((), 0.0, id="no-finding-ok"),
        pytest.param(fx.FINDINGS[1:2], 1.0, id="warning"),
        pytest.param(fx.FINDINGS, 2.0, id="critical-wins"),
    ])
    def test_status_is_the_nagios_code_of_the_worst_finding(
            self, findings: tuple[Finding, ...], expected: float) -> None:
        """0 OK, 1 WARNING, 2 CRITICAL."""
        assert value(with_state(findings=findings), "status") == expected

    @pytest.mark.parametrize("complete", [True, False], ids=["complete", "first-scan"])
    def test_inventory_complete_says_whether_every_input_was_read(self, complete: bool
                                                                   ) -> None:
        """0 while the daemon shows a partial first snapshot, 1 afterwards."""
        assert value(with_state({"complete": complete}), "inventory_complete") == float(complete)

    def test_status_is_unknown_before_the_first_evaluation(self) -> None:
        """No state yet: status 3 and build info, nothing else."""
        names = {m.name for m in registry(None).collect()}
        assert value(None, "status") == 3.0
        assert names == {P + "build_info", P + "status"}

    def test_each_active_finding_is_one_series(self) -> None:
        """A finding is labelled by code, severity and path ("" when it has none)."""
        state = fx.full_state()
        assert value(state, "finding", code=codes.KEY_MISMATCH, severity="critical",
                     path=fx.SERVER_PATH) == 1.0
        assert value(state, "finding", code=codes.SERVING_CSR_PENDING, severity="warning",
                     path="") == 1.0
        assert value(state, "finding", code=codes.CERT_EXPIRED, severity="critical",
                     path=fx.CLIENT_PATH) is None

    def test_the_same_finding_twice_is_one_series(self) -> None:
        """Two findings with the same code, severity and path do not duplicate a series."""
        twice = (Finding(codes.SERVING_CSR_PENDING, Severity.WARNING, "a"),
                 Finding(codes.SERVING_CSR_PENDING, Severity.WARNING, "b"))
        text = render(with_state(findings=twice)).decode()
        assert text.count(f'{P}finding{{code="SERVING_CSR_PENDING"') == 1


class TestHistory:
    def test_generations_and_bytes_per_role(self) -> None:
        """The kubelet's timestamped files are counted and summed per role."""
        state = fx.full_state()
        assert value(state, "history_generations", role="client") == 3.0
        assert value(state, "history_bytes", role="client") == 3000.0
        assert value(state, "history_generations", role="server") == 1.0

    def test_last_rotation_is_the_current_certificate_not_before(self) -> None:
        """The last rotation is when the current leaf was issued (UTC, not the file's name)."""
        assert value(fx.full_state(), "last_rotation_timestamp_seconds", role="client") == \
            fx.CLIENT_LEAF.not_before.timestamp()

    def test_no_last_rotation_without_a_current_certificate(self) -> None:
        """History without a readable current certificate gives no rotation instant."""
        certs = tuple(c for c in fx.certs() if c.role.value != "client")
        state = with_state({"certs": certs})
        assert value(state, "history_generations", role="client") == 3.0
        assert value(state, "last_rotation_timestamp_seconds", role="client") is None


class TestAgentInternals:
    @pytest.mark.parametrize(("name", "labels", "expected"), [
        pytest.param("evaluations_total", {}, 5.0, id="evaluations"),
        pytest.param("evaluation_duration_seconds", {}, 0.0125, id="duration"),
        pytest.param("filesystem_events_total", {}, 17.0, id="fs-events"),
        pytest.param("textfile_write_errors_total", {}, 0.0, id="textfile-errors"),
        pytest.param("read_errors_total", {"problem": "garbage"}, 2.0, id="read-errors"),
        pytest.param("rotations_observed_total", {"role": "client"}, 1.0, id="rotations"),
        pytest.param("build_info", {"version": __version__}, 1.0, id="build-info"),
    ])
    def test_counters_and_gauges_come_from_agent_stats(
            self, name: str, labels: dict[str, str], expected: float) -> None:
        """The daemon's own counters are exported as they are in AgentStats."""
        assert value(fx.full_state(), name, **labels) == expected

    def test_timestamps_come_from_agent_stats(self) -> None:
        """Start time and last evaluation are instants."""
        state = fx.full_state()
        assert value(state, "start_time_seconds") == (fx.NOW - timedelta(hours=1)).timestamp()
        assert value(state, "last_evaluation_timestamp_seconds") == fx.NOW.timestamp()

    def test_counters_start_at_zero_for_every_known_label(self) -> None:
        """Every read problem and the client/server rotations exist at 0, so rate() works."""
        state = fx.quiet_state()
        assert value(state, "read_errors_total", problem="truncated") == 0.0
        assert value(state, "rotations_observed_total", role="server") == 0.0

    def test_without_stats_the_last_evaluation_is_the_evaluation_instant(self) -> None:
        """A one-shot evaluation (no daemon) still says when it was computed."""
        state = fx.quiet_state()
        assert value(state, "last_evaluation_timestamp_seconds") == fx.NOW.timestamp()
        assert value(state, "start_time_seconds") is None


class TestApiFamilies:
    def test_serving_csrs(self) -> None:
        """Pending count and waiting-since from the checks' verdict, one info series per
        CSR (the one the kubelet no longer waits for is Abandoned)."""
        state = fx.full_state()
        assert value(state, "serving_csr_pending") == 2.0
        assert value(state, "serving_csr_waiting_since_timestamp_seconds") == \
            fx.PENDING_OLDEST.timestamp()
        assert value(state, "serving_csr_info", name="csr-done", state="Issued") == 1.0
        assert value(state, "serving_csr_info", name="csr-old", state="Abandoned") == 1.0
        assert value(state, "serving_csr_info", name="csr-new", state="Pending") == 1.0

    def test_abandoned_csrs_never_count_as_pending(self) -> None:
        """A Pending CSR made before the certificate the node holds is history: the node
        waits for nothing, so no pending count and no waiting-since for an alert."""
        state = fx.full_state()
        api = state.evaluation.snapshot.api
        assert api is not None
        old = [c for c in api.csrs if c.name == "csr-old"]
        snap = replace(state.evaluation.snapshot, api=replace(api, csrs=tuple(old)))
        served = trail(old, SERVING_SIGNER, issued_at=fx.PENDING_OLDEST + timedelta(hours=1))
        quiet = AgentState(Evaluation(snap, fx.NOW, (), (served,)), state.stats)
        assert value(quiet, "serving_csr_pending") == 0.0
        assert value(quiet, "serving_csr_waiting_since_timestamp_seconds") is None
        assert value(quiet, "serving_csr_info", name="csr-old", state="Abandoned") == 1.0

    def test_api_health(self) -> None:
        """Requests by outcome, last success and up=1 after a successful request."""
        state = fx.full_state()
        assert value(state, "apiserver_requests_total", outcome="success") == 10.0
        assert value(state, "apiserver_requests_total", outcome="auth-failed") == 2.0
        assert value(state, "apiserver_last_success_timestamp_seconds") == \
            (fx.NOW - timedelta(seconds=30)).timestamp()
        assert value(state, "apiserver_up") == 1.0

    def test_a_failing_api_server_is_down_with_no_pending_timestamp(self) -> None:
        """up=0, no success instant, 0 pending and no oldest-pending series."""
        state = with_state({"api": fx.failing_api_state()})
        assert value(state, "apiserver_up") == 0.0
        assert value(state, "apiserver_last_success_timestamp_seconds") is None
        assert value(state, "serving_csr_pending") == 0.0
        assert value(state, "serving_csr_oldest_pending_creation_timestamp_seconds") is None

    def test_offline_exports_no_api_series(self) -> None:
        """Without an API state (offline) no apiserver/serving_csr family is exported."""
        text = render(fx.quiet_state()).decode()
        assert "apiserver" not in text and "serving_csr" not in text


class TestAgentCollector:
    def test_a_scrape_renders_whatever_state_is_published_now(self) -> None:
        """collect() builds fresh families each time from get_state()."""
        published: list[AgentState | None] = [None]
        reg = CollectorRegistry()
        reg.register(AgentCollector(lambda: published[0]))
        assert reg.get_sample_value(P + "status") == 3.0
        published[0] = fx.full_state()
        assert reg.get_sample_value(P + "status") == 2.0

    def test_a_failing_state_getter_still_answers_unknown(self) -> None:
        """An exception in get_state never escapes a scrape."""
        def broken() -> AgentState | None:
            raise RuntimeError("boom")

        reg = CollectorRegistry()
        reg.register(AgentCollector(broken))
        assert reg.get_sample_value(P + "status") == 3.0

    def test_a_scrape_does_not_touch_the_disk(self, tmp_path: Path) -> None:
        """With the cert dir deleted after the evaluation, a scrape gives the same output."""
        state, _ = real_node_state(tmp_path)
        before = render(state)
        shutil.rmtree(tmp_path)
        assert render(state) == before
        assert b"certificate_not_after_timestamp_seconds" in before


def _promtool_check_metrics(text: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([require_tool("promtool"), "check", "metrics"], input=text,
                          capture_output=True, timeout=60, check=False)


class TestExposition:
    @pytest.mark.parametrize("accept", ["", "application/openmetrics-text;version=1.0.0"],
                             ids=["text-0.0.4", "openmetrics-1.0.0"])
    @pytest.mark.parametrize("source", ["full", "quiet", "none", "api-down", "odd-labels",
                                        "real-node"])
    def test_the_fast_exposition_is_prometheus_clients_byte_for_byte(
            self, source: str, accept: str, tmp_path: Path) -> None:
        """The agent writes both formats itself; prometheus_client would write the same."""
        odd = dataclasses.replace(fx.CLIENT_LEAF, subject='CN=a"b\\c\nd', issuer="CN=é")
        states = {
            "full": fx.full_state, "quiet": fx.quiet_state, "none": lambda: None,
            "api-down": lambda: with_state({"api": fx.failing_api_state()}, findings=()),
            "odd-labels": lambda: with_state({"certs": (dataclasses.replace(
                fx.certs()[0], leaf=odd, chain=(odd,)),)}),
            "real-node": lambda: real_node_state(tmp_path)[0],
        }
        state = states[source]()
        content_type, fast = metrics.Expositions().body(state, accept)
        encoder, expected_type = choose_encoder(accept)
        assert content_type == expected_type
        assert fast == encoder(registry(state))

    def test_a_prerendered_state_is_served_without_rendering_again(self) -> None:
        """The body of a prerendered state is the stored one; after retain() only the
        published state's bodies are kept."""
        cache, old, new = metrics.Expositions(), fx.full_state(), fx.quiet_state()
        cache.prerender(old)
        cache.prerender(new)
        assert cache.body(old)[1] is cache.body(old)[1]
        first = cache.body(old)[1]
        cache.retain(new)
        assert cache.body(new)[1] is cache.body(new)[1]
        assert cache.body(old)[1] == first and cache.body(old)[1] is not first

    def test_render_matches_the_golden_file(self) -> None:
        """The exposition of the full fixture state is stable (UPDATE_GOLDEN=1 rewrites it)."""
        text = render(fx.full_state()).decode().replace(
            f'version="{__version__}"', 'version="VERSION"')
        if os.environ.get("UPDATE_GOLDEN"):
            GOLDEN.parent.mkdir(exist_ok=True)
            GOLDEN.write_text(text)
        assert text == GOLDEN.read_text()

    @pytest.mark.parametrize("source", ["golden", "real-node"])
    def test_promtool_check_metrics_reports_nothing(self, source: str, tmp_path: Path) -> None:
        """The real `promtool check metrics` accepts the exposition without a lint warning."""
        text = GOLDEN.read_bytes() if source == "golden" else render(real_node_state(tmp_path)[0])
        result = _promtool_check_metrics(text)
        assert result.returncode == 0 and not result.stdout + result.stderr, result

    def test_no_sample_carries_a_client_side_timestamp(self) -> None:
        """node_exporter refuses textfiles with timestamps: every sample is `name value`."""
        for line in render(fx.full_state()).decode().splitlines():
            if not line.startswith("#"):
                assert re.fullmatch(r'[a-z_]+(\{.*\})? [-+0-9.e]+', line), line

    def test_the_help_of_each_family_is_the_same_in_every_render(self) -> None:
        """node_exporter drops series whose HELP differs between files: HELP is a constant."""
        expected = {f.name: f.help for f in metrics.FAMILIES}
        states = [fx.full_state(), fx.quiet_state(), None,
                  with_state({"api": fx.failing_api_state()}, findings=())]
        for state in states:
            for name, help_text in re.findall(r"^# HELP (\S+) (.*)$", render(state).decode(),
                                              re.MULTILINE):
                assert expected[name] == help_text

    def test_label_values_are_escaped(self) -> None:
        """Quotes, backslashes and newlines in a subject cannot break the exposition."""
        odd = dataclasses.replace(fx.CLIENT_LEAF, subject='CN=a"b\\c\nd')
        client = dataclasses.replace(fx.certs()[0], leaf=odd, chain=(odd,))
        text = render(with_state({"certs": (client,)}))
        assert b'subject="CN=a\\"b\\\\c\\nd"' in text
        assert _promtool_check_metrics(text).returncode == 0

    def test_no_private_key_material_in_the_exposition(self, tmp_path: Path) -> None:
        """Keys are read to match certificates; none of their bytes reach a metric."""
        state, keys = real_node_state(tmp_path)
        assert_no_key_material(render(state).decode(), key_markers(*keys))


class TestFamilyNames:
    @pytest.mark.parametrize("family", metrics.FAMILIES, ids=lambda f: f.name)
    def test_names_follow_prometheus_conventions(self, family: metrics.Family) -> None:
        """Prefixed; counters end in _total; instants end in _timestamp_seconds or _time_seconds."""
        assert family.name.startswith(P)
        assert family.name.endswith("_total") == (family.kind == "counter")
        if "Unix time" in family.help:
            assert family.name.endswith(("_timestamp_seconds", "_time_seconds"))
        assert family.help.endswith(".")

    def test_names_are_unique(self) -> None:
        """One name, one family."""
        names = [f.name for f in metrics.FAMILIES]
        assert len(names) == len(set(names))

    def test_every_family_is_documented_in_the_readme(self) -> None:
        """The README's metric table lists every family."""
        readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
        section = readme.split("<!-- section:metrics -->")[1].split("<!-- /section:metrics -->")[0]
        missing = [f.name for f in metrics.FAMILIES if f"`{f.name}`" not in section]
        assert not missing
