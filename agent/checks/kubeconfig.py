"""The kubeconfig the kubelet authenticates with at its next start, from ``snapshot.kubeconfig``.

- KUBECONFIG_CERT_NOT_ROTATING: ``client-certificate``/``client-key`` name another file
  than ``kubelet-client-current.pem``, or the client certificate is embedded
  (``client-certificate-data``): rotation never rewrites it, so the node drops out when
  that copy expires, whatever ``-current.pem`` says. A warning; critical when that
  certificate is within the critical expiry threshold (or expired). Its expiry and
  identity are judged by the other checks (role ``kubeconfig-client``).
- KUBECONFIG_CA_MISMATCH: the client certificate in use does not chain to the
  kubeconfig's CA, and no other trust anchor vouches for it either.
- KUBECONFIG_UNREADABLE: the kubeconfig exists (or was named) but cannot be used.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from agent import codes
from agent.checks.expiry import thresholds
from agent.kubelet import current_name, iso
from agent.model import (
    Finding,
    KubeconfigCertSource,
    KubeconfigInfo,
    Policy,
    Role,
    Severity,
    Snapshot,
)


def _not_rotating(snapshot: Snapshot, info: KubeconfigInfo, now: datetime,
                  policy: Policy) -> Finding | None:
    cf = snapshot.cert(Role.KUBECONFIG_CLIENT)
    if cf is None or cf.leaf is None:
        return None
    leaf = cf.leaf
    critical, _ = thresholds(leaf, policy)
    severity = Severity.CRITICAL if leaf.not_after - now <= critical else Severity.WARNING
    current = f"{snapshot.cert_dir}/{current_name(Role.CLIENT)}"
    what = ("embeds its client certificate (client-certificate-data"
            if info.cert_source is KubeconfigCertSource.EMBEDDED
            else f"names the client certificate {cf.path} (")
    return Finding(
        codes.KUBECONFIG_CERT_NOT_ROTATING, severity,
        f"the kubelet's kubeconfig {info.path} {what}, serial {leaf.serial}, expires "
        f"{iso(leaf.not_after)}) instead of {current}: rotation never rewrites it, and the "
        "kubelet authenticates with it at its next start, so the node drops out when it "
        f"expires; set client-certificate and client-key to {current} (remove the *-data "
        "fields) and restart the kubelet", info.path)


def check(snapshot: Snapshot, now: datetime, policy: Policy) -> Iterator[Finding]:
    info = snapshot.kubeconfig
    if info is None or info.path is None:
        return
    if info.error is not None:
        yield Finding(
            codes.KUBECONFIG_UNREADABLE, Severity.WARNING,
            f"cannot use the kubelet's kubeconfig: {info.error.detail}; the kubelet cannot "
            "start with it either: fix it, or pass --kubeconfig with the kubelet's own",
            info.path)
        return
    if info.cert_source in (KubeconfigCertSource.FILE, KubeconfigCertSource.EMBEDDED):
        found = _not_rotating(snapshot, info, now, policy)
        if found is not None:
            yield found
    used = snapshot.cert(Role.KUBECONFIG_CLIENT) or snapshot.cert(Role.CLIENT)
    vouched = used is not None and used.trusted is True
    if info.client_trusted is False and not vouched:
        ca = snapshot.cert(Role.KUBECONFIG_CA)
        yield Finding(
            codes.KUBECONFIG_CA_MISMATCH, Severity.WARNING,
            f"the client certificate the kubelet's kubeconfig {info.path} uses does not "
            f"chain to its CA ({ca.path if ca else 'certificate-authority'}): the "
            "kubeconfig belongs to another cluster, or the cluster CA was replaced; the API "
            "server will reject the kubelet if it does not trust that issuer (re-join the "
            "node, or fix certificate-authority)", info.path)
