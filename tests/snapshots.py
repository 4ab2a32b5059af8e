"""The one factory for model objects built by hand (no I/O, fixed instants).

Every builder gives a healthy default (a kubeadm node with serverTLSBootstrap, one-year
certificates from the cluster CA, at 50 % of their life at ``NOW``) and takes keyword
overrides, so a test states only what differs from healthy. The check tests use the
builders as they are; the sink tests use the node seen at ``SINK_NOW`` (end of this module)
and tests/metrics_fixtures.py, whose values the rendered output is compared with.
Real file trees are written by tests/nodetree.py instead.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.model import (
    ApiError,
    ApiProblem,
    ApiState,
    CertDetails,
    CertFile,
    CertInfo,
    CsrInfo,
    CsrState,
    Evaluation,
    Finding,
    KeyMatch,
    KubeletConfigInfo,
    LinkProblem,
    LinkState,
    Role,
    RoleHistory,
    Severity,
    Snapshot,
)

NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)
NODE = "node1"
CERT_DIR = "/var/lib/kubelet/pki"
CONFIG = "/var/lib/kubelet/config.yaml"
CA = "/etc/kubernetes/pki/ca.crt"
YEAR = timedelta(days=365)
SERVER_URL = "https://10.0.0.1:6443"


def cert(not_before: datetime, not_after: datetime, **kw: Any) -> CertInfo:
    """Any certificate: the fields every CertInfo needs (issued by CN=kubernetes), and ``kw``."""
    fields: dict[str, Any] = {"subject": "CN=kubernetes", "issuer": "CN=kubernetes",
                              "serial": "01", "fingerprint_sha256": "ab"}
    fields.update(kw)
    details = {k: fields.pop(k) for k in _DETAIL_FIELDS if k in fields}
    return CertInfo(not_before=not_before, not_after=not_after, derive=CertDetails(**details),
                    **fields)


_DETAIL_FIELDS = tuple(f.name for f in dataclasses.fields(CertDetails))


def leaf(not_before: datetime | None = None, not_after: datetime | None = None, *,
         cn: str = f"system:node:{NODE}", orgs: tuple[str, ...] = ("system:nodes",),
         issuer: str = "CN=kubernetes", **kw: Any) -> CertInfo:
    """A kubelet certificate; default valid from NOW - 6 months for one year."""
    nb = not_before if not_before is not None else NOW - YEAR / 2
    na = not_after if not_after is not None else nb + YEAR
    fields: dict[str, Any] = {
        "subject": ",".join([f"CN={cn}", *(f"O={o}" for o in orgs)]), "issuer": issuer,
        "subject_cn": cn, "subject_orgs": orgs, "key_algorithm": "EC P-256",
        "spki_sha256": "cd"}
    fields.update(kw)
    return cert(nb, na, **fields)


def aged(fraction: float, lifetime: timedelta = YEAR, **kw: Any) -> CertInfo:
    """A leaf that has lived exactly ``fraction`` of ``lifetime`` at NOW."""
    nb = NOW - lifetime * fraction
    return leaf(nb, nb + lifetime, **kw)


def current(role: Role, cert: CertInfo | None = None, *, stamp: str = "2025-09-09-12-00-00",
            **kw: Any) -> CertFile:
    """A healthy ``kubelet-<role>-current.pem`` symlink to ``kubelet-<role>-<stamp>.pem``."""
    path = os.path.join(CERT_DIR, f"kubelet-{role.value}-current.pem")
    target = os.path.join(CERT_DIR, f"kubelet-{role.value}-{stamp}.pem")
    cert = cert if cert is not None else leaf(
        dns_names=(NODE,) if role is Role.SERVER else (),
        ip_addresses=("10.0.0.5",) if role is Role.SERVER else ())
    fields: dict[str, Any] = {
        "target": target, "link": LinkState(path, True, target, target), "size": 1200,
        "chain": (cert,), "leaf": cert, "key_match": KeyMatch.MATCH, "trusted": True}
    fields.update(kw)
    return CertFile(role=role, path=path, **fields)


def client(cert: CertInfo | None = None, **kw: Any) -> CertFile:
    return current(Role.CLIENT, cert, **kw)


def server(cert: CertInfo | None = None, **kw: Any) -> CertFile:
    return current(Role.SERVER, cert, **kw)


def missing(role: Role) -> CertFile:
    """``kubelet-<role>-current.pem`` does not exist."""
    path = os.path.join(CERT_DIR, f"kubelet-{role.value}-current.pem")
    return CertFile(role=role, path=path, link=LinkState(path, False,
                                                         problem=LinkProblem.MISSING))


def via_updated(role: Role, cert: CertInfo | None = None, **kw: Any) -> CertFile:
    """An interrupted swap: ``-current.pem`` missing, read through ``-updated.pem``."""
    cf = current(role, cert, **kw)
    updated = os.path.join(CERT_DIR, f"kubelet-{role.value}-updated.pem")
    assert cf.link is not None
    return replace(cf, link=replace(cf.link, path=updated))


def broken_link(role: Role, problem: LinkProblem, target: str = "/nowhere.pem") -> CertFile:
    path = os.path.join(CERT_DIR, f"kubelet-{role.value}-current.pem")
    return CertFile(role=role, path=path, link=LinkState(path, True, target, problem=problem))


def plain(role: Role, path: str, cert: CertInfo | None = None, **kw: Any) -> CertFile:
    """A plain file (no link): kubelet.crt, tlsCertFile, a watched file or an anchor."""
    cert = cert if cert is not None else leaf()
    fields: dict[str, Any] = {"target": path, "size": 1200, "chain": (cert,), "leaf": cert,
                              "trusted": True}
    fields.update(kw)
    return CertFile(role=role, path=path, **fields)


def fallback(cert: CertInfo | None = None, **kw: Any) -> CertFile:
    """The kubelet's self-signed ``kubelet.crt`` (leaf issued by a throw-away CA)."""
    cert = cert if cert is not None else leaf(cn=f"{NODE}@1700000000", orgs=(),
                                              issuer=f"CN={NODE}-ca@1700000000",
                                              dns_names=(NODE,))
    fields: dict[str, Any] = {"self_signed": True, "trusted": False,
                              "key_path": os.path.join(CERT_DIR, "kubelet.key"),
                              "key_match": KeyMatch.MATCH}
    fields.update(kw)
    return plain(Role.SELF_SIGNED, os.path.join(CERT_DIR, "kubelet.crt"), cert, **fields)


def anchor(cert: CertInfo | None = None, **kw: Any) -> CertFile:
    cert = cert if cert is not None else leaf(NOW - 3 * YEAR, NOW + 7 * YEAR, cn="kubernetes",
                                              orgs=(), is_ca=True, self_issued=True)
    return plain(Role.TRUST_ANCHOR, CA, cert, **kw)


def config(**kw: Any) -> KubeletConfigInfo:
    fields: dict[str, Any] = {"present": True, "server_tls_bootstrap": True,
                              "rotate_certificates": True, "client_ca_file": CA}
    fields.update(kw)
    return KubeletConfigInfo(path=CONFIG, **fields)


def snapshot(*certs: CertFile, cfg: KubeletConfigInfo | None = None,
             anchors: tuple[CertFile, ...] | None = None, **kw: Any) -> Snapshot:
    """A snapshot of ``certs`` taken at NOW; a healthy client + server when none are given."""
    fields: dict[str, Any] = {"taken_at": NOW, "node_name": NODE, "cert_dir": CERT_DIR}
    fields.update(kw)
    return Snapshot(kubelet_config=cfg if cfg is not None else config(),
                    certs=certs or (client(), server()),
                    anchors=anchors if anchors is not None else (anchor(),), **fields)


def history(role: Role, newest: str = "2025-09-09-12-00-00",
            previous: str = "2025-03-09-12-00-00", **kw: Any) -> RoleHistory:
    return RoleHistory(role=role, count=2, total_bytes=2400, oldest=previous, newest=newest,
                       previous_path=os.path.join(CERT_DIR, f"kubelet-{role.value}-{previous}.pem"),
                       **kw)


def csr(name: str, age: timedelta, state: CsrState = CsrState.PENDING, *,
        now: datetime = NOW, **kw: Any) -> CsrInfo:
    """One of this node's serving CSRs, created ``age`` before ``now``, requesting node1."""
    fields: dict[str, Any] = {
        "username": f"system:node:{NODE}", "signer": "kubernetes.io/kubelet-serving",
        "request_subject": f"CN=system:node:{NODE},O=system:nodes",
        "request_dns_names": (NODE,), "request_ip_addresses": ("10.0.0.5",)}
    fields.update(kw)
    return CsrInfo(name=name, created=now - age, state=state, **fields)


def api(*csrs: CsrInfo, **kw: Any) -> ApiState:
    fields: dict[str, Any] = {"last_success": NOW - timedelta(seconds=30),
                              "identity_username": f"system:node:{NODE}",
                              "identity_groups": ("system:nodes", "system:authenticated")}
    fields.update(kw)
    return ApiState(server=SERVER_URL, csrs=csrs, **fields)


def api_error(problem: ApiProblem, failures: int = 1, **kw: Any) -> ApiError:
    fields: dict[str, Any] = {"detail": f"{problem.value} for test",
                              "since": NOW - timedelta(minutes=5)}
    fields.update(kw)
    return ApiError(problem=problem, consecutive_failures=failures, **fields)


def with_api(state: ApiState, snap: Snapshot | None = None) -> Snapshot:
    return replace(snap or snapshot(), api=state)


def codes_of(findings: tuple[Finding, ...] | list[Finding]) -> list[str]:
    return [f.code for f in findings]


def only(findings: tuple[Finding, ...] | list[Finding], code: str) -> Finding:
    """The one finding with ``code``; fails the test when there are none or several."""
    found = [f for f in findings if f.code == code]
    assert len(found) == 1, f"expected one {code}, got {codes_of(findings)}"
    return found[0]


def evaluation(snap: Snapshot, *findings: Finding, now: datetime | None = None) -> Evaluation:
    """``snap`` judged with ``findings``, at ``now`` or else when it was taken."""
    return Evaluation(snapshot=snap, now=now if now is not None else snap.taken_at,
                      findings=findings)


def finding(code: str, severity: Severity, path: str | None = None) -> Finding:
    return Finding(code=code, severity=severity, message=f"{code.lower()} happened", path=path)


# The node the JSON and table sinks render: its values are spelled out in their tests.
SINK_NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def sink_cert(not_before: datetime, lifetime: timedelta = YEAR, **kw: Any) -> CertInfo:
    """A kubelet client certificate with a full-length serial and fingerprint."""
    fields: dict[str, Any] = {"serial": "1f2e3d", "fingerprint_sha256": "ab" * 32,
                              "spki_sha256": ""}
    fields.update(kw)
    return leaf(not_before, not_before + lifetime, **fields)


def sink_link(role: Role, cert: CertInfo | None, stamp: str = "2026-08-01-10-00-00",
              **kw: Any) -> CertFile:
    """A ``kubelet-<role>-current.pem`` link; ``cert`` None: a file with no certificate."""
    fields: dict[str, Any] = {"size": 1234, "leaf": cert, "chain": (cert,) if cert else ()}
    fields.update(kw)
    return current(role, cert, stamp=stamp, **fields)


def sink_snapshot(*certs: CertFile, **kw: Any) -> Snapshot:
    """A snapshot of exactly ``certs`` (no anchor unless given) taken at SINK_NOW."""
    fields: dict[str, Any] = {"anchors": (), "taken_at": SINK_NOW}
    fields.update(kw)
    return snapshot(*certs, **fields)


def healthy_snapshot() -> Snapshot:
    """Client and server 100 days into a one-year life, a CA anchor, client history."""
    issued = SINK_NOW - timedelta(days=100)
    ca = sink_cert(SINK_NOW - timedelta(days=1000), timedelta(days=3650),
                   subject="CN=kubernetes", is_ca=True)
    history = (RoleHistory(role=Role.CLIENT, count=3, total_bytes=3 * 1234,
                           oldest="2024-08-01-10-00-00", newest="2026-08-01-10-00-00"),
               RoleHistory(role=Role.SERVER, count=1, total_bytes=1234,
                           oldest="2026-08-15-09-30-00", newest="2026-08-15-09-30-00"))
    return sink_snapshot(
        sink_link(Role.CLIENT, sink_cert(issued)),
        sink_link(Role.SERVER, sink_cert(issued, serial="5a5a", dns_names=(NODE,),
                                         ip_addresses=("10.0.0.1",)),
                  stamp="2026-08-15-09-30-00"),
        anchors=(CertFile(role=Role.TRUST_ANCHOR, path=CA, target=CA, leaf=ca),),
        history=history)
