"""``check`` and ``discover`` on hosts whose kubelet is found by discovery alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import codes, pkigen
from agent.demo import DEFAULT_NODE, kubelet_kubeconfig
from agent.demo import run as demo_run
from tests import hosttree
from tests.hosttree import kubelet_config, write
from tests.nodetree import NOW, run_in_process

PKI = "/var/lib/kubelet/pki"


def check(root: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, Any]:
    # --no-kubeadm: a kubeadm worker has /etc/kubernetes/pki/ca.crt too; these tests are
    # about the kubelet
    run = run_in_process(["check", "--offline", "--host-root", str(root), "--at",
                          NOW.isoformat(), "--format", "json", "--no-kubeadm", "--no-probe",
                          *extra], capsys)
    return run.code, json.loads(run.out)


def codes_of(doc: dict[str, Any]) -> set[str]:
    return {f["code"] for f in doc["findings"]}


def kubeadm(root: Path, node: str = "worker-7", **kw: Any) -> Path:
    """A healthy kubeadm worker: serving certificates bootstrapped, cluster CA in place."""
    hosttree.kubeadm_node(root, extra_args=f"--hostname-override={node}")
    write(root, "/var/lib/kubelet/config.yaml",
          hosttree.KUBEADM_CONFIG + "serverTLSBootstrap: true\n")
    built = hosttree.pki_at(root, PKI, node, NOW, **kw)
    write(root, "/etc/kubernetes/pki/ca.crt", built.ca_file.read_bytes())
    write(root, "/etc/kubernetes/kubelet.conf", yaml.safe_dump(kubelet_kubeconfig(
        Path("/etc/kubernetes/pki/ca.crt"), Path(f"{PKI}/kubelet-client-current.pem"))))
    return root


class TestBinaryInstall:
    def test_demo_binary_layout_is_found_with_host_root_alone(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The seeds' binary install: the right verdict with no path flag at all."""
        import argparse
        demo_run(argparse.Namespace(directory=str(tmp_path / "host"), node_name=DEFAULT_NODE,
                                    layout="binary"), clock=lambda: NOW)
        capsys.readouterr()
        code, doc = check(tmp_path / "host", capsys)
        assert (code, codes_of(doc)) == (1, {codes.ROTATION_OVERDUE})
        assert doc["cert_dir"] == "/etc/kubernetes/cert"  # host paths in the output
        assert doc["kubelet"]["certDir"] == {
            "value": "/etc/kubernetes/cert",
            "source": "/etc/systemd/system/kubelet.service, --cert-dir"}
        assert doc["kubelet"]["nodeName"]["value"] == DEFAULT_NODE
        client = doc["certificates"][0]
        assert client["path"] == "/etc/kubernetes/cert/kubelet-client-current.pem"
        assert client["not_after"] is not None  # the absolute host link resolved under root

    def test_table_shows_the_kubelet_and_sources_above_the_table(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        hosttree.seeds_node(tmp_path)
        hosttree.pki_at(tmp_path, "/etc/kubernetes/cert", "m7-autocv-gpu01", NOW)
        run = run_in_process(["check", "--offline", "--no-probe", "--host-root", str(tmp_path)],
                             capsys)
        lines = run.out.splitlines()
        assert lines[0].startswith("KUBELET kubelet not running; settings from unit "
                                   "/etc/systemd/system/kubelet.service")
        assert any("/etc/kubernetes/cert (/etc/systemd/system/kubelet.service, --cert-dir)"
                   in line for line in lines[:16])


    def test_cert_dir_alone_still_finds_the_config_and_its_bootstrap(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--cert-dir given but not the config: the unit's --config still says
        serverTLSBootstrap, so a never-approved serving CSR is SERVER_CERT_MISSING."""
        hosttree.seeds_node(tmp_path)
        built = hosttree.pki_at(tmp_path, "/etc/kubernetes/cert", "m7-autocv-gpu01", NOW,
                                server=False, fallback=True)
        write(tmp_path, "/etc/kubernetes/cert/ca.pem", built.ca_file.read_bytes())
        code, doc = check(tmp_path, capsys, "--cert-dir", "/etc/kubernetes/cert")
        assert codes.SERVER_CERT_MISSING in codes_of(doc) and code == 2
        assert doc["kubelet"]["config"]["value"] == "/etc/kubernetes/kubelet-config.yaml"


class TestKubeadmNode:
    def test_healthy_kubeadm_node_is_ok_with_the_discovered_node_name(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--hostname-override from /etc/default/kubelet names the node: no
        IDENTITY_MISMATCH although the host is called otherwise."""
        code, doc = check(kubeadm(tmp_path), capsys)
        assert (code, codes_of(doc)) == (0, set())
        assert doc["node"] == "worker-7"

    def test_agent_node_name_flag_wins(self, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
        _, doc = check(kubeadm(tmp_path), capsys, "--node-name", "someone-else")
        assert codes.IDENTITY_MISMATCH in codes_of(doc)

    def test_config_silent_on_rotation_is_rotation_disabled(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The kubelet's default rotateCertificates is false."""
        kubeadm(tmp_path)
        write(tmp_path, "/var/lib/kubelet/config.yaml", kubelet_config(serverTLSBootstrap=True))
        code, doc = check(tmp_path, capsys)
        assert codes_of(doc) == {codes.ROTATION_DISABLED} and code == 1
        message = doc["findings"][0]["message"]
        assert "by default" in message

    def test_rotate_server_certificates_flag_judges_the_rotated_serving_cert(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--rotate-server-certificates on the command line (config silent): the served
        certificate is kubelet-server-current.pem, not kubelet.crt."""
        kubeadm(tmp_path)
        write(tmp_path, "/var/lib/kubelet/config.yaml", hosttree.KUBEADM_CONFIG)
        write(tmp_path, "/etc/default/kubelet", "KUBELET_EXTRA_ARGS='--hostname-override="
              "worker-7 --rotate-server-certificates'\n")
        code, doc = check(tmp_path, capsys)
        assert (code, codes_of(doc)) == (0, set())
        assert doc["kubelet_config"]["server_tls_bootstrap"] is True
        assert doc["kubelet"]["serverTLSBootstrap"]["source"] == (
            "/etc/default/kubelet KUBELET_EXTRA_ARGS, --rotate-server-certificates")

    def test_wrong_kind_config_is_kubelet_config_unreadable(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        kubeadm(tmp_path)
        write(tmp_path, "/var/lib/kubelet/config.yaml", "apiVersion: v1\nkind: Pod\n")
        _, doc = check(tmp_path, capsys)
        assert codes.KUBELET_CONFIG_UNREADABLE in codes_of(doc)
        assert codes.ROTATION_DISABLED not in codes_of(doc)

    def test_settings_only_in_config_dir_drop_ins(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        kubeadm(tmp_path)
        write(tmp_path, "/var/lib/kubelet/config.yaml", kubelet_config(serverTLSBootstrap=True))
        write(tmp_path, "/var/lib/kubelet/kubeadm-flags.env",
              'KUBELET_KUBEADM_ARGS="--config-dir=/etc/kubernetes/kubelet.conf.d"\n')
        write(tmp_path, "/etc/kubernetes/kubelet.conf.d/50-rotate.conf",
              kubelet_config(rotateCertificates=True))
        code, doc = check(tmp_path, capsys)
        assert (code, codes_of(doc)) == (0, set())
        assert doc["kubelet"]["rotateCertificates"] == {
            "value": True, "source": "/etc/kubernetes/kubelet.conf.d/50-rotate.conf"}


class TestSwapInterrupted:
    def test_swap_stopped_between_remove_and_rename(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The kubelet's real swap stopped after step 3: a warning, the -updated.pem
        generation judged (here: expired, so CERT_EXPIRED), never CLIENT_CERT_MISSING."""
        kubeadm(tmp_path)
        cert_dir = tmp_path / PKI.lstrip("/")
        ca = pkigen.cluster_ca(NOW - pkigen.timedelta(days=1000))
        old = pkigen.kubelet_client(ca, "worker-7", NOW - pkigen.timedelta(days=40),
                                    pkigen.timedelta(days=30))
        generation = pkigen.write_generation(cert_dir, "client", old, NOW)
        pkigen.kubelet_swap(cert_dir, "client", generation, stop_after=3)
        hosttree.rehost_links(cert_dir, PKI)  # the kubelet links host paths
        code, doc = check(tmp_path, capsys)
        found = codes_of(doc)
        assert codes.SWAP_INTERRUPTED in found and codes.CERT_EXPIRED in found
        assert codes.CLIENT_CERT_MISSING not in found and code == 2


class TestNotFound:
    def test_no_kubelet_exits_unknown_and_never_client_cert_missing(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, doc = check(tmp_path, capsys)
        assert (code, codes_of(doc)) == (3, {codes.KUBELET_NOT_FOUND})
        message = doc["findings"][0]["message"]
        assert "kubelet.service" in message and "--host-root" in message

    def test_discover_command(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert run_in_process(["discover", "--host-root", str(tmp_path)], capsys).code == 3
        kubeadm(tmp_path)
        run = run_in_process(["discover", "--host-root", str(tmp_path), "--format", "json"],
                             capsys)
        doc = json.loads(run.out)
        assert run.code == 0 and doc["kubelet_found"] is True
        assert doc["kubelet"]["nodeName"]["value"] == "worker-7"
        run = run_in_process(["discover", "--help"], capsys)
        assert run.code == 0 and "Precedence" in run.out and "--host-root" in run.out
