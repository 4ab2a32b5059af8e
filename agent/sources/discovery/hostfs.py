"""Host paths read under ``--host-root``.

The kubelet writes host paths (``/var/lib/kubelet/pki/kubelet-client-….pem``, units
that link to ``/lib/systemd/system/…``). A container that mounts the host at ``/host``
must follow them under ``/host``: :func:`resolve` walks a host path component by
component and re-roots every absolute symlink target, never escaping the root.
"""

from __future__ import annotations

import os
from collections import deque

from agent.config import MAX_FILE_BYTES
from agent.model import ReadError
from agent.sources.files import read_file

MAX_HOPS = 40  # the kernel's own symlink limit


def under(root: str, host_path: str) -> str:
    """Where ``host_path`` is on this machine: ``root`` joined with it (no link following)."""
    if root in ("", "/"):
        return host_path
    return os.path.join(root, host_path.lstrip("/"))


def to_host(root: str, local: str) -> str:
    """The host path of a path under ``root`` (the inverse of :func:`under`)."""
    if root in ("", "/"):
        return local
    rel = os.path.relpath(local, root)
    return "/" if rel == "." else "/" + rel if not rel.startswith("..") else local


def resolve(root: str, host_path: str) -> str:
    """The local path ``host_path`` leads to, symlinks followed with ``root`` as ``/``.

    Never raises: a missing component ends link following (the caller's read reports
    it), and more than :data:`MAX_HOPS` links leave the looping path as it is.
    """
    if root in ("", "/"):
        return host_path
    root = os.path.abspath(root)
    parts = deque(p for p in host_path.split("/") if p)
    current, hops = root, 0
    while parts:
        part = parts.popleft()
        if part == ".":
            continue
        if part == "..":
            current = current if current == root else os.path.dirname(current)
            continue
        candidate = os.path.join(current, part)
        try:
            target = os.readlink(candidate)
        except OSError:  # not a link, or missing: keep walking literally
            current = candidate
            continue
        hops += 1
        if hops > MAX_HOPS:
            return os.path.join(candidate, *parts)
        if target.startswith("/"):
            current = root
        parts.extendleft(reversed([p for p in target.split("/") if p]))
    return current


def read_host(root: str, host_path: str,
              max_bytes: int = MAX_FILE_BYTES) -> tuple[bytes | None, ReadError | None]:
    """Read a host file safely (bounded, never blocks on a FIFO); errors name the host path."""
    local = resolve(root, host_path)
    read = read_file(local, max_bytes)
    if read.error is not None:
        detail = read.error.detail.replace(local, host_path)
        return None, ReadError(read.error.problem, detail)
    return read.data, None
