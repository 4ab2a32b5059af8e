"""Helpers for the daemon tests: a real node tree, its settings, real kubelet rotations.

Trees are written by :mod:`agent.pkigen` (the kubelet's exact file store and swap) under
``tmp_path``; nothing here fakes a file or a clock beyond passing fixed instants.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

from agent import pkigen
from agent.config import (
    ApiSettings,
    DaemonSettings,
    KubeletAccess,
    Settings,
    SourceSettings,
)
from agent.daemon.loop import Daemon
from agent.model import Policy
from tests import nodetree

NOW = nodetree.NOW
NODE = nodetree.NODE

T = TypeVar("T")


@dataclass
class Node:
    """A kubeadm-style node under ``root`` and how to rotate its certificates."""

    root: Path
    pki: pkigen.NodePki
    config: Path
    serials: list[str] = field(default_factory=list)

    @property
    def cert_dir(self) -> Path:
        return self.pki.cert_dir

    def current(self, role: str = "client") -> Path:
        return self.cert_dir / f"kubelet-{role}-current.pem"

    def settings(self, kubelet: KubeletAccess | None = None, **daemon: object) -> Settings:
        # No serving-port probe unless asked: nothing serves 127.0.0.1:10250 in tests.
        sources = SourceSettings(cert_dir=self.cert_dir, kubelet_config=self.config,
                                 node_name=NODE,
                                 kubelet=kubelet or KubeletAccess(probe=False))
        return Settings(sources=sources, api=ApiSettings(offline=True), policy=Policy(),
                        daemon=replace(DaemonSettings(), **daemon))  # type: ignore[arg-type]

    def write_generation(self, role: str, at: datetime, *,
                         lifetime: timedelta = timedelta(days=365),
                         written_at: datetime | None = None) -> tuple[Path, str]:
        """A new ``kubelet-<role>-<timestamp>.pem`` (not linked yet) and its serial."""
        make = pkigen.kubelet_client if role == "client" else pkigen.kubelet_server
        issued = make(self.pki.ca, NODE, at, lifetime)
        path = pkigen.write_generation(self.cert_dir, role, issued, written_at or at)
        return path, format(issued.cert.serial_number, "x")

    def rotate(self, role: str, at: datetime, *, stop_after: int | None = None,
               written_at: datetime | None = None) -> str:
        """What the kubelet does: write a new generation, then swap the links."""
        path, serial = self.write_generation(role, at, written_at=written_at)
        pkigen.kubelet_swap(self.cert_dir, role, path, stop_after=stop_after)
        self.serials.append(serial)
        return serial


def build(root: Path, now: datetime = NOW) -> Node:
    """A node healthy at ``now``: client (with history) and server certs, CA, config."""
    tree = nodetree.healthy_node(root, at=now)
    return Node(root=tree.root, pki=tree.pki, config=tree.config)


def daemon_for(node: Node, **daemon: object) -> Daemon:
    """An in-process daemon on ``node``; nothing started until ``serve()``."""
    return Daemon(node.settings(**daemon))


def wait_for(probe: Callable[[], T | None], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.005) -> T:
    """Poll ``probe`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class Deadline:
    """An instant the verdict on a short-lived client certificate changes by itself."""

    name: str
    at: datetime
    code: str  # the finding published from that instant on
    severity: str


def short_lived_client(node: Node, now: datetime, *, age: float = 100.0,
                       lifetime: float = 120.0) -> list[Deadline]:
    """Swap in a client certificate ``age`` seconds into a ``lifetime``-second life and
    return, under the default policy, the deadlines still to come: 90 % (warning
    threshold and rotation window end), 95 % (critical threshold) and notAfter."""
    not_before = now.replace(microsecond=0) - timedelta(seconds=age)  # X.509: whole seconds
    life = timedelta(seconds=lifetime)
    path, _ = node.write_generation("client", not_before, lifetime=life,
                                    written_at=now - timedelta(seconds=1))
    pkigen.kubelet_swap(node.cert_dir, "client", path)
    policy = Policy()
    return [
        Deadline("warning threshold (90 %)", not_before + life * (1 - policy.warning_fraction),
                 "CERT_EXPIRING_SOON", "warning"),
        Deadline("rotation window end (90 %)", not_before + life * 0.9,
                 "ROTATION_OVERDUE", "warning"),
        Deadline("critical threshold (95 %)", not_before + life * (1 - policy.critical_fraction),
                 "CERT_EXPIRING_SOON", "critical"),
        Deadline("notAfter", not_before + life, "CERT_EXPIRED", "critical"),
    ]


def finding_published(text: str, code: str, severity: str) -> float | None:
    """The evaluation instant of a /metrics answer, if it shows ``code`` at ``severity``."""
    families = {f.name: f for f in text_string_to_metric_families(text)}
    shown = any(s.labels.get("code") == code and s.labels.get("severity") == severity
                for s in families["kubelet_cert_agent_finding"].samples) if (
        "kubelet_cert_agent_finding" in families) else False
    if not shown:
        return None
    (evaluated,) = families["kubelet_cert_agent_last_evaluation_timestamp_seconds"].samples
    return float(evaluated.value)
