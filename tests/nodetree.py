"""Real node trees for the CLI tests, and ways to run the real command on them.

Trees are written by :mod:`agent.pkigen` (the kubelet's exact file store and swap) under
``tmp_path``; the command runs in-process through ``agent.cli.main`` or as a real
subprocess of the installed console script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import cli, pkigen

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
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
                 server_tls_bootstrap: bool = True) -> Tree:
    """A kubeadm-style node, healthy at NOW, with clientCAFile pointing at its CA."""
    pki = pkigen.build_node(root, NODE, NOW, server=server, fallback=fallback)
    config = write_config(root, serverTLSBootstrap=server_tls_bootstrap,
                          rotateCertificates=True,
                          authentication={"x509": {"clientCAFile": str(pki.ca_file)}})
    return Tree(root=root, pki=pki, config=config)


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
