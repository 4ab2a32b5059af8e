"""An AgentState judged from a real node tree (agent.pkigen -> agent.snapshot -> agent.checks)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from agent import pkigen
from agent.checks import judge
from agent.config import SourceSettings
from agent.model import AgentState, AgentStats, Policy
from agent.snapshot import build_snapshot
from tests.secrets_scan import PrivateKey

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
NODE = "node1"


def real_node_state(root: Path, *, client_generations: int = 3,
                    now: datetime = NOW) -> tuple[AgentState, tuple[PrivateKey, ...]]:
    """A kubeadm-like node written by pkigen, inventoried and judged at ``now``.

    Returns the state and every private key written to disk (for leak scans).
    """
    node = pkigen.build_node(root, NODE, now, client_generations=client_generations)
    sources = SourceSettings(cert_dir=node.cert_dir, kubelet_config=None,
                             ca_files=(node.ca_file,), node_name=NODE)
    snapshot = build_snapshot(sources, now)
    evaluation = judge(snapshot, now, Policy())
    fallback = load_pem_private_key((node.cert_dir / "kubelet.key").read_bytes(), None)
    keys: list[PrivateKey] = [node.ca.key, node.client.key, fallback]  # type: ignore[list-item]
    if node.server is not None:
        keys.append(node.server.key)
    stats = AgentStats(started_at=now, evaluations_total=1, last_evaluation=now)
    return AgentState(evaluation, stats), tuple(keys)
