"""The kubeadm control plane as ``kubeadm certs check-expiration`` sees it. Pure: no I/O.

What kubeadm lists (cmd/kubeadm/app/phases/certs/renewal, manager.go): the client
certificates embedded in four kubeconfigs under the kubeadm dir (``/etc/kubernetes``)
and seven PKI leaves under ``pki/``, each tied to the CA that signs it, then the three
CAs. Both lists are sorted by name, which is the order kubeadm prints. A CA whose key is
absent is "externally managed": kubeadm cannot renew what it signs. Renewal never
restarts anything: the static pods keep the old certificates until restarted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from agent.model import CertInfo

DEFAULT_DIR = "/etc/kubernetes"  # under the host root
CA_FILE = "pki/ca.crt"
# `kubeadm join` writes pki/ca.crt on workers too; only a control plane has the API
# server's certificate or its static pod manifest.
CONTROL_PLANE_MARKERS = ("pki/apiserver.crt", "manifests/kube-apiserver.yaml")


@dataclass(frozen=True)
class Authority:
    """One of kubeadm's CAs: its name, certificate and key, relative to the kubeadm dir."""

    name: str
    cert: str
    key: str


@dataclass(frozen=True)
class Leaf:
    """A certificate ``check-expiration`` lists: a kubeconfig's client certificate or a
    PKI file, and the CA that must have signed it."""

    name: str
    kind: Literal["kubeconfig", "pki"]
    file: str  # relative to the kubeadm dir
    ca: str
    key: str | None = None  # the PKI leaf's key file; a kubeconfig embeds its key


CAS: tuple[Authority, ...] = (
    Authority("ca", "pki/ca.crt", "pki/ca.key"),
    Authority("etcd-ca", "pki/etcd/ca.crt", "pki/etcd/ca.key"),
    Authority("front-proxy-ca", "pki/front-proxy-ca.crt", "pki/front-proxy-ca.key"),
)


def _pki(name: str, base: str, ca: str) -> Leaf:
    return Leaf(name, "pki", f"pki/{base}.crt", ca, f"pki/{base}.key")


def _kubeconfig(name: str) -> Leaf:
    return Leaf(name, "kubeconfig", name, "ca")  # all four are signed by the cluster CA


LEAVES: tuple[Leaf, ...] = tuple(sorted((
    _kubeconfig("admin.conf"),
    _kubeconfig("super-admin.conf"),  # kubeadm >= 1.29; absent on joined control planes
    _kubeconfig("controller-manager.conf"),
    _kubeconfig("scheduler.conf"),
    _pki("apiserver", "apiserver", "ca"),
    _pki("apiserver-etcd-client", "apiserver-etcd-client", "etcd-ca"),
    _pki("apiserver-kubelet-client", "apiserver-kubelet-client", "ca"),
    _pki("etcd-healthcheck-client", "etcd/healthcheck-client", "etcd-ca"),
    _pki("etcd-peer", "etcd/peer", "etcd-ca"),
    _pki("etcd-server", "etcd/server", "etcd-ca"),
    _pki("front-proxy-client", "front-proxy-client", "front-proxy-ca"),
), key=lambda leaf: leaf.name))
AUTHORITIES: dict[str, Authority] = {ca.name: ca for ca in CAS}
NAMES: tuple[str, ...] = tuple(leaf.name for leaf in LEAVES) + tuple(ca.name for ca in CAS)
ETCD_NAMES = frozenset({"apiserver-etcd-client", "etcd-healthcheck-client", "etcd-peer",
                        "etcd-server", "etcd-ca"})
STATIC_PODS = "kube-apiserver, kube-controller-manager, kube-scheduler and etcd"


def current_ca(chain: tuple[CertInfo, ...], now: datetime) -> CertInfo | None:
    """The CA a bundle is judged on: among those valid at ``now``, the one that lasts
    longest (a CA file mid-rotation holds the retired CA beside the new one)."""
    valid = [c for c in chain if c.not_before <= now < c.not_after]
    return max(valid, key=lambda c: c.not_after, default=None)


def default_dir(host_root: str = "/") -> str:
    """``<host root>/etc/kubernetes``: the one place the default is computed."""
    return os.path.join(host_root, DEFAULT_DIR.lstrip("/"))


def expires(at: datetime) -> str:
    """kubeadm's EXPIRES column: Go's ``Jan 02, 2006 15:04 MST`` of a UTC instant."""
    return at.astimezone(UTC).strftime("%b %d, %Y %H:%M UTC")


def residual(left: timedelta) -> str:
    """kubeadm's RESIDUAL TIME (apimachinery ``duration.ShortHumanDuration``):
    ``<invalid>`` once past (beyond a 2 s tolerance), then s, m, h, d, y, truncated."""
    seconds = int(left.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 60:
        return f"{max(seconds, 0)}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    hours = seconds // 3600
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"


def restart_hint() -> str:
    return (f"then restart the control-plane static pods ({STATIC_PODS}), which kubeadm "
            "does not do: move each manifest out of /etc/kubernetes/manifests and back "
            "after 20 s")


def renew_hint(name: str, externally_managed: bool) -> str:
    """The exact remedy for an expiring or expired kubeadm certificate."""
    if name in AUTHORITIES:
        return (f"kubeadm never renews a CA: rotate {name} by hand (kubeadm docs, "
                "\"Manual rotation of CA certificates\") before it expires, re-issuing "
                "every certificate it signed")
    if externally_managed:
        return (f"its CA is externally managed (no CA key): kubeadm cannot renew it; "
                f"issue a new one from your CA (`kubeadm certs generate-csr`), "
                f"{restart_hint()}")
    return f"run `kubeadm certs renew {name}` (or `all`), {restart_hint()}"
