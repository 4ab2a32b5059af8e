"""Specification of the table sink: what an operator reads on a terminal."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from agent import codes
from agent.checks import judge
from agent.kubelet import residual
from agent.model import (
    ApiError,
    ApiProblem,
    ApiState,
    CertFile,
    CsrState,
    KeyMatch,
    LinkProblem,
    LinkState,
    ReadError,
    ReadProblem,
    Role,
    Severity,
    Snapshot,
)
from agent.sinks.table import cert_state, issuer_cn, render_table, summary_line
from tests.snapshots import (
    CERT_DIR,
    SINK_NOW,
    api,
    csr,
    evaluation,
    finding,
    healthy_snapshot,
    sink_cert,
    sink_link,
    sink_snapshot,
)


def _block(text: str, title: str) -> list[str]:
    """The lines of the blank-line separated block whose first line starts with ``title``."""
    blocks = [b.splitlines() for b in text.split("\n\n")]
    found = [b for b in blocks if b and b[0].startswith(title)]
    assert len(found) == 1, text
    return found[0]


def _row(text: str, first_word: str) -> str:
    """The certificate row that starts with ``first_word``."""
    rows = [line for line in _block(text, "CERTIFICATE") if line.split()[:1] == [first_word]]
    assert len(rows) == 1, text
    return rows[0]


def _cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line)


class TestResidual:
    @pytest.mark.parametrize(("delta", "text"), [
        (timedelta(days=364, hours=5), "364d"),
        (timedelta(days=10), "10d"),
        (timedelta(days=3, hours=4, minutes=59), "3d4h"),
        (timedelta(days=2), "2d"),
        (timedelta(hours=5, minutes=12), "5h12m"),
        (timedelta(hours=5), "5h"),
        (timedelta(minutes=7, seconds=30), "7m"),
        (timedelta(seconds=42), "42s"),
        (-timedelta(days=2, hours=1), "expired 2d1h ago"),
        (-timedelta(days=40), "expired 40d ago"),
    ], ids=["years", "ten-days", "days-hours", "whole-days", "hours-minutes", "whole-hours",
            "minutes", "seconds", "expired-days", "expired-long-ago"])
    def test_residual_time_is_short_and_exact_enough(self, delta: timedelta, text: str) -> None:
        """Residual time reads like kubeadm's: the two largest units, or 'expired X ago'."""
        assert residual(delta) == text


class TestIssuerCn:
    @pytest.mark.parametrize(("issuer", "cn"), [
        ("CN=kubernetes", "kubernetes"),
        ("CN=node1-ca@1700000000", "node1-ca@1700000000"),
        ("CN=etcd-ca,O=example\\, inc", "etcd-ca"),
        ("O=no common name", "O=no common name"),
        ("not a name at all ==", "not a name at all =="),
    ], ids=["plain", "self-signed-fallback-ca", "escaped-comma", "no-cn", "unparseable"])
    def test_issuer_column_shows_the_common_name(self, issuer: str, cn: str) -> None:
        """The ISSUER column is the issuer's CN, or the whole name when there is none."""
        assert issuer_cn(issuer) == cn


def _judged_state(snap: Snapshot, first_word: str) -> str:
    """The STATE cell of a row, rendered from the real checks' findings."""
    return _cells(_row(render_table(judge(snap, SINK_NOW)), first_word))[-1]


class TestCertState:
    leaf = sink_cert(SINK_NOW - timedelta(days=100))

    @pytest.mark.parametrize(("changes", "state"), [
        ({}, "ok"),
        ({"key_match": KeyMatch.MISMATCH}, "key mismatch"),
        ({"leaf": None, "chain": (), "read_error": ReadError(ReadProblem.TRUNCATED, "x")},
         "unreadable (truncated)"),
        ({"read_error": ReadError(ReadProblem.PERMISSION_DENIED, "x"), "stale_since": SINK_NOW},
         "unreadable (permission-denied), stale since 2026-11-23T12:00:00Z"),
        ({"leaf": None, "chain": (), "link": LinkState(
            path="p", is_symlink=True, target="/gone", problem=LinkProblem.DANGLING)},
         "link dangling"),
        ({"leaf": sink_cert(SINK_NOW - timedelta(days=400))}, "expired"),
        ({"leaf": sink_cert(SINK_NOW + timedelta(hours=2))}, "not yet valid"),
        ({"leaf": sink_cert(SINK_NOW - timedelta(days=340))},
         "expiring soon, rotation overdue"),
    ], ids=["healthy", "key-mismatch", "unreadable", "stale", "dangling", "expired",
            "not-yet-valid", "overdue"])
    def test_state_names_what_the_findings_say_of_the_file(self, changes: dict[str, Any],
                                                           state: str) -> None:
        """STATE words the findings about one file, 'ok' when there is none."""
        snap = sink_snapshot(replace(sink_link(Role.CLIENT, self.leaf), **changes),
                             sink_link(Role.SERVER, self.leaf))
        assert _judged_state(snap, "client") == state

    def test_state_is_only_what_the_findings_say(self) -> None:
        """A finding the table is given is shown even where the table would judge nothing."""
        cert = sink_link(Role.CLIENT, self.leaf)
        ev = evaluation(sink_snapshot(cert), finding(codes.IDENTITY_MISMATCH, Severity.WARNING,
                                                     cert.path))
        assert cert_state(cert, ev.findings) == "identity mismatch"
        assert cert_state(cert, ()) == "ok"

    def test_no_rotation_overdue_when_the_kubelet_does_not_rotate(self) -> None:
        """rotateCertificates false and the client at 95 %: the findings say 'rotation
        disabled' and expiring soon, never 'rotation overdue' (the kubelet renews nothing)."""
        old = sink_cert(SINK_NOW - timedelta(days=347))
        snap = sink_snapshot(sink_link(Role.CLIENT, old), sink_link(Role.SERVER, self.leaf),
                             cfg=replace(healthy_snapshot().kubelet_config,
                                         rotate_certificates=False))
        ev = judge(snap, SINK_NOW)
        assert codes.ROTATION_OVERDUE not in {f.code for f in ev.findings}
        assert "rotation overdue" not in _judged_state(snap, "client")

    def test_leftover_server_certificate_is_unused_without_server_tls_bootstrap(self) -> None:
        """serverTLSBootstrap false: kubelet-server-current.pem is not served, so it is
        neither judged nor called overdue; the table says it is unused."""
        old = sink_cert(SINK_NOW - timedelta(days=347))
        snap = sink_snapshot(sink_link(Role.CLIENT, self.leaf), sink_link(Role.SERVER, old),
                             cfg=replace(healthy_snapshot().kubelet_config,
                                         server_tls_bootstrap=False))
        assert _judged_state(snap, "server") == "unused (not served, not judged)"

    def test_a_ca_is_not_called_self_signed(self) -> None:
        """Every root CA is self-signed; saying so would only alarm the reader."""
        snap = healthy_snapshot()
        assert _judged_state(snap, "ca") == "ok"

    def test_rotation_overdue_only_for_roles_the_kubelet_renews(self) -> None:
        """A CA past 90 % of its life is not 'rotation overdue': the kubelet never renews it."""
        old = sink_cert(SINK_NOW - timedelta(days=340), subject="CN=kubernetes", is_ca=True)
        snap = replace(healthy_snapshot(), anchors=(
            CertFile(role=Role.TRUST_ANCHOR, path="/ca.crt", target="/ca.crt", leaf=old,
                     chain=(old,)),))
        assert "rotation overdue" not in _judged_state(snap, "ca")


class TestRenderTable:
    def test_healthy_node_has_one_row_per_file_and_an_ok_summary(self) -> None:
        """Each certificate file is a row with link -> target, expiry, residual, window, issuer."""
        text = render_table(evaluation(healthy_snapshot()))
        lines = text.splitlines()
        assert lines[0] == ("node node1, cert dir /var/lib/kubelet/pki, kubelet config "
                            "/var/lib/kubelet/config.yaml (serverTLSBootstrap: true, "
                            "rotateCertificates: true)")
        header = next(line for line in lines if line.startswith("CERTIFICATE"))
        assert header.split("  ")[0] == "CERTIFICATE"
        for title in ("PATH", "EXPIRES (UTC)", "RESIDUAL TIME", "ROTATION WINDOW", "ISSUER",
                      "STATE"):
            assert title in header
        client = _row(text, "client")
        assert "kubelet-client-current.pem -> kubelet-client-2026-08-01-10-00-00.pem" in client
        assert CERT_DIR not in client  # paths inside the cert dir are shown relative to it
        assert "2027-08-15 12:00" in client  # not_after = SINK_NOW - 100 d + 365 d
        assert " 265d " in client
        assert "2027-04-28..2027-07-10" in client  # 70 %..90 % of the lifetime
        assert client.split()[-2:] == ["kubernetes", "ok"]
        anchor = _cells(_row(text, "ca"))
        assert anchor[1] == "/etc/kubernetes/pki/ca.crt"
        assert anchor[4] == "-"  # no rotation window: the kubelet never renews a CA
        assert lines[-1] == ("OK: no findings — node node1, evaluated 2026-11-23T12:00:00Z")
        assert text.endswith("\n")

    def test_columns_are_aligned(self) -> None:
        """Every row's STATE starts at the same column as the header's."""
        text = render_table(evaluation(healthy_snapshot()))
        rows = _block(text, "CERTIFICATE")
        starts = {line.rindex("  ") + 2 for line in rows}
        assert len(rows) == 4 and len(starts) == 1

    def test_history_line_per_role(self) -> None:
        """HISTORY shows count, size, oldest..newest and the last rotation per role."""
        text = render_table(evaluation(healthy_snapshot()))
        history = _block(text, "HISTORY")[1:]
        assert _cells(history[0]) == [
            "client", "3 files (3.6 KiB)",
            "2024-08-01 10:00:00 .. 2026-08-01 10:00:00 (kubelet local time)",
            "last rotation 2026-08-01 10:00:00"]
        assert _cells(history[1])[1] == "1 file (1.2 KiB)"
        assert _cells(history[1])[-1] == "never rotated"

    def test_findings_are_listed_with_severity_code_message_and_path(self) -> None:
        """Findings keep the evaluation's order and show their path relative to the cert dir."""
        crit = finding(codes.CERT_EXPIRED, Severity.CRITICAL,
                       f"{CERT_DIR}/kubelet-client-current.pem")
        warn = finding(codes.ROTATION_OVERDUE, Severity.WARNING)
        text = render_table(evaluation(healthy_snapshot(), crit, warn))
        block = _block(text, "FINDINGS")[1:]
        assert block[0].split() == ["CRITICAL", "CERT_EXPIRED", "cert_expired", "happened",
                                    "[kubelet-client-current.pem]"]
        assert block[1].split() == ["WARNING", "ROTATION_OVERDUE", "rotation_overdue",
                                    "happened"]

    @pytest.mark.parametrize(("severities", "summary"), [
        ((), "OK: no findings"),
        ((Severity.INFO,), "OK: 1 info"),
        ((Severity.WARNING, Severity.INFO), "WARNING: 1 warning, 1 info"),
        ((Severity.WARNING, Severity.WARNING), "WARNING: 2 warnings"),
        ((Severity.CRITICAL, Severity.CRITICAL, Severity.WARNING),
         "CRITICAL: 2 critical, 1 warning"),
    ], ids=["none", "info-only", "warning", "warnings", "critical"])
    def test_summary_line_starts_with_the_nagios_status(
            self, severities: tuple[Severity, ...], summary: str) -> None:
        """The last line is the status word, the counts, the node and the instant."""
        findings = [finding(codes.CERT_EXPIRED, s) for s in severities]
        ev = evaluation(healthy_snapshot(), *findings)
        assert summary_line(ev) == f"{summary} — node node1, evaluated 2026-11-23T12:00:00Z"
        assert render_table(ev).splitlines()[-1] == summary_line(ev)

    def test_unreadable_file_and_broken_link_render_without_dates(self) -> None:
        """A file with no certificate shows '-' for its dates and says why in STATE."""
        broken = sink_link(Role.SERVER, None, read_error=ReadError(ReadProblem.GARBAGE, "x"))
        text = render_table(judge(sink_snapshot(broken), SINK_NOW))
        row = _row(text, "server")
        assert _cells(row)[2:] == ["-", "-", "-", "-", "unreadable (garbage)"]

    def test_long_paths_outside_the_cert_dir_are_shortened_in_the_middle(self) -> None:
        """A watched file with a very long path keeps its start and its file name."""
        long_path = "/etc/" + "very-long-directory-name/" * 5 + "apiserver.crt"
        watched = CertFile(role=Role.WATCHED, path=long_path, target=long_path,
                           leaf=sink_cert(SINK_NOW - timedelta(days=1)))
        row = _row(render_table(evaluation(sink_snapshot(watched))), "watched")
        assert "/etc/very-long" in row and "apiserver.crt" in row and "..." in row
        assert long_path not in row

    @pytest.mark.parametrize(("config", "state"), [
        ({"server_tls_bootstrap": True}, "unused (not served, not judged)"),
        ({"server_tls_bootstrap": False, "tls_cert_file": "/etc/kubelet/tls.crt"},
         "unused (not served, not judged)"),
        ({"server_tls_bootstrap": False}, "self-signed"),
    ], ids=["server-tls-bootstrap", "tls-cert-file", "served"])
    def test_self_signed_fallback_is_marked_unused_when_the_kubelet_does_not_serve_it(
            self, config: dict[str, Any], state: str) -> None:
        """kubelet.crt left over from before serverTLSBootstrap is shown as unused."""
        snap = healthy_snapshot()
        fallback = CertFile(role=Role.SELF_SIGNED, path=f"{CERT_DIR}/kubelet.crt",
                            target=f"{CERT_DIR}/kubelet.crt", self_signed=True, trusted=False,
                            leaf=sink_cert(SINK_NOW - timedelta(days=10), issuer="CN=node1-ca@1"))
        snap = replace(snap, certs=(*snap.certs, fallback),
                       kubelet_config=replace(snap.kubelet_config, **config))
        row = _row(render_table(judge(snap, SINK_NOW)), "kubelet-crt")
        assert _cells(row)[1] == "kubelet.crt"
        assert _cells(row)[-2:] == ["node1-ca@1", state]

    def test_swap_in_progress_is_mentioned(self) -> None:
        """A transient -updated.pem link is shown, not hidden."""
        snap = replace(healthy_snapshot(),
                       updated_links=(f"{CERT_DIR}/kubelet-server-updated.pem",))
        assert "swap in progress: kubelet-server-updated.pem" in render_table(evaluation(snap))

    def test_api_server_line_counts_this_nodes_csrs(self) -> None:
        """When the API server was asked, one line sums up this node's serving CSRs."""
        csrs = tuple(csr(f"csr-{i}", timedelta(0), state, now=SINK_NOW)
                     for i, state in enumerate((CsrState.PENDING, CsrState.PENDING,
                                                CsrState.ISSUED)))
        state = api(*csrs, last_success=SINK_NOW)
        text = render_table(evaluation(replace(healthy_snapshot(), api=state)))
        assert ("API SERVER https://10.0.0.1:6443: ok as system:node:node1, 3 serving CSR(s) "
                "for this node (1 Issued, 2 Pending)") in text

    def test_api_server_line_tells_abandoned_csrs_apart(self) -> None:
        """A Pending CSR made before the last issued one is history, named as such."""
        csrs = (csr("csr-old", timedelta(hours=3), now=SINK_NOW),
                csr("csr-done", timedelta(hours=1), CsrState.ISSUED, now=SINK_NOW),
                csr("csr-new", timedelta(minutes=1), now=SINK_NOW))
        snap = replace(healthy_snapshot(), api=api(*csrs, last_success=SINK_NOW))
        text = render_table(judge(snap, SINK_NOW))
        assert "3 serving CSR(s) for this node (1 Issued, 1 Pending, 1 abandoned)" in text

    def test_a_short_rotation_window_shows_times(self) -> None:
        """A 10-minute certificate's window is 2 minutes long: dates alone say nothing."""
        short = sink_link(Role.CLIENT, sink_cert(SINK_NOW, timedelta(minutes=10)))
        text = render_table(evaluation(sink_snapshot(short)))
        assert "2026-11-23 12:07..12:09" in _row(text, "client")
        days = sink_link(Role.CLIENT, sink_cert(SINK_NOW - timedelta(hours=1), timedelta(days=2)))
        assert "2026-11-24 20:36..2026-11-25 06:12" in _row(
            render_table(evaluation(sink_snapshot(days))), "client")

    def test_api_server_failure_is_explained(self) -> None:
        """A failing API server shows the problem, the HTTP code and the last success."""
        api = ApiState(server="https://10.0.0.1:6443", error=ApiError(
            ApiProblem.AUTH_FAILED, "Unauthorized", status_code=401, consecutive_failures=4))
        text = render_table(evaluation(replace(healthy_snapshot(), api=api)))
        assert ("API SERVER https://10.0.0.1:6443: auth-failed HTTP 401 (Unauthorized), "
                "4 consecutive failure(s); last success never") in text

    def test_api_server_not_configured_has_no_empty_url(self) -> None:
        """Without a kubeconfig there is no server URL: the line says why instead."""
        api = ApiState(server="", error=ApiError(ApiProblem.NOT_CONFIGURED,
                                                 "kubeconfig /x not found"))
        text = render_table(evaluation(replace(healthy_snapshot(), api=api)))
        assert "API SERVER: not-configured (kubeconfig /x not found)" in text

    def test_no_api_line_when_offline(self) -> None:
        """Offline (api is None), the table says nothing about the API server."""
        assert "API SERVER" not in render_table(evaluation(healthy_snapshot()))
