"""The running kubelet, read from ``<host-root>/proc``.

A process is the kubelet when its ``comm`` is ``kubelet``. The scan reads
``/proc/<pid>/comm`` of every process (16 bytes, the cheapest file the kernel renders:
``stat`` costs several times more) with one ``read`` each; only a match's ``stat`` is read,
for its start time. When several kubelets run (a wrapper that
forks, a leftover of a restart) the oldest is the one holding the port; the others are
listed. Processes vanish at any moment: a ``/proc/<pid>`` that disappears mid-read is
skipped, never an error.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_CMDLINE = 1 << 18  # the kernel caps argv well below this in practice
KUBELET_COMM = "kubelet"


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    start_ticks: int  # clock ticks after boot (field 22 of stat)


@dataclass(frozen=True)
class KubeletProcessScan:
    found: tuple[ProcessInfo, ...]  # oldest first
    argv: tuple[str, ...] | None  # the oldest one's; None: unreadable or vanished
    started_at: datetime | None
    problem: str | None = None


_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
_COMM = (KUBELET_COMM + "\n").encode()


def _read_once(path: str, size: int) -> bytes | None:
    """One read of a tiny /proc file (comm, stat): the kernel renders it whole."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_small(path: str, limit: int) -> bytes | None:
    """Read a /proc file (st_size is 0 there, so the safe file reader does not apply)."""
    try:
        fd = os.open(path, _FLAGS)
    except OSError:
        return None
    try:
        chunks, total = [], 0
        while total < limit:
            chunk = os.read(fd, min(65536, limit - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)
    except OSError:  # ESRCH: the process exited while we read
        return None
    finally:
        os.close(fd)


def parse_stat(data: bytes) -> tuple[str, int] | None:
    """(comm, start ticks) from a ``/proc/<pid>/stat`` line; None when malformed."""
    open_, close = data.find(b"("), data.rfind(b")")
    if open_ < 0 or close < open_:
        return None
    fields = data[close + 2:].split()
    if len(fields) < 20:
        return None
    try:
        return data[open_ + 1:close].decode(errors="replace"), int(fields[19])
    except ValueError:
        return None


def kubelets(proc: str, pids: Collection[int] | None = None) -> list[ProcessInfo]:
    """Every process under ``proc`` whose comm is ``kubelet``, oldest first (only among
    ``pids`` when given)."""
    found: list[ProcessInfo] = []
    try:
        entries = os.scandir(proc)
    except OSError:
        return found
    with entries:
        for entry in entries:
            if not entry.name.isdigit() or (pids is not None and int(entry.name) not in pids):
                continue
            if _read_once(f"{entry.path}/comm", 64) != _COMM:
                continue
            data = _read_once(f"{entry.path}/stat", 4096)
            parsed = parse_stat(data) if data else None
            if parsed is not None and parsed[0] == KUBELET_COMM:
                found.append(ProcessInfo(int(entry.name), parsed[1]))
    return sorted(found, key=lambda p: (p.start_ticks, p.pid))


def boot_time(proc: str) -> float | None:
    data = _read_small(f"{proc}/stat", 1 << 16)
    for line in (data or b"").splitlines():
        if line.startswith(b"btime "):
            try:
                return float(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None


def started_at(proc: str, info: ProcessInfo) -> datetime | None:
    btime = boot_time(proc)
    if btime is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return datetime.fromtimestamp(btime + info.start_ticks / ticks, UTC)


def read_cmdline(proc: str, pid: int) -> tuple[tuple[str, ...] | None, str | None]:
    """argv of ``pid``, or None with why (vanished, empty, NULs only)."""
    data = _read_small(f"{proc}/{pid}/cmdline", MAX_CMDLINE)
    if data is None:
        return None, f"kubelet pid {pid} exited while it was read"
    words = [w.decode("utf-8", errors="surrogateescape") for w in data.split(b"\0")]
    while words and not words[-1]:
        words.pop()
    if not words or not any(words):
        return None, f"kubelet pid {pid} has an empty command line (a zombie or exiting)"
    return tuple(words), None


def scan(proc: str, pids: Collection[int] | None = None) -> KubeletProcessScan:
    """The kubelets under ``proc`` and the oldest one's command line. Never raises."""
    found = tuple(kubelets(proc, pids))
    if not found:
        return KubeletProcessScan(found=(), argv=None, started_at=None)
    oldest = found[0]
    argv, problem = read_cmdline(proc, oldest.pid)
    return KubeletProcessScan(found=found, argv=argv, started_at=started_at(proc, oldest),
                              problem=problem)


def alive(proc: str, info: ProcessInfo) -> bool:
    """The same process (pid and start time) still runs: one read, for the daemon."""
    data = _read_once(f"{proc}/{info.pid}/stat", 4096)
    parsed = parse_stat(data) if data else None
    return parsed is not None and parsed == (KUBELET_COMM, info.start_ticks)
