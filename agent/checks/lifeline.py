"""The client-renewal lifeline, from what the API server said (``snapshot.api``).

- CLIENT_RENEWAL_NOT_AUTHORIZED (warning): the SelfSubjectAccessReview says this node
  may not ``create`` ``certificatesigningrequests/selfnodeclient``: kube-controller-
  manager will never auto-approve its client renewals. Raised on day one, not at 90 %
  of the lifetime. Only for a node identity (a dedicated ServiceAccount's answer says
  nothing about the node).
- BOOTSTRAP_KUBECONFIG_ABSENT (info): kubeadm removes it after the join.
- BOOTSTRAP_CREDENTIALS_INVALID (warning): its token gets 401 (expired, deleted,
  unknown), or the file cannot be used: if the client certificate ever lapses the node
  cannot rejoin on its own.
- SERVING_CERT_SANS_INCOMPLETE (warning): an InternalIP/ExternalIP/Hostname of the
  node's ``status.addresses`` is not a SAN of the certificate it serves (the probed one
  if known, else the file), so metrics-server and the API server connecting by that
  address fail with ``x509: certificate is valid for ...``. The self-signed fallback is
  left to SERVER_CERT_SELF_SIGNED.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import datetime

from agent import codes
from agent.checks.common import client_expiry, served_file
from agent.kubelet import RENEWAL_BINDING, RENEWAL_ROLE, is_ip, iso, node_user
from agent.model import (
    ApiState,
    BootstrapOutcome,
    CertFile,
    CertInfo,
    Finding,
    Policy,
    Role,
    Severity,
    Snapshot,
)

CHECKED_ADDRESSES = ("InternalIP", "ExternalIP", "Hostname")


def _renewal(snapshot: Snapshot, api: ApiState) -> Finding | None:
    review = api.renewal_review
    user = api.identity_username
    if review is None or review.allowed or (user is not None and not user.startswith(
            "system:node:")):
        return None
    expires = client_expiry(snapshot, "the client certificate")
    return Finding(
        codes.CLIENT_RENEWAL_NOT_AUTHORIZED, Severity.WARNING,
        f"{user or node_user(snapshot.node_name)} may not create "
        "certificatesigningrequests/selfnodeclient (SelfSubjectAccessReview at "
        f"{iso(review.at)}): kube-controller-manager will never auto-approve this node's "
        f"client-certificate renewals and it drops out at expiry{expires}; create the "
        f"binding: `kubectl create clusterrolebinding {RENEWAL_BINDING} "
        f"--clusterrole={RENEWAL_ROLE} --group=system:nodes`", api.server)


def _bootstrap(api: ApiState) -> Finding | None:
    check = api.bootstrap
    if check is None:
        return None
    if check.outcome is BootstrapOutcome.ABSENT:
        return Finding(
            codes.BOOTSTRAP_KUBECONFIG_ABSENT, Severity.INFO,
            f"no bootstrap kubeconfig at {check.path} (kubeadm removes it after the join): "
            "if the client certificate ever lapses, re-join the node with a new token "
            "(`kubeadm token create --print-join-command`)", check.path)
    if check.outcome in (BootstrapOutcome.REJECTED, BootstrapOutcome.UNUSABLE):
        why = ("its token is rejected" if check.outcome is BootstrapOutcome.REJECTED
               else "it cannot be used")
        return Finding(
            codes.BOOTSTRAP_CREDENTIALS_INVALID, Severity.WARNING,
            f"the bootstrap kubeconfig {check.path}: {why} ({check.detail}, checked "
            f"{iso(check.at)}): if the client certificate ever lapses this node cannot "
            "rejoin; create a token (`kubeadm token create`) and put it in the bootstrap "
            "kubeconfig, or remove the file", check.path)
    return None


def _covers(leaf: CertInfo, kind: str, address: str) -> bool:
    if kind == "Hostname" and not is_ip(address):
        return address.lower().rstrip(".") in {n.lower().rstrip(".") for n in leaf.dns_names}
    if not is_ip(address):
        return True  # a non-IP InternalIP/ExternalIP is malformed: nothing to compare
    wanted = ipaddress.ip_address(address)
    return any(is_ip(a) and ipaddress.ip_address(a) == wanted for a in leaf.ip_addresses)


def _served(snapshot: Snapshot) -> CertFile | None:
    probed = snapshot.probe.served if snapshot.probe is not None else None
    return probed if probed is not None and probed.leaf is not None else served_file(snapshot)


def _sans(snapshot: Snapshot, api: ApiState) -> Finding | None:
    node = api.node
    cf = _served(snapshot)
    if node is None or cf is None or cf.leaf is None or cf.role is Role.SELF_SIGNED or (
            cf.self_signed or cf.leaf.self_issued):
        return None
    leaf = cf.leaf
    missing = [f"{kind} {addr}" for kind, addr in node.addresses
               if kind in CHECKED_ADDRESSES and not _covers(leaf, kind, addr)]
    if not missing:
        return None
    return Finding(
        codes.SERVING_CERT_SANS_INCOMPLETE, Severity.WARNING,
        f"the serving certificate {cf.path} has {', '.join(leaf.sans) or 'no SANs'} but the "
        f"Node's status.addresses also list {', '.join(missing)}: metrics-server and the API "
        "server connecting there fail with \"x509: certificate is valid for ...\"; restart "
        "the kubelet so it requests a serving certificate for its current addresses, and "
        "approve the CSR", cf.path)


def check(snapshot: Snapshot, now: datetime, policy: Policy) -> Iterator[Finding]:
    api = snapshot.api
    if api is None:
        return
    for found in (_renewal(snapshot, api), _bootstrap(api), _sans(snapshot, api)):
        if found is not None:
            yield found
