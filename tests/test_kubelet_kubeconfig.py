"""The kubeconfig the kubelet uses after a restart: real files, links, FIFOs, garbage."""

from __future__ import annotations

import base64
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import codes, pkigen
from agent.check_cmd import evaluate
from agent.cli import build_parser
from agent.model import Evaluation, KubeconfigCertSource, Role, Severity
from tests.kubeapi import kubeconfig_doc
from tests.nodetree import NODE, NOW, Tree, healthy_node, write_config


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _write(tree: Tree, user: dict[str, Any], cluster: dict[str, Any] | None = None,
           name: str = "kubelet.conf") -> Path:
    cluster = cluster if cluster is not None else {
        "server": "https://127.0.0.1:6443", "certificate-authority": str(tree.pki.ca_file)}
    path = tree.root / name
    path.write_text(json.dumps(kubeconfig_doc(cluster, user)))
    return path


def _files(tree: Tree, cert: str | Path, key: str | Path | None = None) -> dict[str, Any]:
    return {"client-certificate": str(cert), "client-key": str(key or cert)}


def _judge(tree: Tree, kubeconfig: Path) -> Evaluation:
    args = build_parser().parse_args(tree.args("--no-probe", "--kubeconfig", str(kubeconfig)))
    return evaluate(args)


def _codes(ev: Evaluation) -> dict[str, Severity]:
    return {f.code: f.severity for f in ev.findings}


def _current(tree: Tree) -> Path:
    return tree.cert_dir / "kubelet-client-current.pem"


def test_a_reference_to_current_pem_adds_nothing(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    ev = _judge(tree, _write(tree, _files(tree, _current(tree))))
    assert ev.findings == ()
    assert ev.snapshot.kubeconfig is not None
    assert ev.snapshot.kubeconfig.cert_source is KubeconfigCertSource.CURRENT
    assert ev.snapshot.kubeconfig.client_trusted is True
    assert ev.snapshot.cert(Role.KUBECONFIG_CA) is not None


def test_a_relative_reference_is_resolved_from_the_kubeconfig_directory(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    ev = _judge(tree, _write(tree, _files(tree, "pki/kubelet-client-current.pem")))
    assert ev.findings == ()
    assert ev.snapshot.kubeconfig is not None
    assert ev.snapshot.kubeconfig.cert_ref == str(_current(tree))


def test_a_link_to_current_pem_adds_nothing(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    link = tmp_path / "client.pem"
    link.symlink_to(_current(tree))
    ev = _judge(tree, _write(tree, _files(tree, link)))
    assert ev.findings == ()


def test_the_current_generation_file_itself_is_not_rotating(tmp_path: Path) -> None:
    """The file -current.pem links to today: the next rotation moves the link, not it."""
    tree = healthy_node(tmp_path)
    generation = Path(os.path.realpath(_current(tree)))
    ev = _judge(tree, _write(tree, _files(tree, generation)))
    assert _codes(ev) == {codes.KUBECONFIG_CERT_NOT_ROTATING: Severity.WARNING}
    [finding] = ev.findings
    assert str(_current(tree)) in finding.message and "restart the kubelet" in finding.message


def test_an_embedded_certificate_is_not_rotating(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    client = tree.pki.client
    ev = _judge(tree, _write(tree, {"client-certificate-data": _b64(client.cert_pem()),
                                    "client-key-data": _b64(client.key_pem())}))
    assert _codes(ev) == {codes.KUBECONFIG_CERT_NOT_ROTATING: Severity.WARNING}
    assert "embeds its client certificate" in ev.findings[0].message
    embedded = ev.snapshot.cert(Role.KUBECONFIG_CLIENT)
    assert embedded is not None and embedded.path.endswith("#client-certificate-data")
    assert embedded.key_match.value == "match"


def test_an_embedded_expired_certificate_is_critical(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    old = pkigen.kubelet_client(tree.pki.ca, NODE, NOW - timedelta(days=400))
    ev = _judge(tree, _write(tree, {"client-certificate-data": _b64(old.cert_pem()),
                                    "client-key-data": _b64(old.key_pem())}))
    assert _codes(ev) == {codes.KUBECONFIG_CERT_NOT_ROTATING: Severity.CRITICAL,
                          codes.CERT_EXPIRED: Severity.CRITICAL}
    expired = next(f for f in ev.findings if f.code == codes.CERT_EXPIRED)
    assert expired.path is not None and expired.path.endswith("#client-certificate-data")


def test_an_embedded_certificate_of_another_node(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    other = pkigen.kubelet_client(tree.pki.ca, "node7", NOW - timedelta(days=10))
    ev = _judge(tree, _write(tree, {"client-certificate-data": _b64(other.cert_pem()),
                                    "client-key-data": _b64(other.key_pem())}))
    assert codes.IDENTITY_MISMATCH in _codes(ev)


def test_cert_and_key_apart(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    client = tree.pki.client
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    cert.write_bytes(client.cert_pem())
    pkigen.write_private(key, client.key_pem())
    ev = _judge(tree, _write(tree, _files(tree, cert, key)))
    assert _codes(ev) == {codes.KUBECONFIG_CERT_NOT_ROTATING: Severity.WARNING}
    pkigen.write_private(key, pkigen.new_key().private_bytes(  # another key
        *_pem_args()))
    ev = _judge(tree, _write(tree, _files(tree, cert, key)))
    assert _codes(ev)[codes.KEY_MISMATCH] is Severity.CRITICAL


def _pem_args() -> tuple[Any, Any, Any]:
    from cryptography.hazmat.primitives import serialization

    return (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())


def test_a_named_file_that_is_missing_is_critical(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    ev = _judge(tree, _write(tree, _files(tree, tmp_path / "gone.pem")))
    assert _codes(ev) == {codes.CERT_UNREADABLE: Severity.CRITICAL}


def test_a_fifo_kubeconfig_does_not_block(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    fifo = tmp_path / "kubelet.conf"
    os.mkfifo(fifo)
    ev = _judge(tree, fifo)
    assert _codes(ev) == {codes.KUBECONFIG_UNREADABLE: Severity.WARNING}


@pytest.mark.parametrize("text", ["{{{ not yaml", "- just\n- a list\n", "apiVersion: v1\n"])
def test_yaml_garbage_is_unreadable(tmp_path: Path, text: str) -> None:
    tree = healthy_node(tmp_path)
    path = tmp_path / "kubelet.conf"
    path.write_text(text)
    ev = _judge(tree, path)
    assert _codes(ev) == {codes.KUBECONFIG_UNREADABLE: Severity.WARNING}
    assert str(path) in ev.findings[0].message


def test_an_expired_ca_is_judged(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    old_ca = pkigen.issue("old-kubernetes", usage="ca", not_before=NOW - timedelta(days=3650),
                          not_after=NOW - timedelta(days=1))
    cluster = {"server": "https://127.0.0.1:6443",
               "certificate-authority-data": _b64(old_ca.cert_pem())}
    ev = _judge(tree, _write(tree, _files(tree, _current(tree)), cluster))
    expired = [f for f in ev.findings if f.code == codes.CERT_EXPIRED]
    assert [f.path for f in expired] == [f"{tmp_path}/kubelet.conf#certificate-authority-data"]


def test_a_client_certificate_from_another_ca(tmp_path: Path) -> None:
    tree = healthy_node(tmp_path)
    write_config(tmp_path, serverTLSBootstrap=True, rotateCertificates=True)  # no clientCAFile
    other_ca = pkigen.cluster_ca(NOW, cn="another-cluster")
    cluster = {"server": "https://127.0.0.1:6443",
               "certificate-authority-data": _b64(other_ca.cert_pem())}
    ev = _judge(tree, _write(tree, _files(tree, _current(tree)), cluster))
    assert _codes(ev) == {codes.KUBECONFIG_CA_MISMATCH: Severity.WARNING}
