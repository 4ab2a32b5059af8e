"""Read one input file safely: bounded, non-blocking, consistent, errors as data.

* ``stat`` first: a FIFO, device, socket or directory is never opened (opening a FIFO
  blocks, opening some devices has side effects).
* ``open`` with ``O_NONBLOCK`` (a file swapped for a FIFO after the stat cannot block us)
  and ``fstat`` the descriptor: it must still be a regular file.
* read at most ``max_bytes``; a larger file is TOO_LARGE and nothing past the limit is read.
* ``fstat`` before and after the read: if inode, size or mtime moved, read once more,
  then give up with CHANGED_DURING_READ.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from agent.faults import raise_if_agent_errno
from agent.model import ReadError, ReadProblem

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CHUNK = 1 << 16


@dataclass(frozen=True)
class FileRead:
    """The bytes of a file, or why there are none."""

    data: bytes | None
    size: int | None = None
    error: ReadError | None = None


def kind(mode: int) -> str:
    """A file type in words, for messages."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "not a regular file"


def problem_for(exc: OSError, path: str) -> ReadError:
    """Map an OSError to a specific ReadError (the path, never contents).

    Raises :class:`~agent.faults.AgentFault` for EMFILE, ENFILE, ENOMEM: out of file
    descriptors or memory says nothing about the file, it must not become a finding.
    """
    raise_if_agent_errno(exc, "sources")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return ReadError(ReadProblem.NOT_FOUND, f"{path} does not exist")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ReadError(ReadProblem.PERMISSION_DENIED, f"{path}: permission denied")
    if exc.errno == errno.ELOOP:
        return ReadError(ReadProblem.NOT_FOUND, f"{path}: too many levels of symbolic links")
    reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
    return ReadError(ReadProblem.IO_ERROR, f"{path}: {reason}")


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_file(path: str, max_bytes: int, *, pre_stat: os.stat_result | None = None,
              during_read: Callable[[], None] | None = None) -> FileRead:
    """Read ``path`` under the rules above. Never raises.

    ``pre_stat`` reuses a stat the caller already has (``os.scandir``).
    ``during_read`` is a test seam called, on each attempt, between the read and the
    second ``fstat``.
    """
    try:
        st = pre_stat or os.stat(path)
    except OSError as exc:
        return FileRead(None, error=problem_for(exc, path))
    if not stat.S_ISREG(st.st_mode):
        return FileRead(None, error=ReadError(ReadProblem.NOT_REGULAR,
                                              f"{path} is {kind(st.st_mode)}, not a file"))
    if st.st_size > max_bytes:
        return _too_large(path, st.st_size, max_bytes)
    for _attempt in (1, 2):
        try:
            result = _read_once(path, _OPEN_FLAGS, max_bytes, during_read)
        except OSError as exc:
            return FileRead(None, error=problem_for(exc, path))
        if result is not None:
            return result
    return FileRead(None, error=ReadError(ReadProblem.CHANGED_DURING_READ,
                                          f"{path} changed while it was read, twice"))


def _too_large(path: str, size: int, max_bytes: int) -> FileRead:
    return FileRead(None, size=size, error=ReadError(
        ReadProblem.TOO_LARGE, f"{path} is larger than {max_bytes} bytes; not read"))


def _read_once(path: str, flags: int, max_bytes: int,
               during_read: Callable[[], None] | None) -> FileRead | None:
    """One consistent read, or None if the file changed under us."""
    fd = os.open(path, flags)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            return FileRead(None, error=ReadError(ReadProblem.NOT_REGULAR,
                                                  f"{path} is {kind(before.st_mode)}, not a file"))
        if before.st_size > max_bytes:
            return _too_large(path, before.st_size, max_bytes)
        chunks: list[bytes] = []
        total = 0
        want = min(max(_CHUNK, before.st_size + 1), max_bytes + 1)
        while total <= max_bytes:
            chunk = os.read(fd, min(want, max_bytes + 1 - total))
            chunks.append(chunk)
            total += len(chunk)
            if len(chunk) < want:  # a short read of a regular file is its end: no extra read
                break
        if total > max_bytes:
            return _too_large(path, total, max_bytes)
        if during_read is not None:
            during_read()
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if _identity(before) != _identity(after) or total != after.st_size:
        return None
    return FileRead(b"".join(chunks), size=total)
