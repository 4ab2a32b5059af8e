"""Specification of ``kubelet-cert-agent check``: verdicts, exit codes, output, bad input."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import check_cmd, cli, clock, codes, pkigen
from agent.check_cmd import At, parse_at
from agent.check_cmd import run as run_check
from agent.checks import evaluate as evaluate_findings
from agent.cli import build_parser
from agent.config import SourceSettings
from tests.kubeapi import KubeApi, closed_port, recorded
from tests.nodetree import (
    NODE,
    NOW,
    REPO,
    Run,
    Tree,
    healthy_node,
    run_in_process,
    run_subprocess,
)
from tests.test_jsonout import CERTIFICATE, FINDING, TOP_LEVEL


def _codes(run: Run) -> set[str]:
    return {f["code"] for f in json.loads(run.out)["findings"]}


def _no_traceback(run: Run) -> None:
    assert "Traceback" not in run.out + run.err
    assert "UNKNOWN" not in run.err, run.err


def _expire_client(tree: Tree) -> None:
    """Rotate the client to a certificate that expired a day before NOW."""
    old = pkigen.kubelet_client(tree.pki.ca, NODE, NOW - timedelta(days=366))
    path = pkigen.write_generation(tree.cert_dir, "client", old, NOW - timedelta(days=2))
    pkigen.kubelet_swap(tree.cert_dir, "client", path)


class TestParseAt:
    @pytest.mark.parametrize(("text", "instant"), [
        ("2027-01-15", datetime(2027, 1, 15, tzinfo=UTC)),
        ("2027-01-15T10:00:00Z", datetime(2027, 1, 15, 10, tzinfo=UTC)),
        ("2027-01-15T10:00:00", datetime(2027, 1, 15, 10, tzinfo=UTC)),
        ("2027-01-15T12:00:00+02:00", datetime(2027, 1, 15, 10, tzinfo=UTC)),
        (" 2027-01-15 10:00 ", datetime(2027, 1, 15, 10, tzinfo=UTC)),
    ], ids=["date", "zulu", "naive-is-utc", "offset", "space-separated"])
    def test_absolute_times_are_iso8601_and_utc(self, text: str, instant: datetime) -> None:
        """An ISO 8601 --at is an instant in UTC; without an offset it is taken as UTC."""
        at = parse_at(text)
        assert at.resolve(NOW) == instant
        assert at.resolve(NOW).tzinfo is not None
        assert at.resolve(NOW).utcoffset() == UTC.utcoffset(None)

    @pytest.mark.parametrize(("text", "offset"), [
        ("+30d", timedelta(days=30)), ("+12h", timedelta(hours=12)),
        ("+90m", timedelta(minutes=90)), ("+2w", timedelta(weeks=2)),
        ("+45s", timedelta(seconds=45)), ("+1.5d", timedelta(hours=36)),
        ("-1d", -timedelta(days=1)),
    ], ids=["days", "hours", "minutes", "weeks", "seconds", "fractional", "past"])
    def test_relative_times_count_from_now(self, text: str, offset: timedelta) -> None:
        """'+30d' means thirty days after the moment the check runs."""
        assert parse_at(text) == At(offset=offset)
        assert parse_at(text).resolve(NOW) == NOW + offset

    @pytest.mark.parametrize("text", [
        "tomorrow", "+30", "30d", "+d", "2027-13-01", "2027-01-15T25:00", "", "+1y",
        "+99999999999d", "9999-12-31T23:00:00-05:00",
    ], ids=["word", "no-unit", "no-sign", "no-number", "bad-month", "bad-hour", "empty",
            "years-unit", "overflow", "beyond-year-9999"])
    def test_anything_else_is_refused_with_an_example(self, text: str) -> None:
        """A value that is not a time is a usage error that shows the accepted forms."""
        with pytest.raises(argparse.ArgumentTypeError, match=r"\+30d|100 years"):
            parse_at(text)


class TestUsageErrors:
    @pytest.mark.parametrize("argv", [
        ["check", "--at", "next tuesday"],
        ["check", "--format", "xml"],
        ["check", "--critical-days", "banana"],
        ["check", "--warning-fraction", "2"],
        ["check", "--no-such-flag"],
        ["check", "unexpected-positional"],
        ["no-such-command"],
        [],
    ], ids=["bad-at", "bad-format", "bad-number", "bad-fraction", "unknown-flag",
            "positional", "unknown-command", "no-command"])
    def test_bad_command_lines_exit_unknown(self, argv: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
        """A usage error exits 3 (UNKNOWN), not argparse's 2 (which would read CRITICAL)."""
        run = run_in_process(argv, capsys)
        assert run.code == 3
        assert run.err.splitlines()[-1].startswith("UNKNOWN: kubelet-cert-agent")
        assert "Traceback" not in run.err and run.out == ""

    def test_bad_at_message_names_the_flag_and_the_value(
            self, capsys: pytest.CaptureFixture[str]) -> None:
        """The message says which flag was wrong and how to write it."""
        run = run_in_process(["check", "--at", "next tuesday"], capsys)
        assert "argument --at: not a time: 'next tuesday'" in run.err
        assert "+30d" in run.err

    def test_help_tells_an_operator_what_is_checked_and_how_to_read_the_exit_code(
            self, capsys: pytest.CaptureFixture[str]) -> None:
        """check --help exits 0 and explains the checks, the exit codes and an example."""
        run = run_in_process(["check", "--help"], capsys)
        assert run.code == 0
        for text in ("rotation window", "0 OK", "1 WARNING", "2 CRITICAL", "3 UNKNOWN",
                     "kubelet-cert-agent check --offline --at +45d", "--ca-file", "--watch"):
            assert text in run.out
        assert all(code in run.out for code in codes.ALL)


class TestCommandLine:
    def test_a_broken_command_module_does_not_stop_check(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch) -> None:
        """If one command cannot be imported, check still runs and that command is UNKNOWN."""
        monkeypatch.setattr(cli, "COMMAND_MODULES",
                            (*cli.COMMAND_MODULES, ("broken", "agent.no_such_module")))
        tree = healthy_node(tmp_path)
        assert run_in_process(tree.args(), capsys).code == 0
        broken = run_in_process(["broken"], capsys)
        assert broken.code == 3
        assert "command 'broken' is unavailable" in broken.err

    @pytest.mark.parametrize("argv", [["--version"], ["--help"], ["check", "--help"],
                                      ["demo", "--help"]],
                             ids=["version", "help", "check-help", "demo-help"])
    def test_help_and_version_exit_zero(self, argv: list[str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
        """--help and --version print to stdout and exit 0."""
        run = run_in_process(argv, capsys)
        assert run.code == 0 and run.out and run.err == ""


class TestReadme:
    def test_every_finding_code_is_documented(self) -> None:
        """README's findings section has a row for every code in agent/codes.py."""
        text = (REPO / "README.md").read_text()
        section = text.split("<!-- section:findings -->")[1].split("<!-- /section:findings")[0]
        rows = {line.split("|")[1].strip(" `") for line in section.splitlines()
                if line.startswith("| `")}
        assert rows == set(codes.ALL)


class TestVerdicts:
    def test_healthy_node_is_ok(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A healthy node exits 0 and the table's last line says OK."""
        tree = healthy_node(tmp_path)
        run = run_in_process(tree.args(), capsys)
        assert run.code == 0, run.out
        assert run.out.splitlines()[-1].startswith("OK: ")
        assert run.err == ""

    def test_self_signed_serving_certificate_is_a_warning(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Without serverTLSBootstrap the kubelet serves its self-signed kubelet.crt: exit 1."""
        tree = healthy_node(tmp_path, server=False, fallback=True, server_tls_bootstrap=False)
        run = run_in_process(tree.args("--format", "json"), capsys)
        assert run.code == 1, run.out
        assert codes.SERVER_CERT_SELF_SIGNED in _codes(run)

    def test_expired_client_certificate_is_critical(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An expired kubelet-client-current.pem exits 2 with CERT_EXPIRED."""
        tree = healthy_node(tmp_path)
        _expire_client(tree)
        run = run_in_process(tree.args("--format", "json"), capsys)
        assert run.code == 2
        assert codes.CERT_EXPIRED in _codes(run)

    def test_at_in_the_future_flips_ok_to_critical(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The same healthy tree judged after its certificates' expiry is CRITICAL."""
        tree = healthy_node(tmp_path)
        assert run_in_process(tree.args(), capsys).code == 0
        later = run_in_process(tree.args("--format", "json", at=NOW + timedelta(days=400)),
                               capsys)
        assert later.code == 2
        assert codes.CERT_EXPIRED in _codes(later)
        assert json.loads(later.out)["evaluated_at"] == "2027-12-28T12:00:00Z"

    def test_relative_at_counts_from_the_clock(self, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
        """'--at +400d' is judged 400 days after the clock's now."""
        tree = healthy_node(tmp_path)
        argv = [*tree.args("--format", "json")[:-4], "--at", "+400d", "--format", "json"]
        args = build_parser().parse_args(argv)
        code = run_check(args, clock=clock.fixed(NOW))
        doc = json.loads(capsys.readouterr().out)
        assert code == 2
        assert doc["evaluated_at"] == "2027-12-28T12:00:00Z"

    def test_thresholds_come_from_the_flags(self, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
        """With --warning-days larger than the time left, a healthy tree becomes a warning."""
        tree = healthy_node(tmp_path)
        run = run_in_process(tree.args("--format", "json", "--warning-days", "400",
                                       "--warning-fraction", "0.99"), capsys)
        assert run.code == 1
        assert codes.CERT_EXPIRING_SOON in _codes(run)


class TestJsonFormat:
    def test_json_has_every_documented_field(self, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
        """--format json prints one JSON document with the documented schema."""
        tree = healthy_node(tmp_path, fallback=True)
        run = run_in_process(tree.args("--format", "json"), capsys)
        doc = json.loads(run.out)
        assert set(doc) == TOP_LEVEL
        assert doc["exit_code"] == run.code and doc["node"] == NODE
        assert doc["evaluated_at"] == "2026-11-23T12:00:00Z"
        assert doc["api"] is None  # --offline
        roles = [c["role"] for c in doc["certificates"]]
        assert roles[:2] == ["client", "server"] and "ca" in roles
        for cert in doc["certificates"]:
            assert set(cert) == CERTIFICATE
        for finding in doc["findings"]:
            assert set(finding) == FINDING
        client = doc["certificates"][0]
        assert client["serial"] == format(tree.pki.client.cert.serial_number, "x")
        assert client["key_matches"] is True and client["trusted"] is True
        assert client["target"] == str(tree.pki.client_history[-1])
        assert doc["history"]["client"]["count"] == 3


def _garbage(tree: Tree) -> None:
    target = tree.cert_dir / "kubelet-client-current.pem"
    os.replace(target, tree.cert_dir / "x")
    (tree.cert_dir / "junk.pem").write_bytes(b"\x00\xffnot a certificate" * 50)
    target.symlink_to(tree.cert_dir / "junk.pem")


def _truncated(tree: Tree) -> None:
    data = tree.pki.client.cert_pem()
    target = Path(os.path.realpath(tree.cert_dir / "kubelet-client-current.pem"))
    target.write_bytes(data[: len(data) // 2])


def _empty(tree: Tree) -> None:
    target = Path(os.path.realpath(tree.cert_dir / "kubelet-server-current.pem"))
    target.write_bytes(b"")


def _dangling(tree: Tree) -> None:
    os.unlink(os.path.realpath(tree.cert_dir / "kubelet-server-current.pem"))


def _loop(tree: Tree) -> None:
    link = tree.cert_dir / "kubelet-server-current.pem"
    link.unlink()
    link.symlink_to(link)


def _config_garbage(tree: Tree) -> None:
    tree.config.write_text("serverTLSBootstrap: [unclosed\n\t- :")


def _no_cert_dir(tree: Tree) -> None:
    for path in tree.cert_dir.iterdir():
        path.unlink()
    tree.cert_dir.rmdir()


class TestBadInput:
    @pytest.mark.parametrize(("damage", "code"), [
        (_garbage, codes.CERT_UNREADABLE),
        (_truncated, codes.CERT_UNREADABLE),
        (_empty, codes.CERT_UNREADABLE),
        (_dangling, codes.SYMLINK_BROKEN),
        (_loop, codes.SYMLINK_BROKEN),
        (_config_garbage, codes.KUBELET_CONFIG_UNREADABLE),
        (_no_cert_dir, codes.CLIENT_CERT_MISSING),
    ], ids=["garbage", "truncated", "empty", "dangling-link", "link-loop", "config-garbage",
            "no-cert-dir"])
    def test_damaged_files_give_a_finding_not_a_traceback(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: object,
            code: str) -> None:
        """Each kind of damage is a specific finding, in both formats, with no traceback."""
        tree = healthy_node(tmp_path)
        damage(tree)  # type: ignore[operator]
        table = run_in_process(tree.args(), capsys)
        as_json = run_in_process(tree.args("--format", "json"), capsys)
        for run in (table, as_json):
            _no_traceback(run)
            assert run.code in (1, 2)
        assert code in _codes(as_json)
        assert code in table.out


class TestRealProcess:
    """The installed console script, as a monitoring system runs it."""

    def test_exit_codes_of_the_real_command(self, tmp_path: Path) -> None:
        """0 on a healthy node, 2 once the client expired, 3 on a bad flag."""
        tree = healthy_node(tmp_path)
        healthy = run_subprocess(tree.args())
        assert healthy.code == 0, healthy.err
        assert healthy.out.splitlines()[-1].startswith("OK: ")
        _expire_client(tree)
        expired = run_subprocess(tree.args("--format", "json"))
        assert expired.code == 2, expired.err
        assert json.loads(expired.out)["status"] == "CRITICAL"
        bad = run_subprocess(["check", "--at", "soon"])
        assert bad.code == 3
        assert "UNKNOWN" in bad.err and "Traceback" not in bad.err

    def test_undecodable_file_names_and_an_ascii_terminal_still_give_the_verdict(
            self, tmp_path: Path) -> None:
        """A non-UTF-8 file name under an ASCII-only locale shows its byte escaped, exit 1."""
        tree = healthy_node(tmp_path)
        watched = tmp_path / "watched"
        watched.mkdir()
        name = os.fsdecode(b"bad\xffname.crt")
        (watched / name).write_bytes(tree.pki.ca.cert_pem())
        run = run_subprocess(tree.args("--watch", str(watched), "--warning-days", "400",
                                       "--warning-fraction", "0.99"),
                             PYTHONIOENCODING="ascii", LC_ALL="C")
        _no_traceback(run)
        assert run.code == 1
        assert "bad\\xffname.crt" in run.out  # the very byte, not a '?' or a raw 0xff
        assert run.out.splitlines()[-1].startswith("WARNING: ")

    def test_fifo_as_current_certificate_does_not_hang(self, tmp_path: Path) -> None:
        """A current link to a FIFO is reported, not read (a read would block forever)."""
        tree = healthy_node(tmp_path)
        fifo = tree.cert_dir / "kubelet-server-fifo.pem"
        os.mkfifo(fifo)
        link = tree.cert_dir / "kubelet-server-current.pem"
        link.unlink()
        link.symlink_to(fifo)
        run = run_subprocess(tree.args("--format", "json"))
        _no_traceback(run)
        assert run.code == 2
        assert codes.SYMLINK_BROKEN in _codes(run)


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[KubeApi]:
    # The TLS handshake checks certificates against the real clock, so the fake API
    # server's PKI is made for the real present; the node itself is judged at NOW.
    api = KubeApi(root=tmp_path / "api", now=clock.utcnow())
    yield api
    api.stop()


def _online(tree: Tree, *extra: str) -> list[str]:
    argv = tree.args("--format", "json", *extra)
    argv.remove("--offline")
    return argv


class TestApiServer:
    def test_online_check_lists_this_nodes_serving_csrs(
            self, tmp_path: Path, kube_api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
        """Without --offline, check asks the API server once and judges the CSRs it lists."""
        tree = healthy_node(tmp_path / "node")
        run = run_in_process(_online(tree, "--kubeconfig", str(kube_api.kubeconfig())), capsys)
        doc = json.loads(run.out)
        assert doc["api"]["server"] == kube_api.url
        assert doc["api"]["error"] is None
        assert doc["api"]["identity"]["username"] == "system:node:node1"
        assert {c["state"] for c in doc["api"]["csrs"]} == {"Pending", "Approved"}
        assert codes.SERVING_CSR_NOT_ISSUED in _codes(run)  # the recorded list has one
        assert run.code == 1
        assert len(kube_api.requests("list")) == 1
        table = run_in_process([a for a in _online(tree, "--kubeconfig",
                                                   str(kube_api.kubeconfig()))
                                if a not in ("--format", "json")], capsys)
        assert f"API SERVER {kube_api.url}: ok as system:node:node1" in table.out

    def test_offline_never_contacts_the_api_server(
            self, tmp_path: Path, kube_api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
        """--offline reads files only, even when a kubeconfig is given."""
        tree = healthy_node(tmp_path / "node")
        run = run_in_process(tree.args("--kubeconfig", str(kube_api.kubeconfig())), capsys)
        assert run.code == 0
        assert kube_api.seen == []

    def test_unreachable_api_server_warns_at_the_first_failure(
            self, tmp_path: Path, kube_api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
        """A one-shot check has one attempt: a refused connection is APISERVER_UNREACHABLE."""
        tree = healthy_node(tmp_path / "node")
        run = run_in_process(_online(tree, "--kubeconfig", str(kube_api.kubeconfig()),
                                     "--server", f"https://127.0.0.1:{closed_port()}"), capsys)
        _no_traceback(run)
        assert run.code == 1
        assert codes.APISERVER_UNREACHABLE in _codes(run)

    def test_rejected_credentials_are_critical(
            self, tmp_path: Path, kube_api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
        """A 401 from the API server is APISERVER_AUTH_FAILED, CRITICAL."""
        tree = healthy_node(tmp_path / "node")
        rejected = recorded("list-node1-expired-cert-401.json")
        kube_api.script("review", rejected)
        kube_api.script("list", rejected)
        run = run_in_process(_online(tree, "--kubeconfig", str(kube_api.kubeconfig())), capsys)
        assert run.code == 2
        assert codes.APISERVER_AUTH_FAILED in _codes(run)

    def test_missing_kubeconfig_is_a_warning_that_suggests_offline(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """No credentials: APISERVER_NOT_CONFIGURED, and the message mentions --offline."""
        tree = healthy_node(tmp_path / "node")
        run = run_in_process(_online(tree, "--kubeconfig", str(tmp_path / "absent.conf")),
                             capsys)
        assert run.code == 1
        finding = next(f for f in json.loads(run.out)["findings"]
                       if f["code"] == codes.APISERVER_NOT_CONFIGURED)
        assert "--offline" in finding["message"]


class TestSwapGap:
    """`check` may land between the kubelet's remove and rename of -current.pem."""

    def _stop_in_gap(self, tmp_path: Path) -> tuple[pkigen.NodePki, SourceSettings]:
        pki = pkigen.build_node(tmp_path, NODE, NOW)
        new = pkigen.kubelet_client(pki.ca, NODE, NOW - timedelta(days=1))
        path = pkigen.write_generation(pki.cert_dir, "client", new, NOW)
        pkigen.kubelet_swap(pki.cert_dir, "client", path, stop_after=3)
        return pki, SourceSettings(cert_dir=pki.cert_dir, kubelet_config=None, node_name=NODE)

    def test_a_gap_the_kubelet_closes_is_read_again_not_reported(self, tmp_path: Path) -> None:
        pki, sources = self._stop_in_gap(tmp_path)
        pauses: list[float] = []

        def kubelet_finishes_the_swap(seconds: float) -> None:
            pauses.append(seconds)
            os.rename(pki.cert_dir / "kubelet-client-updated.pem",
                      pki.cert_dir / "kubelet-client-current.pem")

        snap = check_cmd.build_past_swap_gap(sources, NOW, None, kubelet_finishes_the_swap)
        assert len(pauses) == 1
        assert codes.CLIENT_CERT_MISSING not in {f.code for f in evaluate_findings(snap, NOW)}

    def test_a_gap_that_stays_is_an_interrupted_rotation(self, tmp_path: Path) -> None:
        _, sources = self._stop_in_gap(tmp_path)
        pauses: list[float] = []
        snap = check_cmd.build_past_swap_gap(sources, NOW, None, pauses.append)
        assert len(pauses) == check_cmd.SWAP_GAP_RETRIES
        found = {f.code: f for f in evaluate_findings(snap, NOW)}
        assert codes.CLIENT_CERT_MISSING not in found
        assert "renames the -updated.pem link" in found[codes.SWAP_INTERRUPTED].message


class TestStartUp:
    def test_check_does_not_import_the_daemon(self) -> None:
        """`check` imports only its own command module, not the daemon's watchdog/structlog."""
        import subprocess
        import sys

        code = ("import sys; from agent.cli import main; main(['check', '--help']); "
                "print('LOADED', sorted(m for m in ('agent.daemon', 'agent.demo', 'watchdog') "
                "if m in sys.modules))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
        assert "LOADED []" in out
