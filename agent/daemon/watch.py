"""Filesystem watching: wake the daemon when an input file really changes.

Watches DIRECTORIES (inotify cannot follow a symlink: a change to a link target that
lives outside the watched directory produces no event), non-recursively, and keeps
only events about the agent's inputs or entries of the cert dir. The kernel mask
leaves out IN_OPEN / IN_ACCESS / IN_CLOSE_NOWRITE, and such events are dropped again
here, so the agent's own reads never wake it.

Inotify limits (ENOSPC: too many watches, EMFILE: too many instances) make the watcher
fall back to polling with a warning event instead of failing. When the kernel queue
overflows (IN_Q_OVERFLOW) events were lost, so the next drain asks for a full rescan.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable, Iterable

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from agent.model import Event, event

ObserverFactory = Callable[[], BaseObserver]
FALLBACK_POLL_SECONDS = 5.0
# Events that can mean new content, a new name or new permissions; nothing read-only.
WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent, FileDeletedEvent, FileModifiedEvent, FileAttribEvent, FileMovedEvent,
    FileClosedEvent, DirCreatedEvent, DirDeletedEvent, DirMovedEvent,
]
_READ_ONLY = (FileOpenedEvent, FileClosedNoWriteEvent)
_LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE, errno.ENFILE})
_OVERFLOW_LOGGER = "watchdog.observers.inotify_c"


def inotify_observer() -> BaseObserver:
    from watchdog.observers.inotify import InotifyObserver
    return InotifyObserver()


def _identity(directory: str) -> tuple[int, int] | None:
    """(device, inode) of ``directory``, None if it is gone."""
    try:
        st = os.stat(directory)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _parents(path: str) -> list[str]:
    """Every ancestor directory of ``path`` (absolute), nearest first, without ``/``."""
    out = []
    parent = os.path.dirname(path)
    while parent and parent != os.path.dirname(parent):
        out.append(parent)
        parent = os.path.dirname(parent)
    return out


def _aliases(path: str) -> set[str]:
    """``path`` and the same name under its directory's real path (dirs reached by links)."""
    real_dir = os.path.realpath(os.path.dirname(path))
    return {path, os.path.join(real_dir, os.path.basename(path))}


class _OverflowSignal(logging.Handler):
    """watchdog reports a lost inotify queue only by logging it: turn that into a call."""

    def __init__(self, callback: Callable[[], None]) -> None:
        super().__init__(logging.WARNING)
        self._callback = callback

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self._callback()


class Watcher:
    """Calls ``on_change()`` (from an observer thread) when a relevant path changes.

    ``update()`` (re)schedules the directory set; ``drain()`` hands the changed paths
    to the daemon loop, which coalesces bursts. Only the daemon's thread calls them.
    """

    def __init__(self, on_change: Callable[[], None], *, poll: float | None = None,
                 observer_factory: ObserverFactory | None = None,
                 on_event: Callable[[Event], None] | None = None,
                 fallback_poll: float = FALLBACK_POLL_SECONDS) -> None:
        self._on_change = on_change
        self._fallback_poll = fallback_poll
        self._on_event = on_event or (lambda _e: None)
        self._poll = poll
        self._factory = observer_factory or inotify_observer
        self._lock = threading.Lock()
        self._changed: set[str] = set()
        self._overflowed = False
        self._count = 0
        self._paths: frozenset[str] = frozenset()
        self._whole_dirs: frozenset[str] = frozenset()
        self._ancestors: frozenset[str] = frozenset()  # directories on the way to an input
        self._ignored_dirs: frozenset[str] = frozenset()
        self._watches: dict[str, ObservedWatch] = {}
        self._inodes: dict[str, tuple[int, int] | None] = {}
        self._failed: set[str] = set()
        self._handler = _Handler(self)
        self._overflow = _OverflowSignal(self._overflow_seen)
        self._observer: BaseObserver | None = None
        self.mode = "polling" if poll else "inotify"

    def start(self) -> None:
        """Start the observer; inotify exhaustion falls back to polling."""
        logging.getLogger(_OVERFLOW_LOGGER).addHandler(self._overflow)
        if self.mode == "polling":
            self._observer = self._start(self._polling_observer)
            return
        try:
            self._observer = self._start(self._factory)
        except OSError as exc:
            self._fall_back(exc)

    def stop(self, timeout: float = 0.5) -> None:
        """Stop watching; waits at most ``timeout`` for the observer thread."""
        logging.getLogger(_OVERFLOW_LOGGER).removeHandler(self._overflow)
        observer, self._observer = self._observer, None
        self._watches.clear()
        self._inodes.clear()
        if observer is not None:
            observer.stop()
            observer.join(timeout)

    def update(self, dirs: Iterable[str], paths: Iterable[str],
               whole_dirs: Iterable[str] = (), ignored_dirs: Iterable[str] = ()) -> bool:
        """Watch exactly ``dirs``; count events on ``paths`` or any entry of ``whole_dirs``.

        The creation, removal or renaming of a directory on the way to one of ``paths``
        counts too: when the cert dir does not exist yet, ``dirs`` holds its nearest
        existing ancestor and its creation must wake the daemon. Returns True when a
        directory was added to the watch set.
        """
        self._paths = frozenset(a for p in paths for a in _aliases(p))
        self._whole_dirs = frozenset(a for d in whole_dirs for a in (d, os.path.realpath(d)))
        self._ignored_dirs = frozenset(a for d in ignored_dirs for a in (d, os.path.realpath(d)))
        self._ancestors = frozenset(a for p in self._paths for a in _parents(p))
        mode = self.mode
        return bool(self._schedule(set(dirs))) or mode != self.mode

    def drain(self) -> tuple[frozenset[str], bool, int]:
        """The changed paths since the last drain, whether a rescan is needed, event count."""
        with self._lock:
            changed, overflowed, count = frozenset(self._changed), self._overflowed, self._count
            self._changed.clear()
            self._overflowed, self._count = False, 0
        return changed, overflowed, count

    @property
    def watched(self) -> frozenset[str]:
        return frozenset(self._watches)

    def _polling_observer(self) -> BaseObserver:
        return PollingObserver(timeout=self._poll or FALLBACK_POLL_SECONDS)

    def _start(self, factory: ObserverFactory) -> BaseObserver:
        observer = factory()
        observer.daemon = True
        observer.start()
        return observer

    def _schedule(self, dirs: set[str]) -> set[str]:
        """Watch exactly ``dirs``; returns the directories (re)scheduled now.

        A directory that was deleted and re-created is a new inode the old watch does not
        see: it is scheduled again.
        """
        replaced = {d for d in set(self._watches) & dirs if _identity(d) != self._inodes.get(d)}
        for gone in (set(self._watches) - dirs) | replaced:
            watch = self._watches.pop(gone)
            self._inodes.pop(gone, None)
            if self._observer is not None:
                with contextlib.suppress(KeyError, OSError):  # its emitter may have stopped
                    self._observer.unschedule(watch)
        added: set[str] = set()
        for new in sorted(dirs - set(self._watches)):
            if self._observer is None:
                break
            try:
                self._watches[new] = self._observer.schedule(
                    self._handler, new, recursive=False, event_filter=WATCHED_EVENTS)
                self._inodes[new] = _identity(new)
                self._failed.discard(new)
                added.add(new)
            except OSError as exc:
                if self.mode == "inotify" and exc.errno in _LIMIT_ERRNOS:
                    self._fall_back(exc)
                    return self._schedule(dirs)
                if new not in self._failed:  # retried at each update, reported once
                    self._failed.add(new)
                    self._on_event(event("watch_failed", "warning", path=new,
                                         error=errno.errorcode.get(exc.errno or 0, "unknown")))
        return added

    def _fall_back(self, exc: OSError) -> None:
        """Replace the inotify observer by a polling one and reschedule everything."""
        old, self._observer = self._observer, None
        if old is not None:
            old.stop()
            old.join(0.5)
        self._watches.clear()
        self._inodes.clear()
        self.mode = "polling"
        self._poll = self._poll or self._fallback_poll
        self._on_event(event("watch_fallback", "warning", mode="polling",
                             poll_seconds=self._poll,
                             reason=errno.errorcode.get(exc.errno or 0, "unknown"),
                             hint="raise fs.inotify.max_user_watches / max_user_instances"))
        self._observer = self._start(self._polling_observer)

    def _overflow_seen(self) -> None:
        with self._lock:
            self._overflowed = True
        self._on_change()

    def relevant(self, path: str) -> bool:
        """Whether a change at ``path`` can change a verdict."""
        if os.path.dirname(path) in self._ignored_dirs:
            return False
        if path in self._paths or os.path.dirname(path) in self._whole_dirs:
            return True
        return path in self._ancestors

    def _seen(self, ev: FileSystemEvent) -> None:
        if isinstance(ev, _READ_ONLY):
            return
        paths = [os.fsdecode(p) for p in (ev.src_path, ev.dest_path) if p]
        hits = [p for p in paths if self.relevant(p)]
        if not hits:
            return
        with self._lock:
            self._changed.update(hits)
            self._count += 1
        self._on_change()


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        self._watcher._seen(event)
