"""Specification of ``kubelet-cert-agent demo``: a realistic node PKI to try ``check`` on."""

from __future__ import annotations

import json
import shlex
import stat
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from agent import codes
from agent.demo import DEFAULT_NODE, check_command, write_demo
from tests.nodetree import NOW, REPO, run_in_process


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    write_demo(tmp_path / "demo-node", DEFAULT_NODE, NOW)
    return tmp_path / "demo-node"


def _certs(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


class TestWriteDemo:
    def test_layout_is_the_kubelets(self, demo: Path) -> None:
        """pki/ holds timestamped generations, -current.pem links, kubelet.crt/key."""
        pki = demo / "pki"
        clients = sorted(pki.glob("kubelet-client-2*.pem"))
        assert len(clients) == 4
        current = pki / "kubelet-client-current.pem"
        assert current.is_symlink() and current.resolve() == clients[-1]
        assert (pki / "kubelet-server-current.pem").is_symlink()
        assert {p.name for p in pki.iterdir()} >= {"kubelet.crt", "kubelet.key"}
        for generation in pki.glob("kubelet-*-2*.pem"):
            assert stat.S_IMODE(generation.stat().st_mode) == 0o600
            assert b"EC PRIVATE KEY" in generation.read_bytes()
        assert (demo / "ca.crt").is_file()

    def test_certificates_are_signed_by_the_cluster_ca(self, demo: Path) -> None:
        """Client and server chain to ca.crt; kubelet.crt to its own throw-away CA."""
        ca = _certs(demo / "ca.crt")[0]
        for role in ("client", "server"):
            leaf = _certs(demo / "pki" / f"kubelet-{role}-current.pem")[0]
            leaf.verify_directly_issued_by(ca)
            assert leaf.subject.rfc4514_string() == (
                f"CN=system:node:{DEFAULT_NODE},O=system:nodes")
        leaf, fallback_ca = _certs(demo / "pki" / "kubelet.crt")
        leaf.verify_directly_issued_by(fallback_ca)
        assert fallback_ca.subject != ca.subject

    def test_serving_certificate_is_past_its_rotation_window_but_not_expiring(
            self, demo: Path) -> None:
        """The one thing wrong: the server certificate is past 90 % of its life, >30 d left."""
        leaf = _certs(demo / "pki" / "kubelet-server-current.pem")[0]
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        assert leaf.not_valid_before_utc + lifetime * 0.9 < NOW
        assert leaf.not_valid_after_utc - NOW > timedelta(days=30)

    def test_kubelet_config_enables_rotation_and_names_the_ca(self, demo: Path) -> None:
        """config.yaml is a KubeletConfiguration with serverTLSBootstrap and clientCAFile."""
        doc = yaml.safe_load((demo / "config.yaml").read_text())
        assert doc["kind"] == "KubeletConfiguration"
        assert doc["serverTLSBootstrap"] is True and doc["rotateCertificates"] is True
        assert doc["authentication"]["x509"]["clientCAFile"] == str(demo.resolve() / "ca.crt")

    def test_kubeconfig_points_at_the_current_client_certificate(self, demo: Path) -> None:
        """kubelet.conf uses kubelet-client-current.pem for both cert and key, as kubeadm."""
        doc = yaml.safe_load((demo / "kubelet.conf").read_text())
        user = doc["users"][0]["user"]
        current = str(demo.resolve() / "pki" / "kubelet-client-current.pem")
        assert user == {"client-certificate": current, "client-key": current}
        assert doc["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"


class TestDemoCommand:
    def test_check_on_the_demo_is_one_warning(self, demo: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
        """Checking the demo gives WARNING (exit 1) with ROTATION_OVERDUE and nothing else."""
        argv = shlex.split(check_command(str(demo), DEFAULT_NODE))[1:]
        run = run_in_process([*argv, "--at", NOW.isoformat(), "--format", "json"], capsys)
        doc = json.loads(run.out)
        assert run.code == 1
        assert [f["code"] for f in doc["findings"]] == [codes.ROTATION_OVERDUE]

    def test_demo_turns_critical_forty_days_later(
            self, demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """As the README says: with --at +40d the unrenewed serving certificate has expired."""
        argv = shlex.split(check_command(str(demo), DEFAULT_NODE))[1:]
        later = (NOW + timedelta(days=40)).isoformat()
        run = run_in_process([*argv, "--at", later, "--format", "json"], capsys)
        assert run.code == 2
        assert codes.CERT_EXPIRED in {f["code"] for f in json.loads(run.out)["findings"]}

    def test_demo_prints_the_files_and_the_check_to_run(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """'demo DIR' lists what it wrote and the exact check command; that command warns."""
        target = tmp_path / "demo-node"
        run = run_in_process(["demo", str(target)], capsys)
        assert run.code == 0
        assert "pki/kubelet-client-current.pem -> kubelet-client-" in run.out
        assert "config.yaml" in run.out and "kubelet.conf" in run.out
        command = run.out.strip().splitlines()[-1].strip()
        assert command == check_command(str(target), DEFAULT_NODE)
        checked = run_in_process(shlex.split(command)[1:], capsys)
        assert checked.code == 1
        assert "ROTATION_OVERDUE" in checked.out

    def test_demo_refuses_a_directory_that_is_not_empty(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An existing non-empty DIR is UNKNOWN (3) and left untouched."""
        (tmp_path / "keep.txt").write_text("mine")
        run = run_in_process(["demo", str(tmp_path)], capsys)
        assert run.code == 3
        assert "not an empty directory" in run.err
        assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]

    def test_makefile_demo_target_checks_what_demo_writes(self) -> None:
        """'make demo' checks DIR/pki and DIR/config.yaml of the default node name."""
        makefile = (REPO / "Makefile").read_text()
        expected = check_command("DEMODIR", DEFAULT_NODE).replace("DEMODIR", "$(DEMO_DIR)")
        expected = expected.split(" ", 2)[2]  # without "kubelet-cert-agent check"
        assert " ".join(makefile.replace("\\\n", " ").split()).count(
            " ".join(expected.split())) == 1
        assert "kubelet-cert-agent demo $(DEMO_DIR)" in makefile
