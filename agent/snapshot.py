"""Sources -> one immutable :class:`agent.model.Snapshot`.

``build_snapshot`` never raises: every failure is data (a LinkProblem, a ReadError).
``merge_stale`` carries the last good certificate over a read failure, marked stale.
``input_paths`` / ``watch_dirs`` tell the watcher which files and directories matter.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime

from agent.config import SourceSettings
from agent.kubelet import ROTATING_ROLES, current_name, updated_name
from agent.model import (
    ApiState,
    CertFile,
    KubeletConfigInfo,
    ReadError,
    ReadProblem,
    Role,
    Snapshot,
)
from agent.sources.certdir import scan_cert_dir
from agent.sources.certfile import load_anchors, load_cert_file, load_watched
from agent.sources.kubeletconfig import read_kubelet_config

SELF_SIGNED_FILES = ("kubelet.crt", "kubelet.key")


def build_snapshot(sources: SourceSettings, now: datetime,
                   api: ApiState | None = None) -> Snapshot:
    """Inventory every local input at ``now``.

    ``certs`` order: client, server (always present, possibly MISSING), kubelet.crt
    (when present), tlsCertFile (when configured), then ``--watch`` files sorted by path.
    """
    cert_dir = os.path.abspath(sources.cert_dir)
    try:
        return _build(sources, cert_dir, now, api)
    except Exception as exc:  # belt and braces: each source already turns errors into data
        error = ReadError(ReadProblem.IO_ERROR,
                          f"inventory failed unexpectedly ({type(exc).__name__})")
        certs = tuple(CertFile(role=role, path=os.path.join(cert_dir, current_name(role)),
                               read_error=error) for role in ROTATING_ROLES)
        config = KubeletConfigInfo(path=str(sources.kubelet_config or "") or None)
        return Snapshot(taken_at=now, node_name=sources.node_name, cert_dir=cert_dir,
                        kubelet_config=config, certs=certs, api=api)


def _build(sources: SourceSettings, cert_dir: str, now: datetime,
           api: ApiState | None) -> Snapshot:
    limit = sources.max_file_bytes
    config = read_kubelet_config(sources.kubelet_config, limit)
    anchor_paths = ([config.client_ca_file] if config.client_ca_file else []) + [
        str(p) for p in sources.ca_files]
    anchor_files, anchors = load_anchors(anchor_paths, limit)
    scan = scan_cert_dir(cert_dir, anchors, limit)
    certs = list(scan.certs)
    if config.tls_cert_file:
        certs.append(load_cert_file(Role.TLS_CERT_FILE, config.tls_cert_file, anchors, limit,
                                    key_path=config.tls_private_key_file))
    # --watch files are judged for expiry and readability only: verifying each against
    # the anchors would double the cost of a 10,000-file directory for a fact no check uses.
    certs.extend(load_watched(sources.watch_paths, (), limit))
    return Snapshot(taken_at=now, node_name=sources.node_name, cert_dir=cert_dir,
                    kubelet_config=config, certs=tuple(certs), anchors=anchor_files,
                    history=scan.history, updated_links=scan.updated_links, api=api)


def _carry(previous: CertFile | None, current: CertFile, now: datetime) -> CertFile:
    """Keep the last good certificate of a file that stopped being readable."""
    if current.leaf is not None or previous is None or previous.leaf is None:
        return current
    broken = current.read_error is not None or (
        current.link is not None and current.link.problem is not None)
    if not broken:
        return current
    return replace(current, chain=previous.chain, leaf=previous.leaf, trusted=previous.trusted,
                   self_signed=previous.self_signed, key_match=previous.key_match,
                   stale_since=previous.stale_since or now)


def _merge_files(previous: tuple[CertFile, ...], current: tuple[CertFile, ...],
                 now: datetime) -> tuple[CertFile, ...]:
    before = {(c.role, c.path): c for c in previous}
    return tuple(_carry(before.get((c.role, c.path)), c, now) for c in current)


def merge_stale(previous: Snapshot | None, current: Snapshot, now: datetime) -> Snapshot:
    """``current`` where each unreadable file keeps its previous leaf and chain.

    The carried file keeps its current ``read_error`` / link problem and gets
    ``stale_since``: the first instant it was found broken (kept across merges).
    """
    if previous is None:
        return current
    return replace(current, certs=_merge_files(previous.certs, current.certs, now),
                   anchors=_merge_files(previous.anchors, current.anchors, now))


def _link_target(c: CertFile) -> str | None:
    if c.link is None or c.link.target is None:
        return None
    return os.path.normpath(os.path.join(os.path.dirname(c.link.path), c.link.target))


def input_paths(snapshot: Snapshot, sources: SourceSettings) -> frozenset[str]:
    """Every file the snapshot depends on, including the expected ones that are missing."""
    root = snapshot.cert_dir
    paths = {os.path.join(root, name(role)) for role in ROTATING_ROLES
             for name in (current_name, updated_name)}
    paths.update(os.path.join(root, n) for n in SELF_SIGNED_FILES)
    paths.update(snapshot.updated_links)
    for c in snapshot.certs + snapshot.anchors:
        paths.update(p for p in (c.path, c.target, c.key_path, _link_target(c)) if p)
    paths.update(h.previous_path for h in snapshot.history if h.previous_path)
    if snapshot.kubelet_config.path:
        paths.add(snapshot.kubelet_config.path)
    paths.update(os.path.abspath(p) for p in sources.ca_files + sources.watch_paths)
    return frozenset(paths)


def _existing_dir(path: str) -> str:
    """``path`` if it is a directory, else its nearest existing ancestor."""
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def watch_plan(snapshot: Snapshot, sources: SourceSettings) -> tuple[
        frozenset[str], frozenset[str], tuple[str, ...]]:
    """(directories to watch, input paths, directories whose every entry matters).

    Computed together so the daemon walks the inputs and stats the ``--watch`` paths
    once per evaluation. Directories to watch: the parent of every input path (link
    targets outside the cert dir included), the cert dir and each ``--watch`` directory;
    one that does not exist yet is replaced by its nearest existing ancestor, so its
    creation is seen. Whole directories: the cert dir (new generations) and ``--watch``
    directories.
    """
    paths = input_paths(snapshot, sources)
    watched_dirs = {os.path.abspath(p) for p in sources.watch_paths if os.path.isdir(p)}
    wanted = {os.path.dirname(p) for p in paths - watched_dirs}
    wanted.add(snapshot.cert_dir)
    wanted.update(watched_dirs)
    dirs = frozenset(_existing_dir(d) for d in wanted)
    return dirs, paths, (snapshot.cert_dir, *sorted(watched_dirs))


def watch_dirs(snapshot: Snapshot, sources: SourceSettings) -> frozenset[str]:
    """The existing directories to watch so that a change to any input is seen."""
    return watch_plan(snapshot, sources)[0]
