"""The systemd unit: what it promises, and what systemd itself thinks of it.

``systemd-analyze`` runs for real (``verify`` and ``security --offline``); the
MemoryDenyWriteExecute= promise is checked by running the agent's native parts under the
kernel's own W^X switch (``prctl(PR_SET_MDWE)``), which is what systemd applies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "kubelet-cert-agent.service"
CONFFILE = "/etc/default/kubelet-cert-agent"
MAX_EXPOSURE = 2.0
DEPENDENCY_KEYS = {"Requires", "Requisite", "Wants", "BindsTo", "PartOf", "Upholds", "After",
                   "Before", "Conflicts", "PropagatesReloadTo", "ReloadPropagatedFrom"}


def _need_tool(name: str) -> str:
    """Path of a Debian tool; skip locally, fail in CI, when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install systemd)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def unit_entries(text: str) -> Iterator[tuple[str, str, str]]:
    """(section, key, value) for every assignment, in order; keys may repeat in units."""
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        yield section, key.strip(), value.strip()


def unit_values(section: str, key: str) -> list[str]:
    return [v for s, k, v in unit_entries(UNIT.read_text()) if s == section and k == key]


def _unit_copy_for_verify(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart binary exists, for ``systemd-analyze verify``.

    verify refuses a unit whose command is missing, and the package is not installed here.
    """
    binary = tmp_path / "kubelet-cert-agent"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    copy = unit_dir / UNIT.name
    copy.write_text(UNIT.read_text().replace("/usr/bin/kubelet-cert-agent", str(binary)))
    return copy


class TestUnitFile:
    @pytest.mark.parametrize(
        ("key", "expected"),
        [
            ("Type", "notify"),
            ("NotifyAccess", "main"),
            ("WatchdogSec", "30s"),
            ("Restart", "always"),
            ("RestartSec", "5s"),
            ("TimeoutStopSec", "5s"),
            ("EnvironmentFile", f"-{CONFFILE}"),
            ("ExecReload", "/bin/kill -HUP $MAINPID"),
            ("ReadWritePaths", "-/var/lib/prometheus/node-exporter"),
        ],
        ids=str,
    )
    def test_service_setting(self, key: str, expected: str) -> None:
        """Each promised [Service] setting is present exactly once with its value."""
        assert unit_values("Service", key) == [expected]

    def test_descriptor_limit_leaves_room_above_the_http_cap(self) -> None:
        """LimitNOFILE is far above what a full HTTP endpoint holds (issue 13: EMFILE)."""
        from agent.sinks.httpserver import MAX_CONNECTIONS

        (limit,) = unit_values("Service", "LimitNOFILE")
        assert int(limit) >= 16 * MAX_CONNECTIONS

    @pytest.mark.parametrize("protection", [
        "ProtectSystem", "NoNewPrivileges", "MemoryDenyWriteExecute", "UMask", "PrivateTmp",
        "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules",
        "ProtectControlGroups", "ProtectHome", "RestrictSUIDSGID", "LockPersonality",
        "CapabilityBoundingSet_CAP_SYS_ADMIN", "CapabilityBoundingSet_CAP_NET_ADMIN",
        "RestrictAddressFamilies_AF_PACKET", "RestrictAddressFamilies_AF_NETLINK",
        "RestrictNamespaces_user", "SystemCallFilter_privileged", "SystemCallFilter_mount",
    ])
    def test_systemd_applies_the_promised_protection(self, protection: str,
                                                     tmp_path: Path) -> None:
        """What systemd itself reads from the unit (`systemd-analyze security --json`), not
        the unit's text: each protection the README promises is in effect."""
        tool = _need_tool("systemd-analyze")
        unit = _unit_copy_for_verify(tmp_path)
        result = subprocess.run([tool, "security", "--offline=yes", "--json=short", str(unit)],
                                capture_output=True, text=True, check=False, timeout=120)
        assert result.returncode == 0, result.stderr
        applied = {row["json_field"]: row["set"] for row in json.loads(result.stdout)}
        assert applied.get(protection) is True, protection

    def test_system_calls_are_limited_to_a_service_s_set(self) -> None:
        """SystemCallFilter= allows @system-service (the README's promise); later lines only
        deny more."""
        filters = unit_values("Service", "SystemCallFilter")
        assert filters[0] == "@system-service"
        assert all(f.startswith("~") for f in filters[1:]), filters

    def test_exec_start_runs_the_daemon_with_the_reloadable_flags_file(self) -> None:
        """ExecStart runs `run --flags-file <conffile>` plus the args from the environment."""
        assert unit_values("Service", "ExecStart") == [
            f"/usr/bin/kubelet-cert-agent run --flags-file {CONFFILE} $KUBELET_CERT_AGENT_ARGS"
        ]

    def test_does_not_depend_on_the_kubelet(self) -> None:
        """No dependency of any kind on kubelet.service: the agent must outlive a dead kubelet."""
        for section, key, value in unit_entries(UNIT.read_text()):
            if section == "Unit" and key in DEPENDENCY_KEYS:
                assert "kubelet" not in value.lower(), f"{key}={value}"
        assert unit_values("Unit", "Requires") == []

    def test_keys_stay_readable(self) -> None:
        """Neither DynamicUser= nor PrivateUsers=: both would hide the root-only 0600 keys."""
        keys = {k for _, k, _ in unit_entries(UNIT.read_text())}
        assert not keys & {"DynamicUser", "PrivateUsers"}

    def test_only_the_textfile_directory_is_writable(self) -> None:
        """ProtectSystem=strict leaves one writable path, optional with its '-' prefix."""
        writable = [v for _, k, v in unit_entries(UNIT.read_text())
                    if k in {"ReadWritePaths", "StateDirectory", "LogsDirectory"}]
        assert writable == ["-/var/lib/prometheus/node-exporter"]

    def test_is_enabled_for_the_normal_boot_target(self) -> None:
        """`systemctl enable` hooks it into multi-user.target."""
        assert unit_values("Install", "WantedBy") == ["multi-user.target"]


class TestSystemdAnalyze:
    def test_verify_is_clean(self, tmp_path: Path) -> None:
        """`systemd-analyze verify` accepts the unit without a single message."""
        tool = _need_tool("systemd-analyze")
        unit = _unit_copy_for_verify(tmp_path)
        result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True,
                                check=False, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == ""

    def test_verify_catches_a_broken_unit(self, tmp_path: Path) -> None:
        """The verify step can fail: a misspelt setting is reported (guards the test above)."""
        tool = _need_tool("systemd-analyze")
        unit = _unit_copy_for_verify(tmp_path)
        unit.write_text(unit.read_text().replace("Restart=always", "Restart=allways"))
        result = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True,
                                check=False, timeout=120)
        assert "allways" in result.stderr

    def test_security_exposure_is_at_most_2(self, tmp_path: Path) -> None:
        """`systemd-analyze security --offline=yes` rates the unit's exposure <= 2.0."""
        tool = _need_tool("systemd-analyze")
        unit = _unit_copy_for_verify(tmp_path)
        result = subprocess.run([tool, "security", "--offline=yes", "--no-pager", str(unit)],
                                capture_output=True, text=True, check=False, timeout=120)
        match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
        assert match, result.stdout + result.stderr
        assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


# Runs in a child: switch on the kernel's MDWE (what MemoryDenyWriteExecute= applies), prove it
# is on, then exercise every native part the agent uses: OpenSSL via cryptography and ssl,
# libyaml, inotify through ctypes, and the real `demo` + `check --offline` commands.
_MDWE_PROBE = textwrap.dedent("""
    import ctypes, json, mmap, socket, ssl, sys, tempfile, threading
    from pathlib import Path
    PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        print("NO-MDWE"); sys.exit(0)
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        print("MDWE-NOT-ENFORCED"); sys.exit(1)
    except OSError:
        pass
    import yaml
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers.inotify import InotifyObserver
    from agent import pkigen
    from agent.cli import main
    from datetime import datetime, timezone
    root = Path(sys.argv[1])
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    node = pkigen.build_node(root / "node", "mdwe-node", now)
    assert yaml.load("a: [1, 2]", Loader=yaml.CSafeLoader) == {"a": [1, 2]}
    seen = threading.Event()
    class Handler(FileSystemEventHandler):
        def on_any_event(self, event):
            seen.set()
    observer = InotifyObserver()
    observer.schedule(Handler(), str(node.cert_dir))
    observer.start()
    (node.cert_dir / "touched").write_text("x")
    assert seen.wait(30), "no inotify event"
    observer.stop(); observer.join(30)
    server = node.server
    (root / "srv.pem").write_bytes(server.cert_pem() + server.key_pem())
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(root / "srv.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    def serve():
        conn, _ = listener.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"ok")
    threading.Thread(target=serve, daemon=True).start()
    client = ssl.create_default_context(cafile=str(node.ca_file))
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE  # the demo PKI is dated 2030; only the crypto matters
    with socket.create_connection(listener.getsockname()) as raw:
        with client.wrap_socket(raw) as tls:
            assert tls.recv(2) == b"ok"
    demo = root / "demo"
    assert main(["demo", str(demo)]) == 0
    code = main(["check", "--offline", "--cert-dir", str(demo / "pki"),
                 "--kubelet-config", str(demo / "config.yaml"), "--node-name", "demo-node-1"])
    assert code in (0, 1, 2), code
    print("MDWE-OK")
""")


class TestMemoryDenyWriteExecute:
    def test_agent_runs_with_write_xor_execute_memory(self, tmp_path: Path) -> None:
        """OpenSSL, libyaml, inotify via ctypes and `demo`/`check` all work under MDWE."""
        result = subprocess.run([sys.executable, "-c", _MDWE_PROBE, str(tmp_path)],
                                capture_output=True, text=True, check=False, timeout=300,
                                cwd=ROOT)
        if "NO-MDWE" in result.stdout:
            pytest.skip("kernel without PR_SET_MDWE (Linux < 6.3): cannot emulate the setting")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "MDWE-OK" in result.stdout
