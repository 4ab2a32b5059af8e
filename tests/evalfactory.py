"""Hand-built snapshots and evaluations for the sink tests (no I/O, fixed instants).

Sinks render model objects; building those objects here keeps the sink tests
independent of the sources and checks, and makes every rendered value predictable.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.model import (
    CertFile,
    CertInfo,
    Evaluation,
    Finding,
    KeyMatch,
    KubeletConfigInfo,
    LinkState,
    Role,
    RoleHistory,
    Severity,
    Snapshot,
)

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
CERT_DIR = "/var/lib/kubelet/pki"
NODE = "node1"


def cert_info(not_before: datetime, lifetime: timedelta = timedelta(days=365),
              **overrides: Any) -> CertInfo:
    """A kubelet client certificate issued by CN=kubernetes."""
    values: dict[str, Any] = {
        "subject": f"CN=system:node:{NODE},O=system:nodes",
        "issuer": "CN=kubernetes",
        "serial": "1f2e3d",
        "fingerprint_sha256": "ab" * 32,
        "not_before": not_before,
        "not_after": not_before + lifetime,
        "subject_cn": f"system:node:{NODE}",
        "subject_orgs": ("system:nodes",),
        "key_algorithm": "EC P-256",
    }
    values.update(overrides)
    return CertInfo(**values)


def linked(role: Role, leaf: CertInfo | None, stamp: str = "2026-08-01-10-00-00",
           **overrides: Any) -> CertFile:
    """A ``kubelet-<role>-current.pem`` link to a timestamped generation."""
    link = f"{CERT_DIR}/kubelet-{role.value}-current.pem"
    target = f"{CERT_DIR}/kubelet-{role.value}-{stamp}.pem"
    values: dict[str, Any] = {
        "role": role, "path": link, "target": target,
        "link": LinkState(path=link, is_symlink=True, target=target, resolved=target),
        "size": 1234, "chain": (leaf,) if leaf else (), "leaf": leaf,
        "key_match": KeyMatch.MATCH, "trusted": True,
    }
    values.update(overrides)
    return CertFile(**values)


def snapshot(*certs: CertFile, **overrides: Any) -> Snapshot:
    values: dict[str, Any] = {
        "taken_at": NOW, "node_name": NODE, "cert_dir": CERT_DIR,
        "kubelet_config": KubeletConfigInfo(
            path="/var/lib/kubelet/config.yaml", present=True, server_tls_bootstrap=True,
            rotate_certificates=True, client_ca_file="/etc/kubernetes/pki/ca.crt"),
        "certs": certs,
    }
    values.update(overrides)
    return Snapshot(**values)


def healthy_snapshot() -> Snapshot:
    """Client and server 100 days into a one-year life, a CA anchor, client history."""
    client = linked(Role.CLIENT, cert_info(NOW - timedelta(days=100)))
    server = linked(Role.SERVER, cert_info(
        NOW - timedelta(days=100), serial="5a5a", dns_names=(NODE,),
        ip_addresses=("10.0.0.1",)), stamp="2026-08-15-09-30-00")
    anchor = CertFile(role=Role.TRUST_ANCHOR, path="/etc/kubernetes/pki/ca.crt",
                      target="/etc/kubernetes/pki/ca.crt",
                      leaf=cert_info(NOW - timedelta(days=1000), timedelta(days=3650),
                                     subject="CN=kubernetes", is_ca=True))
    history = (RoleHistory(role=Role.CLIENT, count=3, total_bytes=3 * 1234,
                           oldest="2024-08-01-10-00-00", newest="2026-08-01-10-00-00"),
               RoleHistory(role=Role.SERVER, count=1, total_bytes=1234,
                           oldest="2026-08-15-09-30-00", newest="2026-08-15-09-30-00"))
    return snapshot(client, server, anchors=(anchor,), history=history)


def evaluation(snap: Snapshot, *findings: Finding, now: datetime = NOW) -> Evaluation:
    return Evaluation(snapshot=snap, now=now, findings=findings)


def finding(code: str, severity: Severity, path: str | None = None) -> Finding:
    return Finding(code=code, severity=severity, message=f"{code.lower()} happened",
                   path=path)


def replace(obj: Any, **changes: Any) -> Any:
    return dataclasses.replace(obj, **changes)
