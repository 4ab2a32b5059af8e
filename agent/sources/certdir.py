"""Scan the kubelet's ``--cert-dir``: current links, swap leftovers, history, fallback.

What is read, for a cert dir ``root`` (a parameter, so tests use real temp trees):

* ``kubelet-<role>-current.pem`` for client and server -> a CertFile with a LinkState.
  When the link problem leaves nothing to read (MISSING, DANGLING, LOOP, NOT_REGULAR)
  the CertFile has no ``read_error``: the link problem is the one explanation. A regular
  file (NOT_A_LINK) is still read, since the kubelet still uses it.
* ``kubelet-<role>-updated.pem``: the transient link of a swap in progress (steps 2-4 of
  the kubelet's swap), recorded as a path, not an error.
* ``kubelet-<role>-YYYY-MM-DD-HH-MM-SS.pem``: history. One ``os.scandir`` pass; count,
  bytes and oldest/newest come from the names and the directory entries; only the
  previous generation is opened (so 10,000 generations cost one stat each).
* ``kubelet.crt`` / ``kubelet.key``: the self-signed fallback, only when present.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509

from agent.faults import raise_if_agent_errno
from agent.kubelet import GENERATION, ROTATING_ROLES, current_name, updated_name
from agent.model import (
    CertFile,
    CertInfo,
    LinkProblem,
    LinkState,
    ReadError,
    ReadProblem,
    Role,
    RoleHistory,
)
from agent.sources.certfile import load_cert_file
from agent.sources.discovery.hostfs import resolve, to_host
from agent.sources.files import problem_for, read_file
from agent.sources.parse import parse_bundle

_ROLES = {role.value: role for role in ROTATING_ROLES}
_LINK_ERRNO = {errno.ELOOP: LinkProblem.LOOP, errno.ENOENT: LinkProblem.DANGLING,
               errno.ENOTDIR: LinkProblem.DANGLING}
_UNREADABLE_LINK = frozenset({LinkProblem.MISSING, LinkProblem.DANGLING, LinkProblem.LOOP,
                              LinkProblem.NOT_REGULAR})


@dataclass(frozen=True)
class CertDirScan:
    """Everything found in one cert dir."""

    certs: tuple[CertFile, ...]  # client, server, then kubelet.crt if present
    history: tuple[RoleHistory, ...]
    updated_links: tuple[str, ...]
    dir_error: ReadError | None = None  # the directory itself is absent or unreadable


@dataclass(frozen=True)
class LinkLookup:
    """A link entry and, when it leads to something, the stat of what it leads to."""

    link: LinkState
    target_stat: os.stat_result | None = None
    error: ReadError | None = None  # e.g. permission denied on the directory


def inspect_link(path: str, host_root: str = "/") -> LinkLookup:
    """Classify a ``-current.pem`` entry without opening anything. Never raises."""
    try:
        lst = os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return LinkLookup(LinkState(path, False, problem=LinkProblem.MISSING))
        return LinkLookup(LinkState(path, False), error=problem_for(exc, path))
    if stat.S_ISREG(lst.st_mode):
        return LinkLookup(LinkState(path, False, resolved=path, problem=LinkProblem.NOT_A_LINK),
                          lst)
    if not stat.S_ISLNK(lst.st_mode):
        return LinkLookup(LinkState(path, False, problem=LinkProblem.NOT_REGULAR))
    return _follow(path, host_root)


def _follow(path: str, host_root: str = "/") -> LinkLookup:
    """Where a symlink leads: DANGLING, LOOP, NOT_REGULAR or a regular file."""
    try:
        target = os.readlink(path)
    except OSError as exc:  # replaced between lstat and readlink
        return LinkLookup(LinkState(path, True), error=problem_for(exc, path))
    try:
        # the kubelet writes absolute host paths: under --host-root they resolve there
        final = path if host_root in ("", "/") else resolve(host_root, to_host(host_root, path))
        st = os.stat(final)
    except OSError as exc:
        problem = _LINK_ERRNO.get(exc.errno or 0)
        if problem is None:  # e.g. EACCES on a directory along the way
            return LinkLookup(LinkState(path, True, target), error=problem_for(exc, path))
        return LinkLookup(LinkState(path, True, target, problem=problem))
    resolved = os.path.realpath(final)
    problem = None if stat.S_ISREG(st.st_mode) else LinkProblem.NOT_REGULAR
    return LinkLookup(LinkState(path, True, target, resolved, problem), st)


def load_current(root: str, role: Role, anchors: Sequence[x509.Certificate],
                 max_bytes: int, host_root: str = "/") -> CertFile:
    """The ``kubelet-<role>-current.pem`` entry as a CertFile. Never raises."""
    path = os.path.join(root, current_name(role))
    lookup = inspect_link(path, host_root)
    link = lookup.link
    if lookup.error is not None:
        return CertFile(role=role, path=path, link=link, read_error=lookup.error)
    if link.problem is LinkProblem.MISSING:
        # An interrupted swap: the kubelet's store renames -updated.pem to -current.pem at
        # its next start (client-go certificate_store recover()), so the generation
        # -updated.pem links to is the live certificate. The CertFile keeps the
        # -current.pem path and carries the -updated.pem link.
        updated = inspect_link(os.path.join(root, updated_name(role)), host_root)
        if updated.error is None and updated.link.is_symlink and updated.link.problem is None:
            return load_cert_file(role, path, anchors, max_bytes, read_path=updated.link.resolved,
                                  link=updated.link, pre_stat=updated.target_stat)
    if link.problem in _UNREADABLE_LINK:
        return CertFile(role=role, path=path, target=link.resolved, link=link)
    return load_cert_file(role, path, anchors, max_bytes, read_path=link.resolved, link=link,
                          pre_stat=lookup.target_stat)


@dataclass
class _Generations:
    """Running totals for one role's history, from names only."""

    count: int = 0
    total_bytes: int = 0
    names: list[str] = field(default_factory=list)  # at most the two newest, newest first
    oldest: str | None = None

    def add(self, name: str, size: int) -> None:
        self.count += 1
        self.total_bytes += size
        if self.oldest is None or name < self.oldest:
            self.oldest = name
        if len(self.names) < 2 or name > self.names[1]:  # keep only the two newest
            self.names = sorted([*self.names, name], reverse=True)[:2]


def _timestamp(name: str | None) -> str | None:
    m = GENERATION.match(name) if name else None
    return m.group(2) if m else None


# Generation sizes by (path, inode): the kubelet writes each generation once under a new
# name and never rewrites it, so a rebuild lstat()s only the generations it has not seen
# (the inode comes free with the directory listing and catches a replaced file).
_SIZES: dict[tuple[str, int], int] = {}
_SIZES_LIMIT = 1 << 16


def _entry_size(entry: os.DirEntry[str]) -> int | None:
    """``lstat`` size of a history entry, None if it vanished."""
    try:
        key = (entry.path, entry.inode())
        size = _SIZES.get(key)
        if size is None:
            size = entry.stat(follow_symlinks=False).st_size
            if len(_SIZES) >= _SIZES_LIMIT:
                _SIZES.clear()  # bounded: a full cache simply starts over
            _SIZES[key] = size
    except OSError as exc:
        raise_if_agent_errno(exc, "sources")
        return None  # deleted while we scanned
    return size


def clear_cache() -> None:
    """Forget every known generation size (benchmarks measure cold builds)."""
    _SIZES.clear()


def _dir_error(root: str, exc: OSError) -> ReadError:
    if isinstance(exc, FileNotFoundError):
        return ReadError(ReadProblem.NOT_FOUND, f"the cert dir {root} does not exist")
    if isinstance(exc, NotADirectoryError):
        return ReadError(ReadProblem.NOT_REGULAR, f"the cert dir {root} is not a directory")
    if isinstance(exc, PermissionError):
        return ReadError(ReadProblem.PERMISSION_DENIED,
                         f"the cert dir {root} cannot be listed (permission denied)")
    return ReadError(ReadProblem.IO_ERROR, f"the cert dir {root} cannot be listed "
                                           f"({exc.strerror or type(exc).__name__})")


def scan_entries(root: str) -> tuple[dict[Role, _Generations], list[str], ReadError | None]:
    """One pass over the directory: history per role, ``-updated.pem`` links, and why
    the directory itself could not be listed (None: it could)."""
    gens = {role: _Generations() for role in ROTATING_ROLES}
    updated = {updated_name(role) for role in ROTATING_ROLES}
    links: list[str] = []
    try:
        with os.scandir(root) as it:
            for entry in it:
                name = entry.name
                if name in updated:
                    links.append(entry.path)
                    continue
                m = GENERATION.match(name)
                if m is None:
                    continue
                size = _entry_size(entry)
                if size is not None:
                    gens[_ROLES[m.group(1)]].add(name, size)
    except OSError as exc:  # the links show up MISSING too: say why, once, for the dir
        raise_if_agent_errno(exc, "sources")
        return gens, sorted(links), _dir_error(root, exc)
    return gens, sorted(links), None


def _previous(root: str, role: Role, gens: _Generations, current: CertFile,
              max_bytes: int) -> RoleHistory:
    """Totals plus the newest generation that is not the current target, parsed."""
    current_target = current.target or ""
    in_root = os.path.dirname(current_target) == os.path.realpath(root)
    names = [n for n in gens.names
             if not (in_root and n == os.path.basename(current_target))]
    prev_path = os.path.join(root, names[0]) if names else None
    prev_leaf: CertInfo | None = None
    if prev_path is not None:
        read = read_file(prev_path, max_bytes)
        if read.data is not None:
            prev_leaf = parse_bundle(read.data).leaf
    return RoleHistory(role=role, count=gens.count, total_bytes=gens.total_bytes,
                       oldest=_timestamp(gens.oldest),
                       newest=_timestamp(gens.names[0] if gens.names else None),
                       previous_path=prev_path, previous=prev_leaf)


def scan_cert_dir(root: str, anchors: Sequence[x509.Certificate], max_bytes: int,
                  host_root: str = "/") -> CertDirScan:
    """Scan ``root`` (absolute) as described in the module docstring. Never raises."""
    certs = [load_current(root, role, anchors, max_bytes, host_root) for role in ROTATING_ROLES]
    gens, updated, dir_error = scan_entries(root)
    history = tuple(_previous(root, c.role, gens[c.role], c, max_bytes) for c in certs)
    crt = os.path.join(root, "kubelet.crt")
    if os.path.lexists(crt):
        certs.append(load_cert_file(Role.SELF_SIGNED, crt, anchors, max_bytes,
                                    key_path=os.path.join(root, "kubelet.key")))
    return CertDirScan(certs=tuple(certs), history=history, updated_links=tuple(updated),
                       dir_error=dir_error)
