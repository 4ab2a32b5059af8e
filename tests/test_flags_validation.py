"""Every numeric flag is finite and in range: check exits 3, run refuses, reload keeps."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.cli import main
from agent.daemon.loop import Daemon
from tests.daemonkit import NODE, Node, build

BAD_VALUES = ["nan", "inf", "-inf", "1e308", "0", "-1", "ten"]
NUMERIC_FLAGS = ["--critical-days", "--warning-days", "--critical-fraction",
                 "--warning-fraction", "--csr-stale-after", "--issue-timeout",
                 "--csr-interval"]
DAEMON_FLAGS = ["--poll", "--settle"]


@pytest.mark.parametrize("flag", NUMERIC_FLAGS)
@pytest.mark.parametrize("value", BAD_VALUES)
def test_check_exits_unknown_with_a_message_naming_flag_and_value(
        flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--offline", f"{flag}={value}"]) == 3
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and repr(value) in err and "Traceback" not in err


@pytest.mark.parametrize("flag", NUMERIC_FLAGS + DAEMON_FLAGS)
@pytest.mark.parametrize("value", ["nan", "1e308"])
def test_run_refuses_to_start(flag: str, value: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--offline", f"{flag}={value}"]) == 3
    assert f"argument {flag}" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--critical-days", "--csr-stale-after", "--settle"])
@pytest.mark.parametrize("value", ["nan", "1e308"])
def test_reload_with_a_bad_number_keeps_the_old_flags(tmp_path: Path, flag: str,
                                                      value: str) -> None:
    node: Node = build(tmp_path)
    flags = tmp_path / "default"
    base = (f"--offline --cert-dir {node.cert_dir} --kubelet-config {node.config} "
            f"--node-name {NODE}")
    flags.write_text(f'KUBELET_CERT_AGENT_ARGS="{base} --critical-days 3"\n')
    daemon = Daemon(node.settings(), flags_file=flags)
    assert daemon.reload()
    assert daemon.settings.policy.critical_days == 3.0
    flags.write_text(f'KUBELET_CERT_AGENT_ARGS="{base} --critical-days 5 {flag} {value}"\n')
    with capture_logs() as logs:
        assert not daemon.reload()
    assert [e["event"] for e in logs] == ["reload_failed"]
    assert flag in logs[0]["error"]
    assert daemon.settings.policy.critical_days == 3.0
