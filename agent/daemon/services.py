"""The daemon's long-lived parts: HTTP endpoint, filesystem watcher, CSR monitor thread.

Each part is optional and failure-tolerant: a port that cannot be bound, an inotify
limit or a missing API module becomes a log event and the agent keeps running with
what it has. ``apply`` restarts only the parts whose settings changed on reload.
"""

from __future__ import annotations

import threading
import traceback
from typing import TYPE_CHECKING, Any, Protocol

from agent.clock import Clock
from agent.config import Settings
from agent.daemon.logging import emit
from agent.daemon.supervise import ApiThread, MonitorFactory, default_monitor_factory
from agent.daemon.watch import ObserverFactory, Watcher
from agent.health import Health
from agent.model import AgentState, ApiState, Event, Snapshot, event
from agent.snapshot import watch_plan

if TYPE_CHECKING:
    from agent.sinks.http import MetricsServer


class Host(Protocol):
    """What the services need from the loop that owns them, and nothing more: the
    loop passes itself, but services never import it (no back reference)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def health(self) -> Health: ...
    def published(self) -> AgentState | None: ...
    def wake(self) -> None: ...
    def api_updated(self, state: ApiState) -> None: ...
    def forget_api(self) -> None: ...


class Services:
    """Starts, restarts and stops the parts around a :class:`~agent.daemon.loop.Daemon`."""

    def __init__(self, daemon: Host, *, http: bool = True,
                 observer_factory: ObserverFactory | None = None,
                 monitor_factory: MonitorFactory = default_monitor_factory) -> None:
        self._daemon = daemon
        self._want_http = http
        self._observer_factory = observer_factory
        self._monitor_factory = monitor_factory
        self.http: MetricsServer | None = None
        self.watcher: Watcher | None = None
        self.api: ApiThread | None = None
        self.ready_sent = False

    @property
    def settings(self) -> Settings:
        return self._daemon.settings

    def start(self) -> None:
        self._start_http()
        self._start_watcher()
        self._start_api()

    def describe(self) -> dict[str, Any]:
        """What runs, for the ``agent_started`` event."""
        return {"listen": self.http.url if self.http else None,
                "watch_mode": self.watcher.mode if self.watcher else None,
                "textfile_dir": str(self.settings.daemon.textfile_dir or "") or None,
                "offline": self.settings.api.offline}

    def stop(self) -> None:
        """Stop everything within about a second: HTTP shuts down in parallel."""
        http, self.http = self.http, None
        closer = threading.Thread(target=http.shutdown, daemon=True) if http else None
        if closer is not None:
            closer.start()
        self._stop_watcher()
        self._stop_api()
        if closer is not None:
            closer.join(0.6)

    # -- HTTP -------------------------------------------------------------------------

    def _start_http(self) -> None:
        if not self._want_http:
            return
        listen = self.settings.daemon.listen
        try:
            self.http = self._bind_http(listen)
        except (OSError, ValueError) as exc:
            emit([event("http_failed", "error", listen=listen, error=_reason(exc))])
            return
        emit([event("http_listening", listen=listen, url=self.http.url, port=self.http.port)])

    def _bind_http(self, listen: str) -> MetricsServer:
        from agent.sinks.http import serve

        return serve(listen, self._daemon.published, health=self._daemon.health)

    def prepare(self, old: Settings, new: Settings) -> MetricsServer | None:
        """Bind the new ``--listen`` before anything changes (bind before close).

        Raises ``OSError``/``ValueError`` when it cannot be bound: the reload then fails
        and the old listener and flags stay. None when the listener does not change.
        """
        if new.daemon.listen == old.daemon.listen or not self._want_http:
            return None
        return self._bind_http(new.daemon.listen)

    # -- watcher ----------------------------------------------------------------------

    def _start_watcher(self) -> None:
        self.watcher = Watcher(self._daemon.wake, poll=self.settings.daemon.poll,
                               observer_factory=self._observer_factory, on_event=_emit_one)
        self.watcher.start()

    def _stop_watcher(self) -> None:
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.stop(0.3)

    def watch(self, snapshot: Snapshot | None) -> bool:
        """Point the watcher at the directories ``snapshot`` depends on (targets move).

        True when a directory was added: changes made there before now were not seen.
        """
        if self.watcher is None or snapshot is None:
            return False
        dirs, paths, whole = watch_plan(snapshot, self.settings.sources)
        textfile = self.settings.daemon.textfile_dir
        try:
            return self.watcher.update(
                dirs, paths, whole_dirs=list(whole),
                ignored_dirs=[str(textfile)] if textfile else [])
        except Exception as exc:  # a watch problem must not stop evaluations
            self._daemon.health.internal_error("watch")
            emit([event("watch_failed", "warning", error=type(exc).__name__)])
            return False

    def drain(self) -> tuple[frozenset[str], bool, int]:
        if self.watcher is None:
            return frozenset(), False, 0
        return self.watcher.drain()

    # -- API monitor ------------------------------------------------------------------

    def _start_api(self) -> None:
        if self.settings.api.offline:
            return
        try:
            monitor = self._monitor_factory(self.settings.api, self.settings.sources.node_name,
                                            self._daemon.clock, self._daemon.api_updated,
                                            self.settings.sources.kubelet)
        except Exception as exc:  # e.g. the API part is not installed
            self._daemon.health.internal_error("api")
            emit([event("api_disabled", "error", error=type(exc).__name__)])
            return
        self.api = ApiThread(monitor, on_crash=self._api_crashed)
        self.api.start()

    def _api_crashed(self, exc: BaseException, restart_in: float) -> None:
        """The monitor raised (a bug): count it, log it with its traceback, alert."""
        self._daemon.health.internal_error("api")
        self._daemon.health.api_restarted()
        emit([event("api_thread_crashed", "error", error=type(exc).__name__,
                    restart_in_seconds=restart_in, traceback=format_traceback(exc))])

    def _stop_api(self) -> None:
        api, self.api = self.api, None
        if api is not None:
            api.stop(0.2)

    def credentials_changed(self) -> None:
        """The client certificate rotated: the monitor must use the new one."""
        if self.api is None:
            return
        try:
            self.api.monitor.credentials_changed()
        except Exception as exc:
            self._daemon.health.internal_error("api")
            emit([event("api_credentials_reload_failed", "warning", error=type(exc).__name__)])

    # -- reload -----------------------------------------------------------------------

    def apply(self, old: Settings, new: Settings, http: MetricsServer | None = None) -> None:
        """Restart the parts whose settings changed (the daemon holds ``new`` already).

        ``http`` is the listener :meth:`prepare` bound for the new ``--listen``.
        """
        if http is not None:
            previous, self.http = self.http, http
            if previous is not None:
                previous.shutdown()
            emit([event("http_listening", listen=new.daemon.listen, url=http.url,
                        port=http.port)])
        if new.daemon.poll != old.daemon.poll:
            self._stop_watcher()
            self._start_watcher()
        if new.api != old.api or new.sources.node_name != old.sources.node_name or (
                new.sources.kubelet != old.sources.kubelet):
            self._stop_api()
            self._daemon.forget_api()
            self._start_api()


def _emit_one(ev: Event) -> None:
    emit([ev])


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


def format_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` and its causes: frames and exception types only.

    No local values and no exception messages (a library's message may quote the bytes it
    choked on, and those may be a private key); :class:`~agent.faults.AgentFault` messages
    are written by us and kept.
    """
    chain: list[traceback.TracebackException] = []
    te: traceback.TracebackException | None = traceback.TracebackException.from_exception(exc)
    while te is not None and len(chain) < 8:
        chain.append(te)
        te = te.__cause__ or te.__context__
    parts = []
    for link in reversed(chain):
        kind = link.exc_type.__name__ if link.exc_type else "Exception"
        message = f": {link}" if kind == "AgentFault" else ""
        parts.append("Traceback (most recent call last):\n" + "".join(link.stack.format())
                     + kind + message)
    return "\n".join(parts)
