"""The daemon's plumbing: wake-ups, systemd notifications, the API thread, the flags.

Kept apart from :mod:`agent.daemon.loop` so the loop reads as the policy it implements.
Only the daemon uses these: they are the one place that starts the API thread and
talks to systemd.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import shlex
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, Protocol

from agent.clock import Clock
from agent.config import (
    ApiSettings,
    KubeletAccess,
    Settings,
    add_api_arguments,
    add_daemon_arguments,
    add_policy_arguments,
    add_source_arguments,
    settings_from_args,
)
from agent.model import ApiState

FLAGS_VARIABLE = "KUBELET_CERT_AGENT_ARGS"
MOUNTINFO = "/proc/self/mountinfo"


class Waker:
    """A self-pipe: any thread (or a signal, via ``signal.set_wakeup_fd``) wakes the loop.

    Writing one byte takes no lock, so it is safe from a signal handler, unlike
    ``threading.Event.set()``.
    """

    def __init__(self, mountinfo: str | None = MOUNTINFO) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        # The mount table is pollable (proc(5)): a mount or unmount marks the descriptor
        # exceptional. A bind mount over the cert dir sends no inotify event, so this is
        # how the loop learns that the watched directory is no longer the one in use.
        self._mounts: int | None = None
        if mountinfo is not None:
            with contextlib.suppress(OSError):
                self._mounts = os.open(mountinfo, os.O_RDONLY | os.O_CLOEXEC)
        self._mounts_changed = False

    @property
    def write_fd(self) -> int:
        return self._w

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # full pipe: already awake
            os.write(self._w, b"\0")

    def wait(self, timeout: float | None) -> bool:
        """Block up to ``timeout`` seconds (None: forever); True if woken. Drains the pipe."""
        mounts = [self._mounts] if self._mounts is not None else []
        ready, _, exceptional = select.select([self._r], [], mounts, timeout)
        if exceptional:
            self._mounts_changed = True
        if not ready:
            return bool(exceptional)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._r, 4096):
                pass
        return True

    def take_mounts_changed(self) -> bool:
        """True once after the mount table changed (then the snapshot is re-taken)."""
        changed, self._mounts_changed = self._mounts_changed, False
        return changed

    def close(self) -> None:
        for fd in (self._r, self._w, self._mounts):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


class Notifier:
    """sd_notify(3) messages, only when systemd gave us ``$NOTIFY_SOCKET``."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        self._notifier = None
        if env.get("NOTIFY_SOCKET"):
            import sdnotify

            self._notifier = sdnotify.SystemdNotifier()
        self.watchdog_interval = watchdog_interval(env)

    def send(self, *lines: str) -> None:
        if self._notifier is not None:
            self._notifier.notify("\n".join(lines))


def watchdog_interval(environ: dict[str, str]) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds, when it is meant for this process."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


class Monitor(Protocol):
    def run(self, stop: threading.Event) -> None: ...

    def credentials_changed(self) -> None: ...


MonitorFactory = Callable[[ApiSettings, str, Clock, Callable[[ApiState], None],
                           KubeletAccess], Monitor]


def default_monitor_factory(api: ApiSettings, node: str, clock: Clock,
                            on_update: Callable[[ApiState], None],
                            kubelet: KubeletAccess) -> Monitor:
    from agent.sources.apiserver import CsrMonitor
    from agent.sources.lifeline import Lifeline

    lifeline = Lifeline(api, node, clock, kubelet.bootstrap_kubeconfig)
    monitor: Monitor = CsrMonitor(api, node, clock, on_update, lifeline=lifeline)
    return monitor


API_RESTART_FIRST, API_RESTART_MAX = 1.0, 300.0  # back-off between restarts of a dead monitor

CrashHandler = Callable[[BaseException, float], None]  # (exception, seconds until restart)


class ApiThread:
    """Runs a CSR monitor's blocking ``run(stop)`` in a daemon thread, restarting it.

    The monitor should never raise; when it does (a bug), ``on_crash`` is told (the
    daemon counts, logs and alerts) and ``run`` is called again after a back-off that
    doubles from ``API_RESTART_FIRST`` to ``API_RESTART_MAX`` seconds. A run that lasted
    longer than the current back-off resets it.
    """

    def __init__(self, monitor: Monitor, on_crash: CrashHandler | None = None, *,
                 first_backoff: float = API_RESTART_FIRST) -> None:
        self.monitor = monitor
        self._on_crash = on_crash
        self._first_backoff = first_backoff
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="csr-monitor", daemon=True)
        self.crashed: str | None = None  # the last crash's exception type
        self.crashes = 0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        backoff = self._first_backoff
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.monitor.run(self._stop)
                return
            except Exception as exc:  # a bug in the monitor must not end API checks for good
                self.crashed, self.crashes = type(exc).__name__, self.crashes + 1
                if time.monotonic() - started > backoff:
                    backoff = self._first_backoff
                if self._on_crash is not None:
                    with contextlib.suppress(Exception):
                        self._on_crash(exc, backoff)
            if self._stop.wait(backoff):
                return
            backoff = min(API_RESTART_MAX, backoff * 2)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 0.5) -> None:
        self._stop.set()
        self._thread.join(timeout)


class _FlagsParser(argparse.ArgumentParser):
    """Raises instead of exiting: a bad flags file on reload must not stop the daemon."""

    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    add_source_arguments(p)
    add_policy_arguments(p)
    add_api_arguments(p)
    add_daemon_arguments(p)
    p.add_argument("--flags-file", default=None, metavar="FILE",
                   help="environment file whose KUBELET_CERT_AGENT_ARGS replaces these flags "
                        "on SIGHUP (systemctl reload); the unit passes "
                        "/etc/default/kubelet-cert-agent")


def parse_run_flags(argv: list[str]) -> argparse.Namespace:
    """Parse ``run`` flags; raises ValueError on a usage error."""
    parser = _FlagsParser(prog="kubelet-cert-agent run", add_help=False)
    add_run_arguments(parser)
    return parser.parse_args(argv)


def settings_from_flags_file(path: Path) -> Settings:
    """The settings ``run`` would get from the flags in ``path``.

    Raises ``OSError`` (unreadable) or ``ValueError`` (bad quoting, unknown flag, bad value).
    """
    return settings_from_args(parse_run_flags(read_flags_file(path)))


def read_flags_file(path: Path) -> list[str]:
    """The words of ``KUBELET_CERT_AGENT_ARGS=...`` in an environment file (as systemd reads it).

    Raises ``OSError`` when unreadable and ``ValueError`` when malformed (bad quoting).
    A file without the variable means no flags.
    """
    text = path.read_text(encoding="utf-8")
    value = ""
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["export"]:
            words = words[1:]
        if len(words) == 1 and words[0].startswith(FLAGS_VARIABLE + "="):
            value = words[0][len(FLAGS_VARIABLE) + 1:]
    return shlex.split(value)
