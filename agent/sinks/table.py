"""The human view of an evaluation, like ``kubeadm certs check-expiration`` for the kubelet.

Layout: a context line, one row per certificate file, on a kubeadm control plane the
CONTROL PLANE and CERTIFICATE AUTHORITY sections in kubeadm's own layout, a HISTORY
line per role, an API SERVER line when the API was asked, the findings, and last ONE
summary line whose first word is the Nagios status. Plain text, no colours, every
untrusted name escaped (:mod:`agent.sinks.escape`). Pure: no I/O, no clock.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.x509.oid import NameOID

from agent import codes
from agent.kubelet import (
    ROTATING_ROLES,
    SERVING_ROLES,
    SERVING_SIGNER,
    iso,
    residual,
    served_role,
)
from agent.model import (
    ApiState,
    CertFile,
    CertInfo,
    CsrTrail,
    Evaluation,
    Finding,
    KubeletConfigInfo,
    ReadProblem,
    Role,
    RoleHistory,
    Severity,
    Snapshot,
)
from agent.sinks import kubeadm_table
from agent.sinks.escape import printable

HEADERS = ("CERTIFICATE", "PATH", "EXPIRES (UTC)", "RESIDUAL TIME", "ROTATION WINDOW",
           "ISSUER", "STATE")
KUBEADM_ROLES = (Role.KUBEADM, Role.KUBEADM_CA)  # shown in kubeadm's own layout
MAX_PATH = 72
SHORT_WINDOW = timedelta(days=3)  # below this the ROTATION WINDOW column shows times
NONE = "-"


def render_table(ev: Evaluation) -> str:
    """The whole report, newline-terminated."""
    snap = ev.snapshot
    lines = [_context_line(snap), ""]
    rows = [_cert_row(c, snap.cert_dir, ev.now,
                      cert_state(c, ev.findings, served=_served(c, snap)))
            for c in snap.certs + snap.anchors if c.role not in KUBEADM_ROLES]
    lines += _columns([HEADERS, *rows]) if rows else ["no certificate files found"]
    lines += [f"swap in progress: {_short(p, snap.cert_dir)}" for p in snap.updated_links]
    leaves, cas = kubeadm_table.sections(ev, lambda c: cert_state(c, ev.findings))
    if leaves or cas:
        lines += ["", f"CONTROL PLANE (kubeadm, {snap.kubeadm_dir})", *_columns(leaves), "",
                  *_columns(cas)]
    if snap.history:
        lines += ["", "HISTORY"]
        lines += _columns([_history_row(h) for h in snap.history])
    if snap.probe is not None:
        lines += ["", f"SERVING PORT {snap.probe.endpoint}: {snap.probe.outcome.value} "
                      f"({snap.probe.detail})"]
    if snap.api is not None:
        lines += ["", _api_line(snap.api, ev.csr_trail(SERVING_SIGNER))]
    lines += ["", "FINDINGS" if ev.findings else "FINDINGS: none"]
    lines += _columns([(f.severity.name, f.code, f.message + _path_note(f.path, snap.cert_dir))
                       for f in ev.findings])
    lines += ["", summary_line(ev)]
    # Every cell was escaped by _columns; the other lines carry names too (cert dir,
    # config path, node, API server): escape them here. Idempotent on escaped text.
    return "\n".join(printable(line) for line in lines) + "\n"


def summary_line(ev: Evaluation) -> str:
    """``CRITICAL: 2 critical, 1 warning — node n1, evaluated 2026-11-23T12:00:00Z``."""
    counts = Counter(f.severity for f in ev.findings)
    parts = [f"{counts[s]} {s.label}{'s' if s is Severity.WARNING and counts[s] > 1 else ''}"
             for s in sorted(Severity, reverse=True) if counts[s]]
    return (f"{ev.status.name}: {', '.join(parts) or 'no findings'} — "
            f"node {ev.snapshot.node_name}, evaluated {iso(ev.now)}")


def issuer_cn(issuer: str) -> str:
    """The CN of an RFC 4514 issuer name; the whole name when it has no CN."""
    try:
        attrs = x509.Name.from_rfc4514_string(issuer).get_attributes_for_oid(
            NameOID.COMMON_NAME)
    except ValueError:
        return issuer
    return str(attrs[0].value) if attrs else issuer


def findings_about(c: CertFile, findings: Iterable[Finding]) -> list[Finding]:
    """The findings that name this file (its path, link target or key), worst first."""
    paths = {c.path, c.target, c.key_path} - {None}
    return sorted((f for f in findings if f.path in paths), key=lambda f: -f.severity)


def cert_state(c: CertFile, findings: Iterable[Finding], *, served: bool = True) -> str:
    """What the findings say about one file, in a few words (``ok`` when nothing).

    The words come from the findings alone (:data:`agent.codes.STATE_WORDS`), so the
    table can never contradict them. A serving file the kubelet does not serve is not
    judged at all: it is shown as ``unused``.
    """
    if not served:
        return "unused (not served, not judged)"
    words: list[str] = []
    for f in findings_about(c, findings):
        word = codes.state_word(f.code)
        if f.code == codes.SYMLINK_BROKEN and c.link is not None and c.link.problem:
            word = f"link {c.link.problem.value}"
        elif f.code == codes.CERT_UNREADABLE and c.read_error is not None:
            word = f"unreadable ({c.read_error.problem.value})"
        if word not in words:
            words.append(word)
    if c.stale_since is not None:
        words.append(f"stale since {iso(c.stale_since)}")
    return ", ".join(words) or ("ok" if c.leaf is not None else "absent")


def _served(c: CertFile, snap: Snapshot) -> bool:
    return c.role not in SERVING_ROLES or c.role is served_role(snap)


def _cert_row(c: CertFile, cert_dir: str, now: datetime, state: str) -> tuple[str, ...]:
    path = _short(c.path, cert_dir)
    if c.target and os.path.normpath(c.target) != os.path.normpath(c.path):
        same_dir = os.path.dirname(c.target) == os.path.dirname(c.path)
        path += " -> " + (os.path.basename(c.target) if same_dir else c.target)
    leaf = c.leaf
    if leaf is None:
        return (c.role.value, _ellipsize(path), NONE, NONE, NONE, NONE, state)
    window, left = NONE, NONE  # an inverted validity has neither (never backwards)
    if leaf.not_before <= leaf.not_after:
        left = residual(leaf.not_after - now)
        if c.role in ROTATING_ROLES:
            window = rotation_window(leaf)
    return (c.role.value, _ellipsize(path), _minute(leaf.not_after), left, window,
            issuer_cn(leaf.issuer), state)


def _history_row(h: RoleHistory) -> tuple[str, ...]:
    files = f"{h.count} file{'s' if h.count != 1 else ''} ({_size(h.total_bytes)})"
    span = (f"{_stamp(h.oldest)} .. {_stamp(h.newest)} (kubelet local time)" if h.oldest
            else "no timestamps")
    last = f"last rotation {_stamp(h.newest)}" if h.count > 1 and h.newest else "never rotated"
    return (h.role.value, files, span, last)


def rotation_window(leaf: CertInfo) -> str:
    """The kubelet's 70-90 % window, in UTC: dates, or times when it is shorter than a
    few days (a 10-minute certificate's window lies within one date)."""
    start, end = leaf.rotation_window_start, leaf.rotation_window_end
    if end - start >= SHORT_WINDOW:
        return f"{_minute(start)[:10]}..{_minute(end)[:10]}"
    if _minute(start)[:10] == _minute(end)[:10]:
        return f"{_minute(start)}..{_minute(end)[11:]}"
    return f"{_minute(start)}..{_minute(end)}"


def _minute(at: datetime) -> str:
    """``2026-11-23 12:00`` in UTC; four-digit years, even for 0001-01-01 (strftime's %Y
    gives ``1``)."""
    text = iso(at)
    return f"{text[:10]} {text[11:16]}"


def _api_line(api: ApiState, serving: CsrTrail | None = None) -> str:
    head = f"API SERVER {api.server}:" if api.server else "API SERVER:"
    if api.error is not None:
        e = api.error
        code = f" HTTP {e.status_code}" if e.status_code else ""
        return (f"{head} {e.problem.value}{code} ({e.detail}), "
                f"{e.consecutive_failures} consecutive failure(s); last success "
                f"{iso(api.last_success) if api.last_success else 'never'}")
    states = Counter("abandoned" if serving is not None and serving.is_abandoned(c)
                     else c.state.value for c in api.csrs)
    detail = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    who = f" as {api.identity_username}" if api.identity_username else ""
    return (f"{head} ok{who}, {len(api.csrs)} serving CSR(s) for this node"
            + (f" ({detail})" if detail else ""))


def _context_line(snap: Snapshot) -> str:
    error = snap.cert_dir_error
    absent = "" if error is None else (
        " (absent)" if error.problem is ReadProblem.NOT_FOUND else f" ({error.problem.value})")
    return (f"node {snap.node_name}, cert dir {snap.cert_dir}{absent}, "
            f"kubelet config {_config_summary(snap.kubelet_config)}")


def _config_summary(k: KubeletConfigInfo) -> str:
    if k.path is None:
        return "not used"
    if k.error is not None:
        return f"{k.path} (unreadable: {k.error.problem.value})"
    if not k.present:
        return f"{k.path} (absent)"
    flags = {"serverTLSBootstrap": k.server_tls_bootstrap,
             "rotateCertificates": k.rotate_certificates}
    shown = ", ".join(f"{name}: {str(v).lower()}" for name, v in flags.items() if v is not None)
    return f"{k.path} ({shown})" if shown else k.path


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    if not rows:
        return []
    rows = [[printable(cell) for cell in r] for r in rows]  # untrusted names: see escape
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return ["  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)),
                       r[-1]]).rstrip() for r in rows]


def _short(path: str, cert_dir: str) -> str:
    """A path relative to the cert dir when it lies inside it, else unchanged."""
    prefix = cert_dir.rstrip("/") + "/"
    return path[len(prefix):] if cert_dir and path.startswith(prefix) else path


def _ellipsize(text: str) -> str:
    if len(text) <= MAX_PATH:
        return text
    keep = (MAX_PATH - 3) // 2
    return text[:keep] + "..." + text[-(MAX_PATH - 3 - keep):]


def _path_note(path: str | None, cert_dir: str) -> str:
    return f"  [{_short(path, cert_dir)}]" if path else ""


def _stamp(text: str | None) -> str:
    """``2026-05-06-12-00-00`` (the kubelet's file-name format) as ``2026-05-06 12:00:00``."""
    if not text or len(text) != 19:
        return text or NONE
    return f"{text[:10]} {text[11:].replace('-', ':')}"


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"
