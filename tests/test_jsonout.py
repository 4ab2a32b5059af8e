"""Specification of the JSON status (schema version 1), a stable interface."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent import codes
from agent.checks import judge
from agent.model import (
    ApiProblem,
    CsrState,
    KeyMatch,
    LinkProblem,
    LinkState,
    ReadError,
    ReadProblem,
    Role,
    Severity,
)
from agent.sinks.jsonout import evaluation_to_dict, timestamp
from tests.snapshots import (
    CERT_DIR,
    SINK_NOW,
    api,
    api_error,
    csr,
    evaluation,
    finding,
    healthy_snapshot,
    sink_cert,
    sink_link,
    sink_snapshot,
)

# The documented interface (README, section "JSON status"): consumers rely on these keys.
TOP_LEVEL = {"schema_version", "status", "exit_code", "node", "evaluated_at",
             "snapshot_taken_at", "inventory_complete", "cert_dir", "kubeadm_dir",
             "kubelet_config", "certificates", "findings", "counts", "history", "updated_links",
             "api", "probe", "kubeconfig", "kubelet", "kubelet_found", "kubelet_problems"}
CERTIFICATE = {"role", "path", "target", "subject", "issuer", "serial", "fingerprint_sha256",
               "not_before", "not_after", "rotation_window_start", "rotation_window_end",
               "self_signed", "sans", "key_matches", "trusted", "key_match", "key_path",
               "key_error", "key_algorithm", "is_ca", "chain_length", "size", "link",
               "link_problem", "read_error", "stale_since", "kubeadm_name",
               "externally_managed"}
FINDING = {"code", "severity", "message", "path"}


def _readme_section(name: str) -> str:
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    return text.split(f"<!-- section:{name} -->")[1].split(f"<!-- /section:{name} -->")[0]


class TestReadme:
    def test_every_field_is_documented(self) -> None:
        """Each top-level and certificate field appears, in backquotes, in README's json section."""
        section = _readme_section("json")
        for field in TOP_LEVEL | CERTIFICATE | FINDING:
            assert f"`{field}" in section, field

    def test_the_example_has_the_real_shape(self) -> None:
        """README's example parses and uses exactly the keys the sink produces."""
        example = json.loads(_readme_section("json").split("```json")[1].split("```")[0])
        assert set(example) == TOP_LEVEL
        assert set(example["certificates"][0]) == CERTIFICATE
        assert set(example["findings"][0]) == FINDING


class TestTimestamp:
    @pytest.mark.parametrize(("value", "text"), [
        (datetime(2026, 11, 23, 12, 0, tzinfo=UTC), "2026-11-23T12:00:00Z"),
        (datetime(2026, 11, 23, 14, 0, tzinfo=timezone(timedelta(hours=2))),
         "2026-11-23T12:00:00Z"),
        (datetime(2026, 11, 23, 12, 0, 0, 750000, tzinfo=UTC), "2026-11-23T12:00:00Z"),
        (datetime(1999, 1, 2, 3, 4, 5, tzinfo=UTC), "1999-01-02T03:04:05Z"),
        (None, None),
    ], ids=["utc", "offset-converted", "microseconds-dropped", "zero-padded", "absent"])
    def test_timestamps_are_iso8601_utc_with_z(self, value: datetime | None,
                                               text: str | None) -> None:
        """Every instant is ISO 8601 in UTC with a Z suffix; absent is null."""
        assert timestamp(value) == text


class TestEvaluationToDict:
    def test_documented_fields_are_all_present(self) -> None:
        """Top level, each certificate and each finding have exactly the documented keys."""
        ev = evaluation(healthy_snapshot(), finding(codes.CERT_EXPIRED, Severity.CRITICAL))
        doc = evaluation_to_dict(ev)
        assert set(doc) == TOP_LEVEL
        assert all(set(c) == CERTIFICATE for c in doc["certificates"])
        assert all(set(f) == FINDING for f in doc["findings"])

    def test_round_trips_through_json(self) -> None:
        """The dict is plain JSON data (no datetimes, enums or tuples left)."""
        doc = evaluation_to_dict(evaluation(healthy_snapshot()))
        assert json.loads(json.dumps(doc)) == doc

    def test_healthy_node_values(self) -> None:
        """Status, node, instants and a certificate's fields carry the snapshot's values."""
        doc = evaluation_to_dict(evaluation(healthy_snapshot()))
        assert doc["schema_version"] == 1
        assert (doc["status"], doc["exit_code"]) == ("OK", 0)
        assert doc["node"] == "node1"
        assert doc["evaluated_at"] == "2026-11-23T12:00:00Z"
        assert doc["counts"] == {"critical": 0, "warning": 0, "info": 0}
        client = doc["certificates"][0]
        assert client == client | {
            "role": "client",
            "path": f"{CERT_DIR}/kubelet-client-current.pem",
            "target": f"{CERT_DIR}/kubelet-client-2026-08-01-10-00-00.pem",
            "subject": "CN=system:node:node1,O=system:nodes",
            "issuer": "CN=kubernetes",
            "serial": "1f2e3d",
            "fingerprint_sha256": "ab" * 32,
            "not_before": "2026-08-15T12:00:00Z",
            "not_after": "2027-08-15T12:00:00Z",
            "rotation_window_start": "2027-04-28T00:00:00Z",
            "rotation_window_end": "2027-07-10T00:00:00Z",
            "self_signed": False, "key_matches": True, "trusted": True,
            "key_match": "match", "chain_length": 1, "link_problem": None,
            "read_error": None, "stale_since": None,
        }
        assert client["link"] == {"path": client["path"], "is_symlink": True,
                                  "target": client["target"], "resolved": client["target"],
                                  "problem": None}

    def test_trust_anchors_are_listed_after_the_certificates(self) -> None:
        """Anchors appear in "certificates" with role "ca", after the kubelet's own files."""
        doc = evaluation_to_dict(evaluation(healthy_snapshot()))
        assert [c["role"] for c in doc["certificates"]] == ["client", "server", "ca"]
        assert doc["certificates"][1]["sans"] == ["DNS:node1", "IP:10.0.0.1"]
        assert doc["certificates"][2]["is_ca"] is True

    @pytest.mark.parametrize(("key_match", "expected"), [
        (KeyMatch.MATCH, True), (KeyMatch.MISMATCH, False),
        (KeyMatch.ABSENT, None), (KeyMatch.UNREADABLE, None),
    ], ids=["match", "mismatch", "absent", "unreadable"])
    def test_key_matches_is_true_false_or_null(self, key_match: KeyMatch,
                                               expected: bool | None) -> None:
        """key_matches is null when no key could be compared; key_match says why."""
        cert = sink_link(Role.CLIENT, sink_cert(SINK_NOW), key_match=key_match)
        doc = evaluation_to_dict(evaluation(sink_snapshot(cert)))["certificates"][0]
        assert doc["key_matches"] is expected
        assert doc["key_match"] == key_match.value

    def test_unreadable_file_has_null_certificate_fields_and_its_errors(self) -> None:
        """A file with no certificate keeps every key, null, and explains itself."""
        cert = sink_link(Role.SERVER, None, trusted=None, key_match=KeyMatch.ABSENT,
                      read_error=ReadError(ReadProblem.TRUNCATED, "PEM block never ends"),
                      link=LinkState(path="p", is_symlink=True, target="/x",
                                     problem=LinkProblem.NOT_REGULAR))
        doc = evaluation_to_dict(evaluation(sink_snapshot(cert)))["certificates"][0]
        for key in ("subject", "issuer", "serial", "not_after", "rotation_window_end",
                    "trusted", "key_matches"):
            assert doc[key] is None, key
        assert doc["sans"] == []
        assert doc["read_error"] == {"problem": "truncated", "detail": "PEM block never ends"}
        assert doc["link_problem"] == "not-regular"

    def test_stale_certificate_keeps_its_data_and_says_since_when(self) -> None:
        """A file that became unreadable reports its last good data and stale_since."""
        cert = sink_link(Role.CLIENT, sink_cert(SINK_NOW - timedelta(days=3)),
                      stale_since=SINK_NOW - timedelta(minutes=5),
                      read_error=ReadError(ReadProblem.PERMISSION_DENIED, "EACCES"))
        doc = evaluation_to_dict(evaluation(sink_snapshot(cert)))["certificates"][0]
        assert doc["stale_since"] == "2026-11-23T11:55:00Z"
        assert doc["serial"] == "1f2e3d"
        assert doc["read_error"]["problem"] == "permission-denied"

    def test_findings_keep_order_and_use_lowercase_severity(self) -> None:
        """Findings are listed as judged (worst first) with a lowercase severity label."""
        findings = (finding(codes.CERT_EXPIRED, Severity.CRITICAL, "/a"),
                    finding(codes.ROTATION_OVERDUE, Severity.WARNING))
        doc = evaluation_to_dict(evaluation(healthy_snapshot(), *findings))
        assert doc["findings"] == [
            {"code": "CERT_EXPIRED", "severity": "critical",
             "message": "cert_expired happened", "path": "/a"},
            {"code": "ROTATION_OVERDUE", "severity": "warning",
             "message": "rotation_overdue happened", "path": None}]
        assert (doc["status"], doc["exit_code"]) == ("CRITICAL", 2)
        assert doc["counts"] == {"critical": 1, "warning": 1, "info": 0}

    def test_history_is_keyed_by_role(self) -> None:
        """history maps each role to its generations' count, size and time span."""
        doc = evaluation_to_dict(evaluation(healthy_snapshot()))
        assert doc["history"]["client"] == {
            "count": 3, "total_bytes": 3702, "oldest": "2024-08-01-10-00-00",
            "newest": "2026-08-01-10-00-00", "previous_path": None, "previous": None}
        assert set(doc["history"]) == {"client", "server"}

    def test_kubelet_config_is_reported(self) -> None:
        """The kubelet config's relevant settings are included as read."""
        cfg = evaluation_to_dict(evaluation(healthy_snapshot()))["kubelet_config"]
        assert cfg["server_tls_bootstrap"] is True and cfg["rotate_certificates"] is True
        assert cfg["client_ca_file"] == "/etc/kubernetes/pki/ca.crt"
        assert cfg["error"] is None

    def test_api_is_null_when_offline(self) -> None:
        """api is null when the API server was not asked."""
        assert evaluation_to_dict(evaluation(healthy_snapshot()))["api"] is None

    def test_api_state_with_csrs_and_error(self) -> None:
        """api carries the server, last success, the current error and each CSR."""
        pending = csr("csr-abc", timedelta(hours=2), CsrState.PENDING, now=SINK_NOW,
                      request_ip_addresses=("10.0.0.1",))
        state = api(pending, last_success=SINK_NOW - timedelta(hours=1),
                    error=api_error(ApiProblem.UNREACHABLE, 3, detail="connection refused",
                                    since=SINK_NOW))
        doc = evaluation_to_dict(evaluation(replace(healthy_snapshot(), api=state)))["api"]
        assert doc["server"] == "https://10.0.0.1:6443"
        assert doc["last_success"] == "2026-11-23T11:00:00Z"
        assert doc["stale"] is True
        assert doc["error"] == {"problem": "unreachable", "detail": "connection refused",
                                "status_code": None, "consecutive_failures": 3,
                                "since": "2026-11-23T12:00:00Z"}
        assert doc["credential"] is None  # not known: nothing was loaded
        assert doc["identity"] == {"username": "system:node:node1",
                                   "groups": ["system:nodes", "system:authenticated"]}
        assert doc["csrs"][0] == doc["csrs"][0] | {
            "name": "csr-abc", "created": "2026-11-23T10:00:00Z", "state": "Pending",
            "request_dns_names": ["node1"], "request_ip_addresses": ["10.0.0.1"],
            "request_error": None}


class TestServingCsrVerdict:
    def test_abandoned_csrs_are_flagged_and_the_wait_is_summed_up(self) -> None:
        """The checks' verdict, not the raw list: which CSR counts, since when, which are
        abandoned (a Pending CSR before the last issued one, and older ones after it)."""
        csrs = (csr("csr-old", timedelta(hours=3), now=SINK_NOW),
                csr("csr-done", timedelta(hours=1), CsrState.ISSUED, now=SINK_NOW),
                csr("csr-mid", timedelta(minutes=30), now=SINK_NOW),
                csr("csr-new", timedelta(minutes=1), now=SINK_NOW))
        snap = replace(healthy_snapshot(), api=api(*csrs, last_success=SINK_NOW))
        doc = evaluation_to_dict(judge(snap, SINK_NOW))["api"]
        assert {c["name"]: c["abandoned"] for c in doc["csrs"]} == {
            "csr-old": True, "csr-done": False, "csr-mid": True, "csr-new": False}
        assert doc["serving_csr"] == {
            "waiting": True, "since": "2026-11-23T11:30:00Z", "newest": "csr-new",
            "last_issued": "2026-11-23T11:00:00Z", "pending": ["csr-mid", "csr-new"],
            "abandoned": ["csr-old", "csr-mid"]}
