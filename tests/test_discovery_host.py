"""Discovery on real trees under a temporary --host-root, and real processes via /proc."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.model import KubeletSettings, ReadProblem
from agent.sources.discovery import procscan
from agent.sources.discovery.discover import Request, discover
from tests import hosttree
from tests.hosttree import kubelet_config, write

NO_PROCS: frozenset[int] = frozenset()  # trees only: no process on this machine counts


def find(root: Path, pids: frozenset[int] | None = NO_PROCS, **kw: str) -> KubeletSettings:
    return discover(Request(host_root=str(root), **kw), pids=pids,
                    gethostname=lambda: "Host-Name.example ")


class TestKubeadm:
    @pytest.mark.parametrize("rpm", [False, True], ids=["deb", "rpm"])
    def test_packaged_unit_drop_in_and_env_files(self, tmp_path: Path, rpm: bool) -> None:
        """kubeadm's 10-kubeadm.conf + kubeadm-flags.env + /etc/default/kubelet
        (/etc/sysconfig/kubelet) give exactly the kubelet's command line."""
        hosttree.kubeadm_node(tmp_path, rpm=rpm,
                              extra_args='"--hostname-override=Worker-7 --node-ip=10.0.0.7"')
        k = find(tmp_path)
        extra = "/etc/sysconfig/kubelet" if rpm else "/etc/default/kubelet"
        dropin = "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"
        assert k.found and k.unit == "/usr/lib/systemd/system/kubelet.service"
        assert k.binary == "/usr/bin/kubelet" and k.pid is None and not k.problems
        assert None not in {s.source for s in k.settings().values()}
        assert k.node_name.value == "worker-7"
        assert k.node_name.source == f"{extra} KUBELET_EXTRA_ARGS, --hostname-override"
        assert (k.config.value, k.config.source) == ("/var/lib/kubelet/config.yaml",
                                                     f"{dropin}, --config")
        assert (k.kubeconfig.value, k.bootstrap_kubeconfig.value) == (
            "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/bootstrap-kubelet.conf")
        assert (k.cert_dir.value, k.cert_dir.source) == ("/var/lib/kubelet/pki", "default")
        assert k.rotate_certificates.value is True
        assert k.rotate_certificates.source == "/var/lib/kubelet/config.yaml"
        assert (k.server_tls_bootstrap.value, k.server_tls_bootstrap.source) == (False,
                                                                                 "default")
        assert k.client_ca_file.value == "/etc/kubernetes/pki/ca.crt"
        assert (k.address.value, k.port.value) == ("0.0.0.0", 10250)  # noqa: S104

    def test_empty_extra_args_and_host_name(self, tmp_path: Path) -> None:
        """KUBELET_EXTRA_ARGS= (as packaged) adds nothing: the node name is the host name,
        trimmed and lowercased like the kubelet's GetHostname."""
        k = find(hosttree.kubeadm_node(tmp_path))
        assert (k.node_name.value, k.node_name.source) == ("host-name.example", "host name")

    def test_missing_optional_environment_files_are_fine(self, tmp_path: Path) -> None:
        hosttree.kubeadm_node(tmp_path)
        (tmp_path / "etc/default/kubelet").unlink()
        (tmp_path / "var/lib/kubelet/kubeadm-flags.env").unlink()
        k = find(tmp_path)
        assert not k.problems and k.config.value == "/var/lib/kubelet/config.yaml"

    def test_a_missing_required_environment_file_is_a_problem(self, tmp_path: Path) -> None:
        hosttree.kubeadm_node(tmp_path)
        write(tmp_path, "/etc/systemd/system/kubelet.service.d/20-env.conf",
              "[Service]\nEnvironmentFile=/etc/kubelet.env\n")
        k = find(tmp_path)
        assert any("/etc/kubelet.env" in p and "will not start" in p for p in k.problems)

    def test_same_name_in_etc_hides_the_packaged_drop_in(self, tmp_path: Path) -> None:
        """/etc/systemd/system/kubelet.service.d/10-kubeadm.conf replaces /usr/lib's."""
        hosttree.kubeadm_node(tmp_path)
        write(tmp_path, "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
              "[Service]\nExecStart=\nExecStart=/usr/bin/kubelet --cert-dir=/etc/pki\n")
        k = find(tmp_path)
        assert k.cert_dir.value == "/etc/pki" and k.config.value is None

    def test_exec_start_reset_twice(self, tmp_path: Path) -> None:
        hosttree.kubeadm_node(tmp_path)
        d = "/etc/systemd/system/kubelet.service.d"
        write(tmp_path, f"{d}/20-a.conf", "[Service]\nExecStart=\nExecStart=/a --cert-dir=/a\n")
        write(tmp_path, f"{d}/30-b.conf", "[Service]\nExecStart=\nExecStart=/b --cert-dir=/b\n")
        k = find(tmp_path)
        assert (k.binary, k.cert_dir.value, k.cert_dir.source) == (
            "/b", "/b", f"{d}/30-b.conf, --cert-dir")


class TestSeeds:
    def test_binary_install_unit(self, tmp_path: Path) -> None:
        """The seeds' unit: flags inline, the line without a backslash ends ExecStart."""
        k = find(hosttree.seeds_node(tmp_path))
        unit = "/etc/systemd/system/kubelet.service"
        assert (k.unit, k.binary) == (unit, "/opt/k8s/bin/kubelet")
        assert (k.cert_dir.value, k.cert_dir.source) == ("/etc/kubernetes/cert",
                                                         f"{unit}, --cert-dir")
        assert k.node_name.value == "m7-autocv-gpu01"
        assert k.kubeconfig.value == "/etc/kubernetes/kubelet.kubeconfig"
        assert k.bootstrap_kubeconfig.value == "/etc/kubernetes/kubelet-bootstrap.kubeconfig"
        assert k.server_tls_bootstrap.value is True and k.rotate_certificates.value is True
        assert (k.address.value, k.port.value) == ("192.168.1.88", 10250)
        assert k.client_ca_file.value == "/etc/kubernetes/cert/ca.pem"


class TestConfigs:
    def test_json_config_and_config_dir_drop_ins(self, tmp_path: Path) -> None:
        """--config as JSON, *.conf drop-ins in lexical order over it, flags over both."""
        write(tmp_path, "/etc/systemd/system/kubelet.service",
              "[Service]\nExecStart=/k --config=/etc/k/kubelet.config.json "
              "--config-dir=/etc/k/conf.d --tls-cert-file=/flag.crt\n")
        write(tmp_path, "/etc/k/kubelet.config.json", kubelet_config(
            rotateCertificates=True, tlsCertFile="/cfg.crt", port=1,
            authentication={"x509": {"clientCAFile": "ca.pem"}, "anonymous": {"enabled": False}}))
        write(tmp_path, "/etc/k/conf.d/20-b.conf", kubelet_config(port=3))
        write(tmp_path, "/etc/k/conf.d/10-a.conf", kubelet_config(
            port=2, serverTLSBootstrap=True, rotateCertificates=False))
        write(tmp_path, "/etc/k/conf.d/99-ignored.yaml", kubelet_config(port=9))
        k = find(tmp_path)
        assert k.config_files == ("/etc/k/kubelet.config.json", "/etc/k/conf.d/10-a.conf",
                                  "/etc/k/conf.d/20-b.conf")
        assert (k.port.value, k.port.source) == (3, "/etc/k/conf.d/20-b.conf")
        assert k.server_tls_bootstrap.source == "/etc/k/conf.d/10-a.conf"
        assert k.rotate_certificates.value is False
        assert k.tls_cert_file.value == "/flag.crt"
        assert k.client_ca_file.value == "/etc/k/ca.pem"  # relative to its file

    @pytest.mark.parametrize("text", ["kind: Pod\napiVersion: v1\n", "{}\n",
                                      "root:x:0:0::/root:/bin/bash\n"])
    def test_a_config_of_another_kind_is_an_error(self, tmp_path: Path, text: str) -> None:
        write(tmp_path, "/etc/systemd/system/kubelet.service",
              "[Service]\nExecStart=/k --config=/c.yaml\n")
        write(tmp_path, "/c.yaml", text)
        k = find(tmp_path)
        assert k.config_error is not None and k.config_error.problem is ReadProblem.GARBAGE
        assert k.rotate_certificates.value is None  # unknown, never a guess

    def test_a_field_of_the_wrong_type_is_refused_like_the_kubelet_does(
            self, tmp_path: Path) -> None:
        """rotateCertificates: "yes" makes the kubelet refuse the file: an error, and the
        setting is unknown (never a false ROTATION_DISABLED from the default)."""
        write(tmp_path, "/etc/systemd/system/kubelet.service",
              "[Service]\nExecStart=/k --config=/c.yaml --config-dir=/d\n")
        write(tmp_path, "/c.yaml", kubelet_config(serverTLSBootstrap=True))
        write(tmp_path, "/d/10.conf", kubelet_config(rotateCertificates="yes", port="x"))
        k = find(tmp_path)
        assert k.config_error is not None
        assert "rotateCertificates is not a boolean" in k.config_error.detail
        assert "/d/10.conf" in k.config_error.detail
        assert k.rotate_certificates.value is None and k.server_tls_bootstrap.value is True

    def test_config_path_that_is_a_fifo_does_not_hang(self, tmp_path: Path) -> None:
        write(tmp_path, "/etc/systemd/system/kubelet.service",
              "[Service]\nExecStart=/k --config=/fifo\n")
        os.mkfifo(tmp_path / "fifo")
        k = find(tmp_path)
        assert k.config_error is not None and k.config_error.problem is ReadProblem.NOT_REGULAR
        assert "/fifo" in k.config_error.detail and str(tmp_path) not in k.config_error.detail

    def test_feature_gate_vetoes_server_tls_bootstrap(self, tmp_path: Path) -> None:
        write(tmp_path, "/etc/systemd/system/kubelet.service",
              "[Service]\nExecStart=/k --rotate-server-certificates "
              "--feature-gates=RotateKubeletServerCertificate=false\n")
        k = find(tmp_path)
        assert k.server_tls_bootstrap.value is True and k.rotate_server_gate.value is False
        assert k.effective_server_tls_bootstrap is False


class TestBadUnits:
    @pytest.mark.parametrize(("data", "words"), [
        pytest.param(b"[Service]\n" + b"#" * (2 << 20), "larger than", id="huge"),
        pytest.param(b"\x7fELF\x00\x01\x02" * 100, "binary", id="binary"),
    ])
    def test_unreadable_unit_is_a_problem(self, tmp_path: Path, data: bytes, words: str) -> None:
        write(tmp_path, "/etc/systemd/system/kubelet.service", data)
        k = find(tmp_path)
        assert k.found and any(words in p for p in k.problems)
        assert k.cert_dir.value == "/var/lib/kubelet/pki"

    def test_unterminated_quote_and_continuation_at_eof(self, tmp_path: Path) -> None:
        write(tmp_path, "/etc/systemd/system/kubelet.service",
              '[Service]\nEnvironment="A=--cert-dir=/x\nExecStart=/k $A --config=/c \\')
        k = find(tmp_path)
        assert k.binary == "/k" and k.config.value == "/c" and k.cert_dir.source == "default"
        assert any("unterminated" in p for p in k.problems)

    def test_masked_unit(self, tmp_path: Path) -> None:
        (tmp_path / "etc/systemd/system").mkdir(parents=True)
        (tmp_path / "etc/systemd/system/kubelet.service").symlink_to("/dev/null")
        k = find(tmp_path)
        assert any("masked" in p for p in k.problems)


class TestNotFound:
    def test_empty_host_is_not_found_and_says_where_it_looked(self, tmp_path: Path) -> None:
        k = find(tmp_path)
        assert not k.found and k.rotate_certificates.value is None
        assert any("kubelet.service" in w for w in k.looked)

    def test_an_explicit_cert_dir_is_enough(self, tmp_path: Path) -> None:
        k = find(tmp_path, cert_dir="/pki")
        assert k.found and k.cert_dir.source == "agent flag --cert-dir"


class TestProcFiles:
    """A /proc tree under the host root (what a container sees at /host/proc)."""

    def _proc(self, root: Path, pid: int, cmdline: bytes, comm: str = "kubelet",
              start: int = 100) -> None:
        write(root, f"/proc/{pid}/stat", f"{pid} ({comm}) S 1 1 1 0 -1 4194560 " + " ".join(
            ["0"] * 12) + f" {start} 0 0\n")
        write(root, f"/proc/{pid}/comm", f"{comm}\n")
        write(root, f"/proc/{pid}/cmdline", cmdline)
        write(root, "/proc/stat", "cpu 1 2 3\nbtime 1700000000\n")

    def test_oldest_kubelet_wins_and_others_are_listed(self, tmp_path: Path) -> None:
        self._proc(tmp_path, 900, b"/k\0--cert-dir=/new\0", start=500)
        self._proc(tmp_path, 812, b"/k\0--cert-dir=/old\0", start=100)
        self._proc(tmp_path, 700, b"/bin/sh\0", comm="sh", start=1)
        k = find(tmp_path, pids=None)
        assert (k.pid, k.other_pids) == (812, (900,))
        assert (k.cert_dir.value, k.cert_dir.source) == ("/old", "kubelet pid 812, --cert-dir")
        assert "1 more kubelet processes (900)" in k.describe()
        assert k.started_at is not None and k.started_at.timestamp() == pytest.approx(
            1700000000 + 100 / os.sysconf("SC_CLK_TCK"))

    def test_cmdline_of_nuls_only_falls_back_to_the_unit(self, tmp_path: Path) -> None:
        self._proc(tmp_path, 812, b"\0\0\0")
        hosttree.seeds_node(tmp_path)
        k = find(tmp_path, pids=None)
        assert k.pid == 812 and k.cert_dir.value == "/etc/kubernetes/cert"
        assert any("empty command line" in p for p in k.problems)

    def test_malformed_stat_is_skipped(self, tmp_path: Path) -> None:
        write(tmp_path, "/proc/5/comm", "kubelet\n")
        write(tmp_path, "/proc/5/stat", "garbage")
        assert procscan.kubelets(str(tmp_path / "proc")) == []


@pytest.fixture
def kubelet_process(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real process whose comm is ``kubelet`` and whose argv is the seeds' command line."""
    proc = hosttree.start_kubelet(tmp_path / "bin", hosttree.SEEDS_ARGV)
    yield proc
    proc.kill()
    proc.wait(5)


class TestRealProcess:
    def test_running_kubelet_is_read_through_real_proc(
            self, tmp_path: Path, kubelet_process: subprocess.Popen[bytes]) -> None:
        hosttree.seeds_node(tmp_path / "host", node="from-the-unit")
        host = tmp_path / "host"
        (host / "proc").symlink_to("/proc")
        k = find(host, pids=frozenset({kubelet_process.pid}))
        origin = f"kubelet pid {kubelet_process.pid}"
        assert (k.pid, k.binary) == (kubelet_process.pid, "/opt/k8s/bin/kubelet")
        assert (k.cert_dir.value, k.cert_dir.source) == ("/etc/kubernetes/cert",
                                                         f"{origin}, --cert-dir")
        assert k.node_name.value == "m7-autocv-gpu01"  # the process wins over the unit
        assert k.unit == "/etc/systemd/system/kubelet.service"
        assert k.started_at is not None

    def test_a_process_that_vanishes_mid_read(self, kubelet_process: subprocess.Popen[bytes],
                                              ) -> None:
        found = procscan.kubelets("/proc", {kubelet_process.pid})
        assert found
        kubelet_process.kill()
        kubelet_process.wait(5)
        argv, problem = procscan.read_cmdline("/proc", kubelet_process.pid)
        assert argv is None and problem is not None and "exited" in problem
        assert not procscan.alive("/proc", found[0])

    def test_scan_while_processes_come_and_go(self, tmp_path: Path) -> None:
        """Processes exiting during the scan never make it raise."""
        stop = threading.Event()

        def churn() -> None:
            while not stop.is_set():
                subprocess.run(["true"], check=False)

        worker = threading.Thread(target=churn)
        worker.start()
        try:
            for _ in range(20):
                procscan.scan("/proc")
        finally:
            stop.set()
            worker.join(10)
