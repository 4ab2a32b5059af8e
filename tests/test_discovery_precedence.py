"""Precedence of every derived setting: agent flag > kubelet flag > --config-dir drop-in >
--config file > default (feature gates: config featureGates > --feature-gates > default)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.sources.discovery.discover import Request, discover
from tests.hosttree import kubelet_config, write

UNIT = "/etc/systemd/system/kubelet.service"
CONFIG = "/etc/k/config.yaml"
DROPIN = "/etc/k/conf.d/10-x.conf"


@dataclass(frozen=True)
class Row:
    setting: str  # KubeletSettings.settings() key
    flag: str | None = None  # kubelet flag word
    config: dict[str, Any] | None = None  # config fragment
    dropin: dict[str, Any] | None = None
    agent: dict[str, str] | None = None  # Request override
    expected: tuple[Any, ...] = ()  # value per layer: default, config, drop-in, flag, agent


ROWS = [
    Row("certDir", flag="--cert-dir=/flag", agent={"cert_dir": "/agent"},
        expected=("/var/lib/kubelet/pki", "/flag", "/agent")),
    Row("nodeName", flag="--hostname-override=Flag-Node", agent={"node_name": "agent-node"},
        expected=("host", "flag-node", "agent-node")),
    Row("kubeconfig", flag="--kubeconfig=/flag.conf", agent={"kubeconfig": "/agent.conf"},
        expected=(None, "/flag.conf", "/agent.conf")),
    Row("bootstrapKubeconfig", flag="--bootstrap-kubeconfig=/b.conf", expected=(None, "/b.conf")),
    Row("rotateCertificates", config={"rotateCertificates": True},
        dropin={"rotateCertificates": False}, flag="--rotate-certificates",
        expected=(False, True, False, True)),
    Row("serverTLSBootstrap", config={"serverTLSBootstrap": True},
        dropin={"serverTLSBootstrap": False}, flag="--rotate-server-certificates",
        expected=(False, True, False, True)),
    Row("tlsCertFile", config={"tlsCertFile": "/c.crt"}, dropin={"tlsCertFile": "/d.crt"},
        flag="--tls-cert-file=/f.crt", expected=(None, "/c.crt", "/d.crt", "/f.crt")),
    Row("tlsPrivateKeyFile", config={"tlsPrivateKeyFile": "/c.key"},
        dropin={"tlsPrivateKeyFile": "/d.key"}, flag="--tls-private-key-file=/f.key",
        expected=(None, "/c.key", "/d.key", "/f.key")),
    Row("clientCAFile", config={"authentication": {"x509": {"clientCAFile": "/c.pem"}}},
        dropin={"authentication": {"x509": {"clientCAFile": "/d.pem"}}},
        flag="--client-ca-file=/f.pem", expected=(None, "/c.pem", "/d.pem", "/f.pem")),
    Row("address", config={"address": "10.0.0.1"}, dropin={"address": "10.0.0.2"},
        flag="--address=10.0.0.3",
        expected=("0.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3")),  # noqa: S104
    Row("port", config={"port": 1}, dropin={"port": 2}, flag="--port=3",
        expected=(10250, 1, 2, 3)),
]


def layers(row: Row) -> list[str]:
    return ["default"] + [name for name, present in (
        ("config", row.config), ("dropin", row.dropin), ("flag", row.flag),
        ("agent", row.agent)) if present]


CASES = [pytest.param(row, n, id=f"{row.setting}-{layers(row)[n]}")
         for row in ROWS for n in range(len(layers(row)))]


def build(root: Path, row: Row, upto: int) -> Request:
    enabled = set(layers(row)[1:upto + 1])
    flags = ["--config=" + CONFIG, "--config-dir=/etc/k/conf.d"]
    if "flag" in enabled and row.flag:
        flags.append(row.flag)
    write(root, UNIT, "[Service]\nExecStart=/usr/bin/kubelet " + " ".join(flags) + "\n")
    write(root, CONFIG, kubelet_config(**(row.config if "config" in enabled and row.config
                                          else {})))
    if "dropin" in enabled and row.dropin:
        write(root, DROPIN, kubelet_config(**row.dropin))
    agent = row.agent if "agent" in enabled and row.agent else {}
    return Request(host_root=str(root), **agent)


@pytest.mark.parametrize(("row", "upto"), CASES)
def test_the_highest_layer_present_wins(tmp_path: Path, row: Row, upto: int) -> None:
    k = discover(build(tmp_path, row, upto), pids=frozenset(), gethostname=lambda: "HOST")
    got = k.settings()[row.setting]
    top = layers(row)[upto]
    assert got.value == row.expected[upto]
    expected_source = {"default": ("default", "host name"), "config": (CONFIG,),
                       "dropin": (DROPIN,), "flag": (f"{UNIT}, --",),
                       "agent": ("agent flag",)}[top]
    assert got.source.startswith(expected_source), got.source


@pytest.mark.parametrize(("flag_gate", "config_gate", "expected"), [
    (None, None, True), (False, None, False), (False, True, True), (True, False, False)])
def test_feature_gate_config_over_flag_over_default(tmp_path: Path, flag_gate: bool | None,
                                                    config_gate: bool | None,
                                                    expected: bool) -> None:
    flag = ("" if flag_gate is None else
            f" --feature-gates=RotateKubeletServerCertificate={str(flag_gate).lower()}")
    write(tmp_path, UNIT, f"[Service]\nExecStart=/k --config={CONFIG}{flag}\n")
    gates = {} if config_gate is None else {
        "featureGates": {"RotateKubeletServerCertificate": config_gate}}
    write(tmp_path, CONFIG, kubelet_config(serverTLSBootstrap=True, **gates))
    k = discover(Request(host_root=str(tmp_path)), pids=frozenset())
    assert k.rotate_server_gate.value is expected
    assert k.effective_server_tls_bootstrap is expected
