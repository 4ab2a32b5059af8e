"""What the kubelet's serving port presents, from ``snapshot.probe``.

- SERVED_CERT_MISMATCH: the served leaf is not the file the kubelet should serve
  (kubelet-server-current.pem, tlsCertFile or kubelet.crt, per the settings): the kubelet
  has not loaded the new certificate. A warning; critical when the served one is within
  the critical expiry threshold (or expired). The finding's path is the file's, so a
  verdict about a file that just changed waits for the settle period like every other.
- KUBELET_NOT_SERVING (info only): refused, timed out or not TLS. The kubelet is down or
  listens elsewhere; that is not a certificate problem and must never raise an alarm.

``internal_error`` is evidence for SERVER_CERT_MISSING (see checks.files).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from agent import codes
from agent.checks.common import served_file, served_matches_file
from agent.checks.expiry import thresholds
from agent.kubelet import ROLE_NAMES, iso
from agent.model import CertInfo, Finding, Policy, ProbeOutcome, Severity, Snapshot

DOWN = frozenset({ProbeOutcome.REFUSED, ProbeOutcome.TIMEOUT, ProbeOutcome.NOT_TLS})


def _describe(leaf: CertInfo) -> str:
    return f"serial {leaf.serial} (expires {iso(leaf.not_after)})"


def check(snapshot: Snapshot, now: datetime, policy: Policy) -> Iterator[Finding]:
    probe = snapshot.probe
    if probe is None:
        return
    if probe.outcome in DOWN:
        yield Finding(
            codes.KUBELET_NOT_SERVING, Severity.INFO,
            f"{probe.detail}: the kubelet is down or does not serve there "
            "(`systemctl status kubelet`); if it listens elsewhere pass --kubelet-endpoint "
            "HOST:PORT, or --no-probe", f"https://{probe.endpoint}")
        return
    served = probe.served
    expected = served_file(snapshot)
    if (served is None or served.leaf is None or expected is None or expected.leaf is None
            or served_matches_file(snapshot, served)):
        return
    leaf = served.leaf
    critical, _ = thresholds(leaf, policy)
    severity = Severity.CRITICAL if leaf.not_after - now <= critical else Severity.WARNING
    yield Finding(
        codes.SERVED_CERT_MISMATCH, severity,
        f"the kubelet serves {_describe(leaf)} on {probe.endpoint} but the "
        f"{ROLE_NAMES[expected.role]} {expected.path} is {_describe(expected.leaf)}: it has "
        "not loaded the new certificate; restart the kubelet (`systemctl restart kubelet`)",
        expected.path)


def deadlines(snapshot: Snapshot, policy: Policy) -> Iterator[datetime]:
    """When a mismatch turns critical."""
    probe = snapshot.probe
    if probe is not None and probe.served is not None and probe.served.leaf is not None:
        leaf = probe.served.leaf
        yield leaf.not_after - thresholds(leaf, policy)[0]
