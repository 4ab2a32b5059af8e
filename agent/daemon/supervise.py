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
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, Protocol

from agent.clock import Clock
from agent.config import (
    ApiSettings,
    Settings,
    add_api_arguments,
    add_daemon_arguments,
    add_policy_arguments,
    add_source_arguments,
    settings_from_args,
)
from agent.model import ApiState

FLAGS_VARIABLE = "KUBELET_CERT_AGENT_ARGS"


class Waker:
    """A self-pipe: any thread (or a signal, via ``signal.set_wakeup_fd``) wakes the loop.

    Writing one byte takes no lock, so it is safe from a signal handler, unlike
    ``threading.Event.set()``.
    """

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)

    @property
    def write_fd(self) -> int:
        return self._w

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):  # full pipe: already awake
            os.write(self._w, b"\0")

    def wait(self, timeout: float | None) -> bool:
        """Block up to ``timeout`` seconds (None: forever); True if woken. Drains the pipe."""
        ready, _, _ = select.select([self._r], [], [], timeout)
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError):
            while os.read(self._r, 4096):
                pass
        return True

    def close(self) -> None:
        for fd in (self._r, self._w):
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


MonitorFactory = Callable[[ApiSettings, str, Clock, Callable[[ApiState], None]], Monitor]


def default_monitor_factory(api: ApiSettings, node: str, clock: Clock,
                            on_update: Callable[[ApiState], None]) -> Monitor:
    from agent.sources.apiserver import CsrMonitor

    monitor: Monitor = CsrMonitor(api, node, clock, on_update)
    return monitor


class ApiThread:
    """Runs a CSR monitor's blocking ``run(stop)`` in a daemon thread."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="csr-monitor", daemon=True)
        self.crashed: str | None = None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self.monitor.run(self._stop)
        except Exception as exc:  # the monitor should never raise; keep the daemon alive
            self.crashed = type(exc).__name__

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
