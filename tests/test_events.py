"""Log events: the pure diff of two evaluations, how they are logged, and that no event
ever carries key material."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent import codes, pkigen
from agent.daemon.logging import configure, emit
from agent.model import (
    ApiError,
    ApiProblem,
    ApiState,
    CertFile,
    CertInfo,
    Evaluation,
    Event,
    Finding,
    KubeletConfigInfo,
    ReadError,
    ReadProblem,
    Role,
    Severity,
    Snapshot,
    event,
)
from agent.sinks.events import diff, rotated_roles, rotation_timing
from tests.daemonkit import NOW, build, daemon_for
from tests.secrets_scan import assert_no_key_material, key_markers

CLIENT = "/pki/kubelet-client-current.pem"
SERVER = "/pki/kubelet-server-current.pem"


def info(serial: str, not_before: datetime = NOW - timedelta(days=100),
         days: int = 365) -> CertInfo:
    return CertInfo(subject="CN=system:node:n1", issuer="CN=kubernetes", serial=serial,
                    fingerprint_sha256=serial * 4, not_before=not_before,
                    not_after=not_before + timedelta(days=days))


def cert(path: str = CLIENT, role: Role = Role.CLIENT, serial: str | None = "aa",
         error: ReadProblem | None = None, **kw: object) -> CertFile:
    leaf = info(serial) if serial else None
    read_error = ReadError(error, f"{error.value} at {path}") if error else None
    return CertFile(role=role, path=path, target=path + ".gen", leaf=leaf,
                    chain=(leaf,) if leaf else (), read_error=read_error, **kw)  # type: ignore[arg-type]


def ev(*certs: CertFile, findings: tuple[Finding, ...] = (), api: ApiState | None = None,
       config_error: ReadProblem | None = None, now: datetime = NOW) -> Evaluation:
    config = KubeletConfigInfo(
        path="/var/lib/kubelet/config.yaml", present=config_error is None,
        error=ReadError(config_error, "bad yaml") if config_error else None)
    snap = Snapshot(taken_at=now, node_name="n1", cert_dir="/pki", kubelet_config=config,
                    certs=certs, api=api)
    return Evaluation(snapshot=snap, now=now, findings=findings)


def f(code: str, severity: Severity = Severity.WARNING, path: str | None = CLIENT) -> Finding:
    return Finding(code, severity, f"{code} message", path)


def kinds(events: list[Event]) -> list[str]:
    return [e.kind for e in events]


API_DOWN = ApiState(server="https://10.0.0.1:6443",
                    error=ApiError(ApiProblem.UNREACHABLE, "connection refused"))
API_401 = replace(API_DOWN, error=ApiError(ApiProblem.AUTH_FAILED, "Unauthorized", 401))
API_UP = ApiState(server="https://10.0.0.1:6443", last_success=NOW)


class TestDiff:
    @pytest.mark.parametrize(("previous", "current", "expected"), [
        (ev(cert()), ev(cert()), []),
        (ev(cert()), ev(cert(), findings=(f(codes.CERT_EXPIRING_SOON),)), ["finding_raised"]),
        (ev(cert(), findings=(f(codes.CERT_EXPIRING_SOON),)), ev(cert()), ["finding_cleared"]),
        (ev(cert(), findings=(f(codes.CERT_EXPIRING_SOON),)),
         ev(cert(), findings=(f(codes.CERT_EXPIRING_SOON, Severity.CRITICAL),)),
         ["finding_severity_changed"]),
        (ev(cert(), findings=(f(codes.CERT_EXPIRED, path=CLIENT),)),
         ev(cert(), findings=(f(codes.CERT_EXPIRED, path=SERVER),)),
         ["finding_raised", "finding_cleared"]),
        (ev(cert(serial="aa")), ev(cert(serial="bb")), ["rotation_observed"]),
        (ev(cert(serial="aa")), ev(cert(serial=None, error=ReadProblem.GARBAGE)),
         ["input_unreadable"]),
        (ev(cert(serial=None, error=ReadProblem.GARBAGE)), ev(cert()), ["input_readable"]),
        (ev(cert(error=ReadProblem.GARBAGE)), ev(cert(error=ReadProblem.TRUNCATED)),
         ["input_unreadable"]),
        (ev(cert(error=ReadProblem.GARBAGE)), ev(cert(error=ReadProblem.GARBAGE)), []),
        (ev(cert()), ev(cert(), config_error=ReadProblem.GARBAGE), ["input_unreadable"]),
        (ev(cert(), api=API_UP), ev(cert(), api=API_DOWN), ["api_unreachable"]),
        (ev(cert(), api=API_DOWN), ev(cert(), api=API_DOWN), []),
        (ev(cert(), api=API_DOWN), ev(cert(), api=API_401), ["api_unreachable"]),
        (ev(cert(), api=API_DOWN), ev(cert(), api=API_UP), ["api_recovered"]),
        (ev(cert(), api=API_UP), ev(cert(), api=None), []),
    ], ids=[
        "unchanged", "finding-raised", "finding-cleared", "finding-worse",
        "same-code-other-path", "new-serial", "became-unreadable", "readable-again",
        "other-read-problem", "same-read-problem", "kubelet-config-unreadable",
        "api-down", "api-still-down", "api-other-problem", "api-recovered", "went-offline",
    ])
    def test_each_change_is_named_once(self, previous: Evaluation, current: Evaluation,
                                       expected: list[str]) -> None:
        assert kinds(diff(previous, current)) == expected

    def test_at_start_up_the_current_problems_are_reported_once(self) -> None:
        current = ev(cert(error=ReadProblem.EMPTY),
                     findings=(f(codes.CERT_UNREADABLE, Severity.CRITICAL),), api=API_DOWN)
        assert kinds(diff(None, current)) == ["finding_raised", "input_unreadable",
                                              "api_unreachable"]

    def test_a_healthy_start_up_is_silent(self) -> None:
        assert diff(None, ev(cert())) == []

    def test_a_raised_finding_is_logged_at_the_level_of_its_severity(self) -> None:
        current = ev(cert(), findings=(f(codes.CERT_EXPIRED, Severity.CRITICAL),
                                       f(codes.UNTRUSTED_ISSUER, Severity.WARNING),
                                       f(codes.ROTATION_DISABLED, Severity.INFO, None)))
        assert [e.level for e in diff(ev(cert()), current)] == ["error", "warning", "info"]

    def test_a_rotation_names_role_serials_and_lifetimes(self) -> None:
        previous = ev(cert(serial="aa"))
        current = ev(cert(serial="bb"), now=NOW + timedelta(days=180))
        (rotation,) = diff(previous, current)
        fields = rotation.as_dict()
        assert fields["role"] == "client"
        assert (fields["old_serial"], fields["new_serial"]) == ("aa", "bb")
        assert fields["old_not_after"] == "2027-08-15T12:00:00Z"  # NOW - 100 d + 365 d
        assert fields["old_lifetime_fraction"] == pytest.approx(280 / 365, abs=1e-4)
        assert fields["timing"] == "in-window" and fields["in_window"] is True
        assert rotated_roles([rotation]) == [Role.CLIENT]

    def test_a_file_that_vanishes_and_comes_back_is_no_rotation(self) -> None:
        assert kinds(diff(ev(cert(serial=None)), ev(cert(serial="bb")))) == []


class TestRotationTiming:
    @pytest.mark.parametrize(("elapsed_days", "place"), [
        (100, "before-window"), (255.5, "in-window"), (328.5, "in-window"),
        (340, "after-window"), (365, "after-expiry"), (400, "after-expiry"),
    ], ids=["early", "window-start", "window-end", "late", "at-expiry", "expired"])
    def test_where_in_the_old_lifetime_a_rotation_came(self, elapsed_days: float,
                                                       place: str) -> None:
        old = info("aa", not_before=NOW, days=365)
        fraction, where = rotation_timing(old, NOW + timedelta(days=elapsed_days))
        assert where == place
        assert fraction == pytest.approx(elapsed_days / 365, abs=1e-4)


class TestEvent:
    def test_datetimes_become_rfc3339_strings_and_fields_are_sorted(self) -> None:
        e = event("x", b=1, a=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
        assert e.fields == (("a", "2026-01-02T03:04:05Z"), ("b", 1))


class TestLogging:
    def test_emit_logs_each_event_at_its_level_under_its_kind(self) -> None:
        with capture_logs() as logs:
            emit([event("finding_raised", "error", code="CERT_EXPIRED"),
                  event("rotation_observed", role="client")])
        assert logs == [
            {"event": "finding_raised", "log_level": "error", "code": "CERT_EXPIRED"},
            {"event": "rotation_observed", "log_level": "info", "role": "client"},
        ]

    def test_json_format_writes_one_object_per_line_with_a_timestamp(self) -> None:
        out = io.StringIO()
        configure("json", out)
        try:
            emit([event("rotation_observed", role="client", new_serial="bb"),
                  event("agent_stopped")])
        finally:
            configure("console")
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [line["event"] for line in lines] == ["rotation_observed", "agent_stopped"]
        assert lines[0]["level"] == "info" and lines[0]["new_serial"] == "bb"
        assert lines[0]["ts"].endswith("Z")

    def test_console_format_is_one_readable_line_per_event(self) -> None:
        out = io.StringIO()
        configure("console", out)
        try:
            emit([event("finding_cleared", code="CERT_EXPIRED", path="/pki/x.pem")])
        finally:
            configure("console")
        (line,) = out.getvalue().splitlines()
        assert "finding_cleared" in line and "code=CERT_EXPIRED" in line


class TestNoSecrets:
    def test_no_event_of_a_node_life_carries_key_material(self, tmp_path: Path) -> None:
        """Start, rotate, key-only file, garbage, key mismatch, recovery: scan every line."""
        node = build(tmp_path)
        keys = [node.pki.client.key, node.pki.ca.key]
        out = io.StringIO()
        configure("json", out)
        try:
            daemon = daemon_for(node, settle=0.5)
            clock = iter(NOW + timedelta(seconds=s) for s in range(100))
            daemon.run_once(next(clock))
            node.rotate("client", NOW)
            daemon.run_once(next(clock))
            key_only = pkigen.write_private(
                node.cert_dir / "kubelet-client-2027-01-01-00-00-00.pem",
                node.pki.client.key_pem())
            pkigen.kubelet_swap(node.cert_dir, "client", key_only)
            daemon.run_once(next(clock))
            daemon.run_once(next(clock))
            other = pkigen.kubelet_client(node.pki.ca, "node1", NOW)
            mismatched = pkigen.write_private(
                node.cert_dir / "kubelet-client-2027-01-02-00-00-00.pem",
                other.cert_pem() + node.pki.client.key_pem())
            keys.append(other.key)
            pkigen.kubelet_swap(node.cert_dir, "client", mismatched)
            daemon.run_once(next(clock))
            daemon.run_once(next(clock))
            node.rotate("client", NOW)
            daemon.run_once(next(clock))
        finally:
            configure("console")
        text = out.getvalue()
        logged = {json.loads(line)["event"] for line in text.splitlines()}
        assert {"rotation_observed", "input_unreadable", "finding_raised"} <= logged
        assert_no_key_material(text, key_markers(*keys))
