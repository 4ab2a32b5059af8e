"""Files on disk: missing, broken links, unreadable certificates, keys and config.

Severity follows ownership: a broken file of the kubelet's own (client, the served
certificate) is critical; a watched file or a trust anchor is only an input of this
agent, so an unreadable one is a warning. A key that is present but cannot be parsed
is reported as CERT_UNREADABLE on the key's path (critical): the kubelet cannot load it
either. A ``-current.pem`` that is missing while ``-updated.pem`` exists is the gap of the
kubelet's non-atomic swap: it lasts microseconds, so the daemon's settle period and the
``check`` command's re-read hide it; seen here it means the swap was interrupted (the
kubelet died between two steps): SWAP_INTERRUPTED, and the generation ``-updated.pem``
links to is judged as the live certificate (the kubelet renames the link into place at
its next start), so it is never CLIENT_CERT_MISSING. A self-signed
``kubelet.crt`` that does not exist is not a finding: the kubelet generates it at start.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from agent import codes, kubeadm
from agent.checks.common import (
    describe,
    history_file,
    judged_certs,
    kubelet_not_found,
    kubelet_owned,
    swap_interrupted,
)
from agent.checks.csr import serving_trail
from agent.kubelet import ROLE_NAMES, is_missing, iso, served_role, updated_name
from agent.model import (
    CertFile,
    Finding,
    KeyMatch,
    LinkProblem,
    Policy,
    ProbeOutcome,
    ReadError,
    ReadProblem,
    Role,
    Severity,
    Snapshot,
)

LINK_PROBLEMS = {
    LinkProblem.DANGLING: "points at a file that does not exist",
    LinkProblem.LOOP: "is a symlink loop",
    LinkProblem.NOT_REGULAR: "points at something that is not a regular file",
}


def _swap_interrupted(cf: CertFile) -> Finding:
    updated = cf.link.path if cf.link is not None else updated_name(cf.role)
    return Finding(
        codes.SWAP_INTERRUPTED, Severity.WARNING,
        f"{cf.path} is missing and {updated} links to {cf.target}: the kubelet stopped in the "
        f"middle of renewing its {ROLE_NAMES[cf.role]}; that generation is judged as the live "
        "one, and the kubelet renames the -updated.pem link into place at its next start "
        "(`systemctl restart kubelet` does it now)", cf.path)


def _absent_dir(snapshot: Snapshot, cf: CertFile) -> Finding | None:
    """The link is missing because the whole cert dir is: say that, not "link missing"."""
    error = snapshot.cert_dir_error
    if error is None or cf.role not in (Role.CLIENT, Role.SERVER) or (
            cf.role is Role.SERVER and snapshot.kubelet_config.server_tls_bootstrap is not True):
        return None
    code = codes.CLIENT_CERT_MISSING if cf.role is Role.CLIENT else codes.SERVER_CERT_MISSING
    return Finding(
        code, Severity.CRITICAL,
        f"no {ROLE_NAMES[cf.role]}: {error.detail} ({error.problem.value}); check that "
        "--cert-dir is the kubelet's own (its --cert-dir flag, default /var/lib/kubelet/pki; "
        "binary installs often use /etc/kubernetes/cert), or that the kubelet ever "
        "bootstrapped on this node", cf.path)


def _missing(snapshot: Snapshot, cf: CertFile, now: datetime) -> Iterator[Finding]:
    absent = _absent_dir(snapshot, cf)
    if absent is not None:
        yield absent
    elif cf.role is Role.CLIENT:
        yield Finding(
            codes.CLIENT_CERT_MISSING, Severity.CRITICAL,
            f"no kubelet client certificate at {cf.path}: the kubelet cannot authenticate to "
            "the API server; check its --bootstrap-kubeconfig and that its client CSR is "
            "approved (`kubectl get csr`), or re-join the node", cf.path)
    elif cf.role is Role.SERVER and served_role(snapshot) is Role.SERVER:
        evidence = ("; the serving port answers with internal_error"
                    if _internal_error(snapshot) else "")
        waited = serving_trail(snapshot, now)
        newest = waited.newest if waited is not None and waited.waiting else None
        name = newest.name if newest is not None else "<name>"
        yield Finding(
            codes.SERVER_CERT_MISSING, Severity.CRITICAL,
            f"serverTLSBootstrap is on but there is no serving certificate at {cf.path}"
            f"{evidence}: "
            "`kubectl logs/exec` to this node fail with \"remote error: tls: internal error\"; "
            "approve the node's pending kubelet-serving CSR (`kubectl get csr`, "
            f"`kubectl certificate approve {name}`)", cf.path)
    elif cf.role in (Role.KUBEADM, Role.KUBEADM_CA):
        yield _kubeadm_missing(cf)
    elif cf.role in (Role.TLS_CERT_FILE, Role.WATCHED, Role.TRUST_ANCHOR, Role.KUBECONFIG,
                     Role.KUBECONFIG_CLIENT, Role.KUBECONFIG_CA):
        yield _unreadable(snapshot, cf, cf.path, cf.read_error)


def _kubeadm_missing(cf: CertFile) -> Finding:
    """kubeadm prints ``!MISSING!`` and carries on: an absent file is a layout, not a fault."""
    name = cf.name or cf.path
    why = ("external etcd, or etcd not managed by kubeadm" if name in kubeadm.ETCD_NAMES
           else "kubeadm < 1.29, or a control plane joined with `kubeadm join`"
           if name == "super-admin.conf" else "not created by kubeadm on this node")
    return Finding(codes.KUBEADM_CERT_MISSING, Severity.INFO,
                   f"{describe(cf)} does not exist ({why}); `kubeadm certs check-expiration` "
                   f"shows it as !MISSING!; if it should exist, `kubeadm init phase certs` "
                   "or `kubeadm init phase kubeconfig` creates it", cf.path)


def _internal_error(snapshot: Snapshot) -> bool:
    probe = snapshot.probe
    return probe is not None and probe.outcome is ProbeOutcome.INTERNAL_ERROR


def _stale_note(cf: CertFile) -> str:
    """Where a file's verdicts come from when it is unreadable but was read before."""
    if cf.stale_since is None:
        return ""
    return f" (still judged on the last good copy, read at {iso(cf.stale_since)})"


def _link(snapshot: Snapshot, cf: CertFile, what: str) -> Finding:
    newest = history_file(snapshot, cf.role) or f"kubelet-{cf.role.value}-<timestamp>.pem"
    if cf.link is not None and cf.link.is_symlink:
        found = f"{cf.path} -> {cf.link.target} {what}"
        fix = f"point the link at the newest good generation (`ln -sfn {newest} {cf.path}`)"
    else:  # a FIFO, device, socket or directory in place of the link: ln would not replace it
        found = f"{cf.path} is not a symlink but a FIFO, device, socket or directory"
        fix = f"remove it and link the newest good generation (`ln -s {newest} {cf.path}`)"
    return Finding(
        codes.SYMLINK_BROKEN, Severity.CRITICAL,
        f"{found}: the kubelet cannot load its {ROLE_NAMES[cf.role]}{_stale_note(cf)}; "
        f"{fix} and restart the kubelet", cf.path)


def _not_a_link(cf: CertFile) -> Finding:
    prefix = f"kubelet-{cf.role.value}"
    return Finding(
        codes.CURRENT_NOT_SYMLINK, Severity.WARNING,
        f"{cf.path} is a regular file, not a symlink: the kubelet refuses to rotate it; "
        f"move it to {prefix}-<YYYY-MM-DD-HH-MM-SS>.pem and `ln -s` that file as "
        f"{prefix}-current.pem", cf.path)


PROBLEM_REMEDIES = {
    ReadProblem.PERMISSION_DENIED: "give the agent read access (the packaged service runs as root)",
    ReadProblem.TOO_LARGE: "it is over the size limit: make sure the path names a certificate",
    ReadProblem.CHANGED_DURING_READ: "it kept changing while read: find what rewrites it",
}
ROLE_REMEDIES = {
    Role.SELF_SIGNED: ("delete kubelet.crt and kubelet.key and restart the kubelet to "
                       "regenerate them"),
    Role.TLS_CERT_FILE: "restore tlsCertFile from your PKI and restart the kubelet",
    Role.TRUST_ANCHOR: "fix the CA bundle (clientCAFile / --ca-file)",
    Role.WATCHED: "fix it or remove it from --watch",
    Role.KUBECONFIG_CLIENT: ("the kubelet cannot start with it: point client-certificate and "
                             "client-key in its kubeconfig at kubelet-client-current.pem"),
    Role.KUBECONFIG_CA: "fix certificate-authority in the kubelet's kubeconfig",
    Role.KUBECONFIG: "fix the kubeconfig or remove it from --watch",
    Role.KUBEADM_CA: "restore the CA from a backup: kubeadm cannot re-create it in place",
}


def _remedy(snapshot: Snapshot, cf: CertFile, error: ReadError) -> str:
    """What to do about an unreadable file: by problem first, then by role."""
    if error.problem in PROBLEM_REMEDIES:
        return PROBLEM_REMEDIES[error.problem]
    if cf.role is Role.KUBEADM and cf.name:
        return ("restore it from a backup, or " +
                kubeadm.renew_hint(cf.name, bool(cf.externally_managed)))
    if cf.role in ROLE_REMEDIES:
        return ROLE_REMEDIES[cf.role]
    previous = next((h.previous_path for h in snapshot.history
                     if h.role is cf.role and h.previous_path), None)
    restore = (f"`ln -sfn {previous} {cf.path}` if that generation is still valid, or "
               if previous else "")
    return f"{restore}restart the kubelet so it requests a new certificate"


def _unreadable(snapshot: Snapshot, cf: CertFile, path: str, error: ReadError | None,
                key: bool = False) -> Finding:
    severity = Severity.CRITICAL if kubelet_owned(cf) else Severity.WARNING
    detail = f"{error.detail} ({error.problem.value})" if error else "unknown error"
    what = "private key of the " if key else ""
    stale = "" if key else _stale_note(cf)
    remedy = _remedy(snapshot, cf, error) if error else "check the file"
    subject = f"{ROLE_NAMES[cf.role]} {path}" if key or not cf.name else describe(cf)
    return Finding(codes.CERT_UNREADABLE, severity,
                   f"cannot read the {what}{subject}: {detail}{stale}; {remedy}", path)


def _cert_file(snapshot: Snapshot, cf: CertFile, now: datetime) -> Iterator[Finding]:
    problem = cf.link.problem if cf.link is not None else None
    if swap_interrupted(cf):
        yield _swap_interrupted(cf)
    if is_missing(cf):
        yield from _missing(snapshot, cf, now)
        return
    broken = LINK_PROBLEMS.get(problem) if problem is not None else None
    if broken is not None:
        yield _link(snapshot, cf, broken)
        return
    if problem is LinkProblem.NOT_A_LINK:
        yield _not_a_link(cf)
    if cf.read_error is not None:
        yield _unreadable(snapshot, cf, cf.path, cf.read_error)
    if cf.key_match is KeyMatch.UNREADABLE and kubelet_owned(cf):
        yield _unreadable(snapshot, cf, cf.key_path or cf.target or cf.path, cf.key_error,
                          key=True)


def not_found(snapshot: Snapshot) -> Finding:
    """KUBELET_NOT_FOUND: where discovery looked and which flags to pass."""
    looked = ", ".join(snapshot.kubelet.looked) if snapshot.kubelet is not None else ""
    return Finding(
        codes.KUBELET_NOT_FOUND, Severity.WARNING,
        f"no kubelet on this host: looked in {looked}; if the kubelet runs elsewhere (a "
        "container, another root) pass --host-root DIR, or name its files with --cert-dir, "
        "--kubelet-config and --node-name", None)


def check(snapshot: Snapshot, now: datetime, policy: Policy) -> Iterator[Finding]:
    """Findings about the presence and readability of every judged file and the config."""
    if kubelet_not_found(snapshot):
        yield not_found(snapshot)  # nothing else: a host without a kubelet has no certificates
        return
    for cf in judged_certs(snapshot):
        yield from _cert_file(snapshot, cf, now)
    cfg = snapshot.kubelet_config
    if cfg.error is not None:
        yield Finding(
            codes.KUBELET_CONFIG_UNREADABLE, Severity.WARNING,
            f"cannot read the kubelet config {cfg.path}: {cfg.error.detail} "
            f"({cfg.error.problem.value}); serverTLSBootstrap, rotateCertificates and "
            "tlsCertFile are unknown: fix it, or pass --kubelet-config with the kubelet's "
            "--config file (--kubelet-config '' if it runs on flags only)", cfg.path)
