"""Validity of live certificates: CERT_EXPIRED, CERT_NOT_YET_VALID, CERT_EXPIRING_SOON,
CERT_VALIDITY_INVERTED.

Live certificates are those :func:`agent.checks.common.judged_certs` yields (never the
timestamped history, never a serving file the kubelet does not serve). A stale file
(unreadable now, last good leaf kept) is still judged on that leaf.

Thresholds scale with the lifetime so short-lived certificates are judged fairly:
critical from ``min(critical_days, critical_fraction * lifetime)`` left, warning from
``min(warning_days, warning_fraction * lifetime)`` left (both inclusive, see common).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from agent import codes, kubeadm
from agent.checks.common import (
    BUNDLE_ROLES,
    describe,
    judged_certs,
    rotation_managed,
    served_matches_file,
)
from agent.kubelet import duration, iso
from agent.model import CertFile, CertInfo, Finding, Policy, Role, Severity, Snapshot

CSR_HINT = ("approve this node's newest kubelet-serving CSR (`kubectl get csr`, "
            "`kubectl certificate approve <name>`)")


def thresholds(leaf: CertInfo, policy: Policy) -> tuple[timedelta, timedelta]:
    """(critical, warning): how much lifetime left makes the certificate a finding."""
    lifetime = max(leaf.lifetime, timedelta(0))
    critical = min(timedelta(days=policy.critical_days), lifetime * policy.critical_fraction)
    warning = min(timedelta(days=policy.warning_days), lifetime * policy.warning_fraction)
    return critical, warning


STATIC_HINTS = {
    Role.SELF_SIGNED: ("the kubelet never renews it: delete kubelet.crt and kubelet.key and "
                       "restart the kubelet, or better set serverTLSBootstrap: true"),
    Role.TLS_CERT_FILE: ("renew tlsCertFile (set in {config}) from the cluster CA and restart "
                         "the kubelet"),
    Role.TRUST_ANCHOR: "rotate the CA: every certificate it signs stops verifying when it expires",
    Role.WATCHED: "renew it (kubeadm control plane: `kubeadm certs renew all`)",
    Role.SERVED: ("it is what `kubectl logs/exec` and metrics-server see: restart the kubelet "
                  "so it serves the renewed file, or renew the file first"),
    Role.KUBECONFIG_CLIENT: ("the kubelet uses it at its next start: point client-certificate "
                             "and client-key in the kubeconfig at kubelet-client-current.pem"),
    Role.KUBECONFIG_CA: ("renew the cluster CA and update certificate-authority(-data) in "
                         "the kubeconfig"),
    Role.KUBECONFIG: ("renew the client certificate in this kubeconfig (kubeadm control "
                      "plane: `kubeadm certs renew all`)"),
}


def _client_hint(snapshot: Snapshot, cf: CertFile, expired: bool, config: str) -> str:
    if expired:
        return ("the kubelet can no longer authenticate and the node goes NotReady: re-join "
                "it with a fresh bootstrap token (`kubeadm token create --print-join-command`)")
    if rotation_managed(snapshot, cf):
        return ("the kubelet should renew it before then: check `journalctl -u kubelet` for "
                "\"certificate request was not signed\" and `kubectl get csr`")
    return (f"rotateCertificates is false: set rotateCertificates: true in {config} and "
            "restart the kubelet, or renew it by hand")


def _hint(snapshot: Snapshot, cf: CertFile, expired: bool) -> str:
    """What the operator should do about this file, by role."""
    config = snapshot.kubelet_config.path or "the kubelet config"
    if cf.role is Role.CLIENT:
        return _client_hint(snapshot, cf, expired, config)
    if cf.role is Role.SERVER:
        prefix = "`kubectl logs/exec` to this node fail: " if expired else ""
        return prefix + CSR_HINT
    if cf.name and cf.role in (Role.KUBEADM, Role.KUBEADM_CA):
        return kubeadm.renew_hint(cf.name, bool(cf.externally_managed))
    return STATIC_HINTS.get(cf.role, STATIC_HINTS[Role.WATCHED]).format(config=config)


def _judge(snapshot: Snapshot, cf: CertFile, leaf: CertInfo, now: datetime,
           policy: Policy, *, name: str | None = None) -> Finding | None:
    name = name or describe(cf)
    if leaf.not_before > leaf.not_after:  # not "expired": it never was valid at all
        return Finding(codes.CERT_VALIDITY_INVERTED, Severity.CRITICAL,
                       f"{name} has notBefore {iso(leaf.not_before)} after notAfter "
                       f"{iso(leaf.not_after)}: no instant is valid, every TLS peer rejects "
                       f"it; re-issue it ({_hint(snapshot, cf, True)})", cf.path)
    if now >= leaf.not_after:
        return Finding(codes.CERT_EXPIRED, Severity.CRITICAL,
                       f"{name} expired at {iso(leaf.not_after)} "
                       f"({duration(now - leaf.not_after)} ago): {_hint(snapshot, cf, True)}",
                       cf.path)
    if now < leaf.not_before:
        # A warning: it is the node's clock that is wrong (the signer backdates by only 5
        # minutes, so a node 2 h behind sees every fresh certificate "not yet valid"), and
        # the API server judges with its own clock; nothing breaks for that alone
        # (bench/bench_alerts.py, clock-behind-2h). A real rejection pages on its own
        # (APISERVER_AUTH_FAILED).
        return Finding(codes.CERT_NOT_YET_VALID, Severity.WARNING,
                       f"{name} is not valid before {iso(leaf.not_before)} "
                       f"(in {duration(leaf.not_before - now)}): check the node's clock / NTP "
                       "(`timedatectl status`, `chronyc tracking`)", cf.path)
    critical, warning = thresholds(leaf, policy)
    left = leaf.not_after - now
    if left <= critical:
        severity, threshold = Severity.CRITICAL, critical
    elif left <= warning:
        severity, threshold = Severity.WARNING, warning
    else:
        return None
    return Finding(codes.CERT_EXPIRING_SOON, severity,
                   f"{name} expires at {iso(leaf.not_after)} (in {duration(left)}, "
                   f"{severity.label} threshold {duration(threshold)}): "
                   f"{_hint(snapshot, cf, False)}", cf.path)


def _bundle(snapshot: Snapshot, cf: CertFile, now: datetime,
            policy: Policy) -> Iterator[Finding]:
    """A CA file: judged on its valid CA that lasts longest. The others beside it are a
    rotation in progress (info); only when none is valid is the file expired."""
    chain = cf.chain or ((cf.leaf,) if cf.leaf else ())
    best = kubeadm.current_ca(chain, now)
    if best is None:  # the one that expired last (or starts first) says what is wrong
        latest = max(chain, key=lambda c: c.not_after)
        finding = _judge(snapshot, cf, latest, now, policy)
        if finding is not None:
            yield finding
        return
    finding = _judge(snapshot, cf, best, now, policy)
    if finding is not None:
        yield finding
    others = [c for c in chain if not c.not_before <= now < c.not_after]
    if others:
        subjects = ", ".join(f"{c.subject} (valid {iso(c.not_before)} to {iso(c.not_after)})"
                             for c in others)
        yield Finding(
            codes.CA_ROTATION_IN_PROGRESS, Severity.INFO,
            f"{describe(cf)} holds {len(chain)} CAs; {subjects} is not valid now beside "
            f"{best.subject}, valid until {iso(best.not_after)}: a CA rotation in progress; "
            "remove the retired CA once every certificate it signed has been re-issued",
            cf.path)


def _file(snapshot: Snapshot, cf: CertFile, now: datetime,
          policy: Policy) -> Iterator[Finding]:
    """Every certificate in the file is judged: the leaf, then each CA in its chain (an
    expired intermediate breaks the chain as surely as an expired leaf)."""
    if cf.leaf is None:
        return
    if cf.role in BUNDLE_ROLES:
        yield from _bundle(snapshot, cf, now, policy)
        return
    finding = _judge(snapshot, cf, cf.leaf, now, policy)
    if finding is not None:
        yield finding
    leaf = cf.leaf
    for position, info in enumerate(cf.chain, 1):
        # A CA whose validity covers the leaf's can add nothing the leaf's verdict lacks.
        covers = info.not_before <= leaf.not_before and info.not_after >= leaf.not_after
        if info != leaf and not covers:
            name = f"CA {info.subject} (certificate #{position} in {describe(cf)})"
            finding = _judge(snapshot, cf, info, now, policy, name=name)
            if finding is not None:
                yield finding


def check(snapshot: Snapshot, now: datetime, policy: Policy) -> Iterator[Finding]:
    """Expired, not yet valid or expiring certificates in every live file."""
    for cf in judged_certs(snapshot):
        if cf.role is Role.SERVED and served_matches_file(snapshot, cf):
            continue  # the file's finding says it all
        yield from _file(snapshot, cf, now, policy)


def deadlines(snapshot: Snapshot, policy: Policy) -> Iterator[datetime]:
    """Instants at which a verdict above changes: notBefore, both thresholds, notAfter."""
    for cf in judged_certs(snapshot):
        for info in cf.chain or ((cf.leaf,) if cf.leaf else ()):
            critical, warning = thresholds(info, policy)
            yield info.not_before
            yield info.not_after - warning
            yield info.not_after - critical
            yield info.not_after
