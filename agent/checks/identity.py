"""Who a kubelet certificate says it is and who vouches for it: SERVER_CERT_SELF_SIGNED,
KEY_MISMATCH, IDENTITY_MISMATCH, UNTRUSTED_ISSUER.

Only the kubelet's own live files are judged (client and the served certificate;
never watched files or trust anchors), and kubeadm's leaves: each must be signed by its
kubeadm CA and match its key. The self-signed fallback is reported once, as
SERVER_CERT_SELF_SIGNED, never also as UNTRUSTED_ISSUER.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from agent import codes, kubeadm
from agent.checks.common import describe, judged_certs, kubelet_owned
from agent.kubelet import ROLE_NAMES, names_node, node_user, served_role
from agent.model import CertFile, CertInfo, Finding, KeyMatch, Policy, Role, Severity, Snapshot

PEERS = {
    Role.CLIENT: "the API server will reject the kubelet",
    Role.SERVER: "the API server cannot verify the kubelet (`kubectl logs/exec` fail)",
    Role.TLS_CERT_FILE: "the API server cannot verify the kubelet (`kubectl logs/exec` fail)",
    Role.KUBECONFIG_CLIENT: "the API server will reject the kubelet after its next start",
}


def is_self_signed(cf: CertFile, leaf: CertInfo) -> bool:
    """Self-signed in the kubelet's sense (throw-away CA in the file) or self-issued."""
    return cf.self_signed or leaf.self_issued


def _self_signed(snapshot: Snapshot, cf: CertFile, leaf: CertInfo) -> Finding:
    config = snapshot.kubelet_config.path or "the kubelet config"
    return Finding(
        codes.SERVER_CERT_SELF_SIGNED, Severity.WARNING,
        f"the kubelet serves the self-signed {cf.path} (issuer {leaf.issuer}), which "
        "`kubectl logs/exec` through the API server cannot verify: set serverTLSBootstrap: "
        f"true in {config} and approve the kubelet-serving CSR, or provide a tlsCertFile "
        "signed by the cluster CA", cf.path)


def _key_mismatch(cf: CertFile) -> Finding:
    where = cf.key_path or f"inside {cf.target or cf.path}"
    fix = ("the kubelet cannot use the pair; restore the matching key, or restart the "
           "kubelet so it requests a new certificate")
    if cf.name:
        fix = ("its server cannot use the pair; restore the matching key, or "
               + kubeadm.renew_hint(cf.name, bool(cf.externally_managed)))
    return Finding(
        codes.KEY_MISMATCH, Severity.CRITICAL,
        f"the private key {where} does not belong to the {describe(cf)}: {fix}",
        cf.key_path or cf.path)


def _client_identity(node: str, cf: CertFile, leaf: CertInfo) -> Finding | None:
    if leaf.subject_cn == node_user(node) and "system:nodes" in leaf.subject_orgs:
        return None
    return Finding(
        codes.IDENTITY_MISMATCH, Severity.WARNING,
        f"{ROLE_NAMES[cf.role]} {cf.path} is {leaf.subject!r}, not "
        f"CN={node_user(node)},O=system:nodes: the Node authorizer treats the kubelet as "
        "someone else; check --node-name, else the kubelet's node name changed: restart it "
        "so it requests a matching certificate", cf.path)


def _server_identity(node: str, cf: CertFile, leaf: CertInfo) -> Finding | None:
    if names_node(node, leaf.dns_names, leaf.ip_addresses):
        return None
    sans = ", ".join(leaf.sans) or "no SANs"
    return Finding(
        codes.IDENTITY_MISMATCH, Severity.WARNING,
        f"kubelet serving certificate {cf.path} has {sans}, not {node}: the API server's "
        "hostname check fails for `kubectl logs/exec`; check --node-name, else restart the "
        "kubelet and approve its new kubelet-serving CSR", cf.path)


def _untrusted(snapshot: Snapshot, cf: CertFile, leaf: CertInfo) -> Finding:
    anchors = ", ".join(a.path for a in snapshot.anchors) or "the configured CA files"
    return Finding(
        codes.UNTRUSTED_ISSUER, Severity.WARNING,
        f"{ROLE_NAMES[cf.role]} {cf.path} is issued by {leaf.issuer!r}, which does not chain "
        f"to {anchors}: {PEERS[cf.role]}; re-issue it from the cluster CA, or pass the right "
        "CA with --ca-file", cf.path)


def _judge(snapshot: Snapshot, cf: CertFile, leaf: CertInfo, served: Role) -> Iterator[Finding]:
    self_signed = cf.role is served and is_self_signed(cf, leaf)
    if self_signed:
        yield _self_signed(snapshot, cf, leaf)
    if cf.key_match is KeyMatch.MISMATCH:
        yield _key_mismatch(cf)
    node = snapshot.node_name
    found = None
    if node and cf.role in (Role.CLIENT, Role.KUBECONFIG_CLIENT):
        found = _client_identity(node, cf, leaf)
    elif node and cf.role is Role.SERVER:
        found = _server_identity(node, cf, leaf)
    if found is not None:
        yield found
    if cf.trusted is False and cf.role in PEERS and not self_signed:
        yield _untrusted(snapshot, cf, leaf)


def _kubeadm(snapshot: Snapshot, cf: CertFile, leaf: CertInfo) -> Iterator[Finding]:
    """A kubeadm leaf must be signed by its own kubeadm CA (the source verified it
    against every certificate in that CA's file) and match its key."""
    if cf.key_match is KeyMatch.MISMATCH:
        yield _key_mismatch(cf)
    if cf.trusted is not False or not cf.name:
        return
    ca_name = next((entry.ca for entry in kubeadm.LEAVES if entry.name == cf.name), "ca")
    ca_file = kubeadm.AUTHORITIES[ca_name].cert
    base = snapshot.kubeadm_dir or kubeadm.DEFAULT_DIR
    yield Finding(
        codes.UNTRUSTED_ISSUER, Severity.CRITICAL,
        f"{describe(cf)} is issued by {leaf.issuer!r}, not by kubeadm's {ca_name} "
        f"({base}/{ca_file}): every component that trusts {ca_name} rejects it; "
        f"{kubeadm.renew_hint(cf.name, bool(cf.externally_managed))}", cf.path)


def check(snapshot: Snapshot, now: datetime, policy: Policy) -> Iterator[Finding]:
    """Identity, key and trust findings for the kubelet's and kubeadm's live certificates."""
    served = served_role(snapshot)
    for cf in judged_certs(snapshot):
        if cf.leaf is None:
            continue
        if kubelet_owned(cf):
            yield from _judge(snapshot, cf, cf.leaf, served)
        elif cf.role is Role.KUBEADM:
            yield from _kubeadm(snapshot, cf, cf.leaf)
        elif cf.role is Role.KUBEADM_CA and cf.key_match is KeyMatch.MISMATCH:
            yield _key_mismatch(cf)  # kubeadm would sign renewals nobody can verify
