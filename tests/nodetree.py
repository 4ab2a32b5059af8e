"""Real node trees for the CLI, daemon and metrics tests, and ways to run the real command.

Trees are written by :mod:`agent.pkigen` (the kubelet's exact file store and swap) under
``tmp_path``; the command runs in-process through ``agent.cli.main`` or as a real
subprocess of the installed console script. Model objects built by hand live in
tests/snapshots.py instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from agent import cli, pkigen
from agent.checks import judge
from agent.config import SourceSettings
from agent.model import AgentState, AgentStats, Policy
from agent.snapshot import build_snapshot
from tests import conftest
from tests.secrets_scan import PrivateKey

NOW = conftest.NOW
NODE = "node1"
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Tree:
    root: Path
    pki: pkigen.NodePki
    config: Path

    @property
    def cert_dir(self) -> Path:
        return self.pki.cert_dir

    def args(self, *extra: str, at: datetime = NOW) -> list[str]:
        """``check`` flags for this tree, offline, judged at ``at``."""
        return ["check", "--offline", "--cert-dir", str(self.cert_dir),
                "--kubelet-config", str(self.config), "--node-name", NODE,
                "--at", at.isoformat(), *extra]


def write_config(root: Path, **fields: Any) -> Path:
    """A KubeletConfiguration with ``fields`` (camelCase, as in the real file)."""
    doc = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
           **fields}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def healthy_node(root: Path, *, server: bool = True, fallback: bool = False,
                 server_tls_bootstrap: bool = True, at: datetime = NOW) -> Tree:
    """A kubeadm-style node, healthy at ``at``, with clientCAFile pointing at its CA."""
    pki = pkigen.build_node(root, NODE, at, server=server, fallback=fallback)
    config = write_config(root, serverTLSBootstrap=server_tls_bootstrap,
                          rotateCertificates=True,
                          authentication={"x509": {"clientCAFile": str(pki.ca_file)}})
    return Tree(root=root, pki=pki, config=config)


def real_node_state(root: Path, *, client_generations: int = 3,
                    now: datetime = NOW) -> tuple[AgentState, tuple[PrivateKey, ...]]:
    """A kubeadm-like node written by pkigen, inventoried and judged at ``now``.

    Returns the state and every private key written to disk (for leak scans).
    """
    node = pkigen.build_node(root, NODE, now, client_generations=client_generations)
    sources = SourceSettings(cert_dir=node.cert_dir, kubelet_config=None,
                             ca_files=(node.ca_file,), node_name=NODE)
    evaluation = judge(build_snapshot(sources, now), now, Policy())
    fallback = load_pem_private_key((node.cert_dir / "kubelet.key").read_bytes(), None)
    keys: list[PrivateKey] = [node.ca.key, node.client.key, fallback]  # type: ignore[list-item]
    if node.server is not None:
        keys.append(node.server.key)
    stats = AgentStats(started_at=now, evaluations_total=1, last_evaluation=now)
    return AgentState(evaluation, stats), tuple(keys)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def run_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Run:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def console_script() -> list[str]:
    """The installed ``kubelet-cert-agent`` next to this interpreter, else ``-m agent.cli``."""
    script = Path(sys.executable).parent / "kubelet-cert-agent"
    return [str(script)] if script.exists() else [sys.executable, "-m", "agent.cli"]


def run_subprocess(argv: list[str], **env_changes: str) -> Run:
    env = {**os.environ, "PYTHONPATH": str(REPO), **env_changes}
    proc = subprocess.run([*console_script(), *argv], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)
