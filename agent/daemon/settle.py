"""Settle: never publish a bad verdict that only exists halfway through a kubelet swap.

The kubelet's swap is not atomic (``-current.pem`` is removed, then ``-updated.pem``
renamed over it), so an evaluation can catch a missing or dangling link that heals
microseconds later. The rule, applied to each raw evaluation before it is published:

* a NEGATIVE change (a finding that is new, or worse than the published one) about a
  path that changed within the settle period is published only once it has held for
  the settle period; meanwhile everything previously published about that path (its
  findings and its certificate file) stays published;
* a POSITIVE change (a new certificate, a finding cleared or less severe) and every
  verdict about a path that did not change recently is published at once.

Pure: instants come from the evaluations, nothing here reads the clock or the disk.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from agent import codes
from agent.checks import sort_key
from agent.model import CertFile, Evaluation, Finding, Snapshot

FindingKey = tuple[str, str | None]

_FILE = "<file>"  # pending key prefix for a certificate file turning bad

# Findings about the API server do not depend on local files: never held back.
_API_CODES = frozenset(c for c in codes.ALL
                       if c.startswith(("APISERVER_", "SERVING_CSR_")))


def _paths_of(cert: CertFile) -> set[str]:
    paths = {cert.path}
    for extra in (cert.target, cert.key_path, cert.link.resolved if cert.link else None):
        if extra:
            paths.add(extra)
    return paths


def _bad(cert: CertFile) -> bool:
    """No usable current certificate: missing, dangling, unreadable or only stale data."""
    broken_link = cert.link is not None and cert.link.problem is not None
    return cert.leaf is None or broken_link or cert.read_error is not None or (
        cert.stale_since is not None)


def _signature(cert: CertFile) -> tuple[object, ...]:
    """What an observer of ``cert`` can see change (never the bytes themselves)."""
    leaf = cert.leaf.fingerprint_sha256 if cert.leaf else None
    return (cert.role, cert.target, cert.link, cert.size, cert.read_error, leaf,
            cert.key_match, cert.key_error, cert.stale_since)


def changed_paths(previous: Snapshot | None, current: Snapshot) -> frozenset[str]:
    """Every path whose observed state differs between two snapshots.

    A file that appeared, vanished, got a new target, certificate, size or error counts,
    with the link path and both the old and new targets.
    """
    if previous is None:
        return frozenset()
    before = {c.path: c for c in previous.certs + previous.anchors}
    after = {c.path: c for c in current.certs + current.anchors}
    changed: set[str] = set()
    for path in before.keys() | after.keys():
        old, new = before.get(path), after.get(path)
        if old is None or new is None or _signature(old) != _signature(new):
            for cert in (old, new):
                if cert is not None:
                    changed |= _paths_of(cert)
    if previous.kubelet_config != current.kubelet_config:
        changed.update(p for p in (previous.kubelet_config.path,
                                   current.kubelet_config.path) if p)
    changed |= set(previous.updated_links) ^ set(current.updated_links)
    return frozenset(changed)


def sort_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Worst first, then by code, path and message, as :func:`agent.checks.evaluate`."""
    return tuple(sorted(findings, key=sort_key))


class Settler:
    """Holds back unsettled negative verdicts; remembers recent changes between calls."""

    def __init__(self, settle: timedelta) -> None:
        self.settle = settle
        self._changed_at: dict[str, datetime] = {}
        self._pending_since: dict[FindingKey, datetime] = {}

    def deadline(self) -> datetime | None:
        """When the earliest held verdict will have settled (None: nothing held)."""
        if not self._pending_since:
            return None
        return min(self._pending_since.values()) + self.settle

    def held(self) -> frozenset[FindingKey]:
        """The (code, path) of every negative verdict currently held back."""
        return frozenset(self._pending_since)

    def recent(self, now: datetime) -> bool:
        """Whether some path changed within the settle period before ``now``."""
        return any(now - t < self.settle for t in self._changed_at.values())

    def apply(self, raw: Evaluation, published: Evaluation | None,
              changed: Iterable[str] = (),
              expected: Sequence[Finding] | None = None) -> Evaluation:
        """The evaluation to publish, given the raw one and what was published before.

        ``expected`` are the findings the published snapshot itself gives at this instant
        (None: not computed). They changed with time alone, not with a file, so they are
        never held back, and a held group shows them rather than its older findings.
        """
        now = raw.now
        for path in changed:
            self._changed_at[path] = now
        self._changed_at = {p: t for p, t in self._changed_at.items() if now - t < self.settle}
        if published is None:
            self._pending_since.clear()
            return replace(raw, findings=sort_findings(raw.findings))
        groups = _Groups(raw.snapshot, published.snapshot)
        timely = frozenset((f.code, f.path) for f in expected or ())
        held_groups, accepted = self._judge(raw, published, groups, timely)
        if not held_groups:
            return replace(raw, findings=sort_findings(accepted))
        before = published.findings if expected is None else expected
        kept = [f for f in before if groups.of(f.path) in held_groups]
        findings = [f for f in accepted if groups.of(f.path) not in held_groups] + kept
        return replace(raw, snapshot=_keep_files(raw.snapshot, published.snapshot, held_groups),
                       findings=sort_findings(findings))

    def _judge(self, raw: Evaluation, published: Evaluation, groups: _Groups,
               timely: frozenset[FindingKey]) -> tuple[set[str | None], list[Finding]]:
        """Split raw findings into accepted ones and the groups a held verdict freezes."""
        recent = set(self._changed_at)
        held_groups: set[str | None] = set()
        accepted: list[Finding] = []
        before = {(f.code, f.path): f for f in published.findings}
        still_bad: set[FindingKey] = set()
        for f in raw.findings:
            key = (f.code, f.path)
            old = before.get(key)
            if key not in timely and (old is None or f.severity > old.severity) and (
                    self._involved(f.code, f.path, groups, recent)):
                still_bad.add(key)
                if self._hold(key, raw.now):
                    held_groups.add(groups.of(f.path))
                    continue
            accepted.append(f)
        # A file that turns bad (missing, dangling, unreadable, stale) is a negative change
        # even when no finding says so (the checks ignore a link while -updated.pem exists).
        old_files = {c.path: c for c in published.snapshot.certs + published.snapshot.anchors}
        for cert in raw.snapshot.certs + raw.snapshot.anchors:
            previous = old_files.get(cert.path)
            if _bad(cert) and (previous is None or not _bad(previous)) and self._involved(
                    _FILE, cert.path, groups, recent):
                still_bad.add((_FILE, cert.path))
                if self._hold((_FILE, cert.path), raw.now):
                    held_groups.add(groups.of(cert.path))
        for key in set(self._pending_since) - still_bad:
            del self._pending_since[key]  # the bad verdict went away before it settled
        return held_groups, accepted

    def _hold(self, key: FindingKey, now: datetime) -> bool:
        """Whether a negative verdict first seen at ``_pending_since[key]`` is still held."""
        if now - self._pending_since.setdefault(key, now) < self.settle:
            return True
        del self._pending_since[key]  # settled: published from now on
        return False

    @staticmethod
    def _involved(code: str, path: str | None, groups: _Groups, recent: set[str]) -> bool:
        if not recent or code in _API_CODES:
            return False
        if path is None:
            return True  # a file-level finding without a path: any recent change may explain it
        return bool(groups.paths(groups.of(path)) & recent)


class _Groups:
    """Maps any path a finding names to the certificate file it is about."""

    def __init__(self, *snapshots: Snapshot) -> None:
        self._group: dict[str, str] = {}
        self._paths: dict[str, set[str]] = {}
        for snap in snapshots:
            for cert in snap.certs + snap.anchors:
                paths = _paths_of(cert)
                self._paths.setdefault(cert.path, set()).update(paths)
                for p in paths:
                    self._group.setdefault(p, cert.path)

    def of(self, path: str | None) -> str | None:
        if path is None:
            return None
        return self._group.get(path, path)

    def paths(self, group: str | None) -> set[str]:
        if group is None:
            return set()
        return self._paths.get(group, set()) | {group}


def _keep(raw: tuple[CertFile, ...], published: tuple[CertFile, ...],
          held: set[str | None]) -> tuple[CertFile, ...]:
    old = {c.path: c for c in published}
    files = [old.get(c.path, c) if c.path in held else c for c in raw]
    present = {c.path for c in raw}
    files += [c for path, c in old.items() if path in held and path not in present]
    return tuple(files)


def _keep_files(raw: Snapshot, published: Snapshot, held: set[str | None]) -> Snapshot:
    """``raw`` with the published certificate file kept for every held group."""
    return replace(raw, certs=_keep(raw.certs, published.certs, held),
                   anchors=_keep(raw.anchors, published.anchors, held),
                   updated_links=published.updated_links)
