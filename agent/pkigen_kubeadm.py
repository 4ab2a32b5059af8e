"""Lay out a kubeadm control plane's ``/etc/kubernetes`` exactly as ``kubeadm init`` does.

Used by the tests and the demo (one factory, so both exercise the same tree). The three
CAs live ten years, every leaf one year, RSA-2048 by default (kubeadm's default
``encryptionAlgorithm``); names, subjects and usages follow kubeadm's certs phase, and
the four kubeconfigs are written as client-go's ``clientcmd.WriteToFile`` writes them
(keys sorted, certificate and key embedded as base64 PEM). ``sa.key``/``sa.pub`` are
there too: they must never be judged. Writes only under the directory it is given.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from agent import kubeadm
from agent.pkigen import Issued, KeyType, Usage, issue, new_key, write_private

YEAR = timedelta(days=365)
CA_LIFETIME = 10 * YEAR
SERVER = "https://10.0.0.10:6443"
NODE_IP = "10.0.0.10"

CA_SUBJECTS = {"ca": "kubernetes", "etcd-ca": "etcd-ca", "front-proxy-ca": "front-proxy-ca"}
KUBECONFIG_USERS = {  # file -> (user name and CN, organisation)
    "admin.conf": ("kubernetes-admin", "kubeadm:cluster-admins"),
    "super-admin.conf": ("kubernetes-super-admin", "system:masters"),
    "controller-manager.conf": ("system:kube-controller-manager", None),
    "scheduler.conf": ("system:kube-scheduler", None),
}


@dataclass(frozen=True)
class Spec:
    cn: str
    usage: Usage
    orgs: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()


def leaf_spec(name: str, node: str) -> Spec:
    """Subject, usages and SANs of one kubeadm leaf, as ``kubeadm init`` makes it."""
    if name in KUBECONFIG_USERS:
        user, org = KUBECONFIG_USERS[name]
        return Spec(user, "client", (org,) if org else ())
    etcd_sans = ((node, "localhost"), (NODE_IP, "127.0.0.1", "::1"))
    specs = {
        "apiserver": Spec("kube-apiserver", "server", (), (
            node, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local"), ("10.96.0.1", NODE_IP)),
        "apiserver-etcd-client": Spec("kube-apiserver-etcd-client", "client"),
        "apiserver-kubelet-client": Spec("kube-apiserver-kubelet-client", "client",
                                         ("kubeadm:cluster-admins",)),
        "etcd-healthcheck-client": Spec("kube-etcd-healthcheck-client", "client"),
        "etcd-peer": Spec(node, "both", (), *etcd_sans),
        "etcd-server": Spec(node, "both", (), *etcd_sans),
        "front-proxy-client": Spec("front-proxy-client", "client"),
    }
    return specs[name]


def _leaf_entry(name: str) -> kubeadm.Leaf:
    return next(leaf for leaf in kubeadm.LEAVES if leaf.name == name)


@dataclass
class ControlPlane:
    """What :func:`build_control_plane` wrote, with every key, to re-issue any piece."""

    root: Path
    node: str
    cas: dict[str, Issued]
    leaves: dict[str, Issued] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        """The file kubeadm reads for ``name`` (a kubeconfig, a leaf or a CA cert)."""
        if name in kubeadm.AUTHORITIES:
            return self.root / kubeadm.AUTHORITIES[name].cert
        return self.root / _leaf_entry(name).file

    def issue_leaf(self, name: str, not_before: datetime, lifetime: timedelta = YEAR, *,
                   issuer: Issued | None = None, key_type: KeyType = "rsa") -> Issued:
        """A new certificate for ``name`` signed by its CA (or ``issuer``)."""
        spec = leaf_spec(name, self.node)
        signer = issuer or self.cas[_leaf_entry(name).ca]
        old = self.leaves.get(name)
        return issue(spec.cn, orgs=spec.orgs, issuer=signer, usage=spec.usage,
                     dns_names=spec.dns, ip_addresses=spec.ips, not_before=not_before,
                     not_after=not_before + lifetime, key_type=key_type,
                     key=old.key if old is not None and issuer is None else None)

    def write_leaf(self, name: str, issued: Issued) -> Path:
        """Write ``name`` as kubeadm does (``kubeadm certs renew`` rewrites the same way)."""
        self.leaves[name] = issued
        entry = _leaf_entry(name)
        target = self.root / entry.file
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.kind == "kubeconfig":
            user = KUBECONFIG_USERS[name][0]
            return write_private(target, kubeconfig(user, self.cas["ca"], issued))
        target.write_bytes(issued.cert_pem())
        os.chmod(target, 0o644)
        assert entry.key is not None  # noqa: S101 - every PKI leaf has a key file
        write_private(self.root / entry.key, issued.key_pem())
        return target

    def write_ca(self, name: str, *certs: Issued, key: bool = True) -> Path:
        """Write a CA file holding ``certs`` (several: a rotation in progress)."""
        authority = kubeadm.AUTHORITIES[name]
        target = self.root / authority.cert
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"".join(c.cert_pem() for c in certs))
        os.chmod(target, 0o644)
        key_file = self.root / authority.key
        if key:
            write_private(key_file, certs[0].key_pem())
        else:
            key_file.unlink(missing_ok=True)
        return target


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def kubeconfig(user: str, ca: Issued, client: Issued, server: str = SERVER) -> bytes:
    """A kubeconfig byte for byte in clientcmd's layout, certificate and key embedded."""
    context = f"{user}@kubernetes"
    return (
        "apiVersion: v1\n"
        "clusters:\n"
        "- cluster:\n"
        f"    certificate-authority-data: {_b64(ca.cert_pem())}\n"
        f"    server: {server}\n"
        "  name: kubernetes\n"
        "contexts:\n"
        "- context:\n"
        "    cluster: kubernetes\n"
        f"    user: {user}\n"
        f"  name: {context}\n"
        f"current-context: {context}\n"
        "kind: Config\n"
        "preferences: {}\n"
        "users:\n"
        f"- name: {user}\n"
        "  user:\n"
        f"    client-certificate-data: {_b64(client.cert_pem())}\n"
        f"    client-key-data: {_b64(client.key_pem())}\n"
    ).encode("ascii")


def make_cas(initialized: datetime, key_type: KeyType = "rsa") -> dict[str, Issued]:
    """kubeadm's three CAs, ten years from ``initialized``."""
    return {name: issue(cn, usage="ca", key_type=key_type, not_before=initialized,
                        not_after=initialized + CA_LIFETIME)
            for name, cn in CA_SUBJECTS.items()}


def build_control_plane(root: Path, node: str, initialized: datetime, *,
                        cas: Mapping[str, Issued] | None = None, key_type: KeyType = "rsa",
                        skip: Iterable[str] = ()) -> ControlPlane:
    """``kubeadm init`` at ``initialized`` on ``node``: the fourteen files under ``root``
    (leaves skipped by name are not written, e.g. the etcd ones for external etcd)."""
    plane = ControlPlane(root=root, node=node, cas=dict(cas or make_cas(initialized, key_type)))
    root.mkdir(parents=True, exist_ok=True)
    for name, ca in plane.cas.items():
        plane.write_ca(name, ca)
    skipped = set(skip)
    for entry in kubeadm.LEAVES:
        if entry.name not in skipped:
            plane.write_leaf(entry.name, plane.issue_leaf(entry.name, initialized,
                                                          key_type=key_type))
    sa = new_key(key_type)
    write_private(root / "pki" / "sa.key", Issued(plane.cas["ca"].cert, sa).key_pem())
    (root / "manifests").mkdir(exist_ok=True)
    return plane
