"""The JSON status: a stable interface (``check --format json`` and ``/status``).

Schema version 1 (documented in README, section "JSON status"): fields are only ever
added, never renamed or removed. Timestamps are ISO 8601 UTC with a ``Z`` suffix;
absent values are ``null``, never missing keys. Pure: no I/O, no clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.kubelet import CLIENT_SIGNER, SERVING_SIGNER, iso
from agent.model import (
    ApiError,
    ApiState,
    CertFile,
    CertInfo,
    CsrInfo,
    CsrTrail,
    Evaluation,
    Finding,
    KeyMatch,
    KubeconfigInfo,
    KubeletConfigInfo,
    ProbeResult,
    ReadError,
    RoleHistory,
    Severity,
)
from agent.sinks.kubelet import status_fields

SCHEMA_VERSION = 1


def timestamp(value: datetime | None) -> str | None:
    """``2026-11-23T12:00:00Z`` (whole seconds, like every certificate time), or None."""
    return None if value is None else iso(value)


def evaluation_to_dict(ev: Evaluation) -> dict[str, Any]:
    """The JSON status of an evaluation (see the README for every field)."""
    snap = ev.snapshot
    return {
        "schema_version": SCHEMA_VERSION,
        "status": ev.status.name,
        "exit_code": int(ev.status),
        "node": snap.node_name,
        "evaluated_at": timestamp(ev.now),
        "snapshot_taken_at": timestamp(snap.taken_at),
        "inventory_complete": snap.complete,
        "cert_dir": snap.cert_dir,
        "kubeadm_dir": snap.kubeadm_dir,
        "kubelet_config": _kubelet_config(snap.kubelet_config),
        "certificates": [cert_file_to_dict(c) for c in snap.certs + snap.anchors],
        "findings": [finding_to_dict(f) for f in ev.findings],
        "counts": {s.label: sum(f.severity is s for f in ev.findings)
                   for s in sorted(Severity, reverse=True)},
        "history": {h.role.value: _history(h) for h in snap.history},
        "updated_links": list(snap.updated_links),
        "api": _api(snap.api, ev.csr_trail(SERVING_SIGNER), ev.csr_trail(CLIENT_SIGNER)),
        "probe": _probe(snap.probe),
        "kubeconfig": _kubeconfig(snap.kubeconfig),
        **status_fields(snap.kubelet),
    }


def _kubeconfig(k: KubeconfigInfo | None) -> dict[str, Any] | None:
    """null when no kubelet kubeconfig was found; its certificates are in ``certificates``."""
    if k is None:
        return None
    return {"path": k.path, "present": k.present, "error": _read_error(k.error),
            "client_certificate": k.cert_source.value, "client_certificate_path": k.cert_ref,
            "client_key_path": k.key_ref, "client_trusted_by_ca": k.client_trusted}


def _probe(p: ProbeResult | None) -> dict[str, Any] | None:
    """null with --no-probe; the served chain itself is in ``certificates`` (role served)."""
    if p is None:
        return None
    return {"endpoint": p.endpoint, "outcome": p.outcome.value, "up": p.up,
            "detail": p.detail, "at": timestamp(p.at)}


def finding_to_dict(f: Finding) -> dict[str, Any]:
    return {"code": f.code, "severity": f.severity.label, "message": f.message,
            "path": f.path}


def _key_matches(value: KeyMatch) -> bool | None:
    """true/false when a key was compared, null when there was nothing to compare."""
    if value is KeyMatch.MATCH:
        return True
    if value is KeyMatch.MISMATCH:
        return False
    return None


def cert_file_to_dict(c: CertFile) -> dict[str, Any]:
    """One certificate file: the leaf's fields (null when unreadable) and its state."""
    leaf = c.leaf
    return {
        "role": c.role.value,
        "path": c.path,
        "kubeadm_name": c.name,
        "externally_managed": c.externally_managed,
        "target": c.target,
        **_leaf_fields(leaf),
        "self_signed": c.self_signed,
        "key_matches": _key_matches(c.key_match),
        "trusted": c.trusted,
        "key_match": c.key_match.value,
        "key_path": c.key_path,
        "key_error": _read_error(c.key_error),
        "chain_length": len(c.chain),
        "size": c.size,
        "link": None if c.link is None else {
            "path": c.link.path, "is_symlink": c.link.is_symlink, "target": c.link.target,
            "resolved": c.link.resolved,
            "problem": c.link.problem.value if c.link.problem else None,
        },
        "link_problem": c.link.problem.value if c.link and c.link.problem else None,
        "read_error": _read_error(c.read_error),
        "stale_since": timestamp(c.stale_since),
    }


def _leaf_fields(leaf: CertInfo | None) -> dict[str, Any]:
    if leaf is None:
        return {key: None for key in (
            "subject", "issuer", "serial", "fingerprint_sha256", "not_before", "not_after",
            "rotation_window_start", "rotation_window_end")} | {
            "sans": [], "key_algorithm": None, "is_ca": None}
    return {
        "subject": leaf.subject,
        "issuer": leaf.issuer,
        "serial": leaf.serial,
        "fingerprint_sha256": leaf.fingerprint_sha256,
        "not_before": timestamp(leaf.not_before),
        "not_after": timestamp(leaf.not_after),
        "rotation_window_start": timestamp(leaf.rotation_window_start),
        "rotation_window_end": timestamp(leaf.rotation_window_end),
        "sans": list(leaf.sans),
        "key_algorithm": leaf.key_algorithm or None,
        "is_ca": leaf.is_ca,
    }


def _read_error(e: ReadError | None) -> dict[str, str] | None:
    return None if e is None else {"problem": e.problem.value, "detail": e.detail}


def _kubelet_config(k: KubeletConfigInfo) -> dict[str, Any]:
    return {
        "path": k.path, "present": k.present, "error": _read_error(k.error),
        "server_tls_bootstrap": k.server_tls_bootstrap,
        "rotate_certificates": k.rotate_certificates,
        "tls_cert_file": k.tls_cert_file, "tls_private_key_file": k.tls_private_key_file,
        "client_ca_file": k.client_ca_file,
    }


def _history(h: RoleHistory) -> dict[str, Any]:
    return {
        "count": h.count, "total_bytes": h.total_bytes, "oldest": h.oldest,
        "newest": h.newest, "previous_path": h.previous_path,
        "previous": None if h.previous is None else {
            "serial": h.previous.serial, "not_before": timestamp(h.previous.not_before),
            "not_after": timestamp(h.previous.not_after)},
    }


def _api_error(e: ApiError | None) -> dict[str, Any] | None:
    if e is None:
        return None
    return {"problem": e.problem.value, "detail": e.detail, "status_code": e.status_code,
            "consecutive_failures": e.consecutive_failures, "since": timestamp(e.since)}


def _csr(c: CsrInfo, serving: CsrTrail | None) -> dict[str, Any]:
    return {
        "name": c.name, "created": timestamp(c.created), "state": c.state.value,
        "state_since": timestamp(c.state_since), "username": c.username, "signer": c.signer,
        "reason": c.reason, "request_subject": c.request_subject,
        "request_dns_names": list(c.request_dns_names),
        "request_ip_addresses": list(c.request_ip_addresses),
        "request_other_sans": list(c.request_other_sans), "request_error": c.request_error,
        "abandoned": serving is not None and serving.is_abandoned(c),
    }


def _trail(t: CsrTrail | None) -> dict[str, Any] | None:
    """The checks' verdict on the CSRs: is the node waiting now, since when, for which."""
    if t is None:
        return None
    return {"waiting": t.waiting, "since": timestamp(t.since),
            "newest": t.newest.name if t.newest else None,
            "last_issued": timestamp(t.last_issued),
            "pending": [c.name for c in t.pending], "abandoned": [c.name for c in t.abandoned]}


def _api(a: ApiState | None, serving: CsrTrail | None,
         client: CsrTrail | None = None) -> dict[str, Any] | None:
    """null when the API server was not asked (``--offline``)."""
    if a is None:
        return None
    return {
        "server": a.server, "last_success": timestamp(a.last_success), "stale": a.stale,
        "error": _api_error(a.error),
        "identity": {"username": a.identity_username, "groups": list(a.identity_groups)},
        "credential": None if a.credential is None else {
            "kind": a.credential.kind.value, "where": a.credential.where},
        "csrs": [_csr(c, serving) for c in a.csrs],
        "serving_csr": _trail(serving),
        "client_csrs": [_csr(c, client) for c in a.client_csrs],
        "renewal_review": None if a.renewal_review is None else {
            "allowed": a.renewal_review.allowed, "reason": a.renewal_review.reason,
            "at": timestamp(a.renewal_review.at)},
        "bootstrap": None if a.bootstrap is None else {
            "path": a.bootstrap.path, "outcome": a.bootstrap.outcome.value,
            "detail": a.bootstrap.detail, "username": a.bootstrap.username,
            "at": timestamp(a.bootstrap.at)},
        "node_addresses": None if a.node is None else [
            {"type": kind, "address": address} for kind, address in a.node.addresses],
    }
