"""``--watch`` and ``--watch-recursive`` paths -> CertFiles.

A named file is always reported; in a directory, certificate-like names are reported
even when broken, other regular files only when they parse as a certificate or are a
kubeconfig. Keys, kubelet history generations and non-regular entries are never opened.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509

from agent.faults import raise_if_agent_errno
from agent.kubelet import GENERATION
from agent.model import CertFile, ReadProblem, Role
from agent.sources.certfile import CERT_SUFFIXES, KEY_SUFFIX, load_parsed
from agent.sources.files import problem_for, read_file
from agent.sources.kubeconfigcert import load_kubeconfig_files

MAX_WALK_DIRS = 4096  # --watch-recursive: a bound, so a mistaken `/` cannot stall a build
KUBECONFIG_MARKERS = (b"current-context", b"kind: Config", b'"kind": "Config"')


def walk_dirs(root: str) -> list[str]:
    """``root`` and every directory below it (symlinks not followed), sorted, bounded."""
    found: list[str] = []
    for dirpath, dirnames, _files in os.walk(root, followlinks=False):
        dirnames.sort()
        found.append(dirpath)
        if len(found) >= MAX_WALK_DIRS:
            break
    return sorted(found)


def load_watched(paths: Iterable[Path], anchors: Sequence[x509.Certificate],
                 max_bytes: int, *, recursive: Iterable[Path] = ()) -> tuple[CertFile, ...]:
    """Every ``--watch`` file, and the certificates in every ``--watch`` directory.

    A directory is read non-recursively (``recursive`` ones with every directory below):
    every regular file named ``*.crt``, ``*.pem``, ``*.cer`` or ``*.der`` (reported even
    when broken), any other regular file that parses as a certificate, and every
    kubeconfig (its current user's client certificate, role ``kubeconfig``). ``*.key``
    files, kubelet history generations (expired history is normal: a cert dir under
    ``--watch`` must not alarm on it) and non-regular entries are never opened. Sorted
    by path, one entry per path.
    """
    found: dict[str, CertFile] = {}
    given = [(os.path.abspath(p), False) for p in paths]
    given += [(os.path.abspath(p), True) for p in recursive]
    for path, deep in given:
        try:
            st = os.stat(path)
        except OSError as exc:
            found[path] = CertFile(role=Role.WATCHED, path=path, read_error=problem_for(exc, path))
            continue
        if stat.S_ISDIR(st.st_mode):
            for directory in walk_dirs(path) if deep else [path]:
                found.update((c.path, c) for c in _scan_dir(directory, anchors, max_bytes))
        else:
            found.update((c.path, c) for c in _load_watched_file(path, anchors, max_bytes, st,
                                                                 named=True))
    return tuple(found[p] for p in sorted(found))


def _looks_like_kubeconfig(path: str, max_bytes: int) -> bool:
    read = read_file(path, max_bytes)
    return read.data is not None and any(m in read.data for m in KUBECONFIG_MARKERS)


def _load_watched_file(path: str, anchors: Sequence[x509.Certificate], max_bytes: int,
                       st: os.stat_result, *, named: bool) -> list[CertFile]:
    """A certificate file, or a kubeconfig's client certificate and CA. ``named``: the
    operator gave this file, so a broken one is reported (in a directory only
    certificate-like names are)."""
    cert_file, parsed = load_parsed(Role.WATCHED, path, anchors, max_bytes, pre_stat=st)
    if parsed is not None and parsed.error is not None and (
            parsed.error.problem is ReadProblem.GARBAGE and _looks_like_kubeconfig(
                path, max_bytes)):
        return load_kubeconfig_files(path, max_bytes)
    if named or os.path.basename(path).lower().endswith(CERT_SUFFIXES) or (
            parsed is not None and parsed.error is None):
        return [cert_file]
    return []


def _scan_dir(directory: str, anchors: Sequence[x509.Certificate],
              max_bytes: int) -> list[CertFile]:
    try:
        with os.scandir(directory) as it:
            entries = [e for e in it if not e.name.endswith(KEY_SUFFIX)
                       and GENERATION.match(e.name) is None]
    except OSError as exc:
        return [CertFile(role=Role.WATCHED, path=directory,
                         read_error=problem_for(exc, directory))]
    out: list[CertFile] = []
    for entry in entries:
        try:
            if not entry.is_file():  # FIFOs, devices, sockets, sub-directories: never opened
                continue
            st = entry.stat()
        except OSError as exc:
            raise_if_agent_errno(exc, "sources")  # EMFILE is ours, not a vanished file
            continue  # vanished or a dangling link: not a certificate we can watch
        out.extend(_load_watched_file(entry.path, anchors, max_bytes, st, named=False))
    return out
