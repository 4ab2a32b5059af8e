"""``kubelet-cert-agent run``: watch the kubelet's certificates and publish verdicts.

One step, :meth:`Daemon.run_once`, does all the work: rebuild the snapshot (keeping the
last good data of a file that became unreadable), judge it, hold back unsettled bad
verdicts (:mod:`agent.daemon.settle`), log what changed (:mod:`agent.sinks.events`), publish to
the :class:`~agent.daemon.state.StateHolder` that /metrics reads, and write the textfile.
Tests call it directly with a fixed instant. :meth:`Daemon.serve` is the thin loop around
it: wait for a relevant file event, the API monitor, the next instant a verdict can change
by itself, the settle deadline or the systemd watchdog, never polling in a tight loop.

Errors are data: nothing raises out of the loop; a failed step logs an event and the
previous published state stays.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import __version__
from agent.checks import judge, next_change
from agent.clock import Clock, Monotonic, monotonic, utcnow
from agent.config import Settings, settings_from_args
from agent.daemon.kubelet import KubeletTracker, effective
from agent.daemon.logging import configure, emit
from agent.daemon.services import Services, format_traceback
from agent.daemon.settle import Settler, changed_paths
from agent.daemon.state import (
    StateHolder,
    record_evaluation,
    record_fs_events,
    record_read_errors,
    record_rotations,
    record_textfile_error,
)
from agent.daemon.supervise import Notifier, Waker, add_run_arguments, settings_from_flags_file
from agent.faults import AgentFault, component_of
from agent.health import Health
from agent.model import (
    AgentState,
    AgentStats,
    ApiState,
    Evaluation,
    Finding,
    KubeletSettings,
    ProbeResult,
    Role,
    Snapshot,
    event,
)
from agent.sinks.events import INPUT_UNREADABLE, diff, rotated_roles
from agent.sinks.textfile import TEXTFILE_NAME, write_textfile
from agent.snapshot import build_snapshot, merge_stale

if TYPE_CHECKING:
    from agent.sources.probe import Prober

QUIET_SECONDS = 0.005  # a burst of fs events is over after this much silence...
MAX_COALESCE_SECONDS = 0.1  # ...or after this long, whichever comes first
MAX_IDLE_SECONDS = 300.0  # re-evaluate at least this often (clock jumps, missed events)
FAILED_RETRY_SECONDS = 1.0  # after a failed evaluation whose deadline has passed
# The watchdog ping means "the loop is healthy": after this many evaluations in a row
# failed for the agent's own reasons (a bug, EMFILE, ENOMEM), systemd is left to restart us.
UNHEALTHY_AFTER_FAILURES = 3
TEXTFILE_RETRY_FIRST, TEXTFILE_RETRY_MAX = 1.0, 60.0  # back-off of a failed textfile write
TEXTFILE_CHECK_SECONDS = 15.0  # a deleted textfile (or recreated dir) is rewritten this soon


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser(
        "run", help="run as a daemon: watch, export metrics and log events",
        description="Watch the kubelet's certificates with inotify and report them on "
                    "/metrics, /healthz, /status, a node_exporter textfile and JSON log "
                    "events. SIGHUP reloads, SIGTERM stops.")
    add_run_arguments(p)
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Entry point of ``run``: signals, logging, then the loop until SIGTERM/SIGINT."""
    settings = settings_from_args(args)
    configure(settings.daemon.log_format)
    flags_file = Path(args.flags_file) if args.flags_file else None
    daemon = Daemon(settings, flags_file=flags_file, notifier=Notifier())
    signal.signal(signal.SIGTERM, lambda *_: daemon.stop_now())
    signal.signal(signal.SIGINT, lambda *_: daemon.stop_now())
    signal.signal(signal.SIGHUP, lambda *_: daemon.request_reload())
    signal.set_wakeup_fd(daemon.waker.write_fd, warn_on_full_buffer=False)
    return daemon.serve()


class Interrupted(BaseException):
    """SIGTERM arrived during an evaluation: unwind it (not an Exception: no catch-all
    may swallow it). The first evaluation of 10,000 --watch files takes seconds, longer
    than systemd's TimeoutStopSec leaves; nothing of a half-done evaluation is kept."""


class Daemon:
    """The agent's state between evaluations, and the loop that drives them."""

    def __init__(self, settings: Settings, *, clock: Clock = utcnow,
                 monotonic_clock: Monotonic = monotonic, flags_file: Path | None = None,
                 notifier: Notifier | None = None, services: Services | None = None,
                 wait: Callable[[float], bool] | None = None) -> None:
        self.settings = settings  # as configured, then with the discovered kubelet's values
        self._configured = settings
        self._serving = False
        self._reapply = True  # fill the discovered values into the settings at next refresh
        self.kubelet = KubeletTracker(settings)
        self.holder = StateHolder()
        self.waker = Waker()
        self.clock, self._monotonic = clock, monotonic_clock
        # How the loop blocks: the waker's select() unless a test drives time itself.
        self._wait = wait or self.waker.wait
        self._flags_file = flags_file
        self._notifier = notifier or Notifier(environ={})
        self.services = services or Services(self)
        self._settler = Settler(timedelta(seconds=settings.daemon.settle))
        self.stats = AgentStats(started_at=clock())
        self.health = Health()
        self._snapshot: Snapshot | None = None  # last raw snapshot (stale data merged in)
        self._published: Evaluation | None = None
        self._evaluated_at: datetime | None = None  # ``now`` of the last good evaluation
        self._api_lock = threading.Lock()
        self._api_state: ApiState | None = None
        self._api_changed = False
        self._prober: Prober | None = None
        self._stop_requested = False
        self._reload_requested = False
        self._textfile_failing = False
        self._textfile_retry: tuple[float, float] | None = None  # (at, back-off) when failing
        self._failure: str | None = None  # error of the failing evaluations, if they fail
        self.failures = 0  # evaluations failed in a row for the agent's own reasons
        self.healthy = False
        self.evaluating = False  # a signal handler reads it: see stop_now

    # -- the step -------------------------------------------------------------------

    def run_once(self, now: datetime, changed: Iterable[str] = (),
                 fs_events: int = 0) -> AgentState | None:
        """Evaluate at ``now`` and publish; never raises. Returns the published state.

        ``changed`` are paths a watcher saw change (the snapshots are compared too).
        """
        started = self._monotonic()
        try:
            self.evaluating = True
            state = self._evaluate(now, changed, fs_events, started)
        except Exception as exc:  # the agent's failure, never a finding: keep the last state
            self.evaluating = False
            self._failed(exc, now)
            kept = self.holder.get()
            if kept is not None:
                self._write_textfile(kept)  # the stale marker and the count reach node_exporter
            return kept
        finally:
            self.evaluating = False
        self._evaluated_at = now
        if self._failure is not None:
            emit([event("evaluation_recovered", error=self._failure)])
        self.healthy, self._failure, self.failures = True, None, 0
        self.health.set_stale(None)
        self._write_textfile(state)
        return self.holder.get()

    def _failed(self, exc: Exception, now: datetime) -> None:
        """Count an evaluation that failed for the agent's own reasons; log once per streak."""
        component = component_of(exc)
        self.health.internal_error(component)
        error = f"{type(exc).__name__}: {exc}" if isinstance(exc, AgentFault) else (
            type(exc).__name__)
        if error != self._failure:  # once per streak, not once per evaluation
            emit([event("evaluation_failed", "error", error=error, component=component,
                        traceback=format_traceback(exc))])
        if self.health.snapshot().stale_since is None and self.holder.get() is not None:
            self.health.set_stale(now)
        self.healthy, self._failure = False, error
        self.failures += 1

    @property
    def loop_healthy(self) -> bool:
        """Whether the watchdog is fed: fewer than UNHEALTHY_AFTER_FAILURES failures in a row."""
        return self.failures < UNHEALTHY_AFTER_FAILURES and self.holder.get() is not None

    def _evaluate(self, now: datetime, changed: Iterable[str], fs_events: int,
                  started: float) -> AgentState:
        kubelet = self._discover(changed)
        with self._api_lock:
            api, self._api_changed = self._api_state, False
        probe = self._probe(now)
        if self._snapshot is None and self.settings.sources.watch_paths:
            self._publish_partial(now, api, probe)
        snapshot = merge_stale(self._snapshot, build_snapshot(
            self.settings.sources, now, api, probe, kubelet), now)
        moved = set(changed) | changed_paths(self._snapshot, snapshot)
        if self._snapshot is not None and (
                snapshot.cert_dir_identity != self._snapshot.cert_dir_identity):
            # a mount over it, or another directory under its name: the watcher re-arms
            emit([event("cert_dir_replaced", "warning", cert_dir=snapshot.cert_dir)])
        self._snapshot = snapshot
        raw = judge(snapshot, now, self.settings.policy)
        published = self._settler.apply(raw, self._published, moved,
                                        self._time_driven(now, moved))
        events = diff(self._published, published)
        self._published = published
        roles = rotated_roles(events)
        stats = record_rotations(self.stats, [r.value for r in roles])
        stats = record_read_errors(stats, [str(e.as_dict()["problem"]) for e in events
                                           if e.kind == INPUT_UNREADABLE])
        stats = record_fs_events(stats, fs_events)
        self.stats = record_evaluation(stats, now, self._monotonic() - started)
        state = AgentState(evaluation=published, stats=self.stats)
        self._publish(state)
        emit(events)
        if Role.CLIENT in roles:
            self.services.credentials_changed()
        return state

    def _discover(self, changed: Iterable[str] = ()) -> KubeletSettings:
        """The kubelet to judge; its node name and kubeconfig feed the API monitor."""
        before = self.kubelet.current
        kubelet, events = self.kubelet.refresh(changed)
        emit(events)
        if kubelet == before and not self._reapply:  # nothing new: the settings stand
            return kubelet
        self._reapply = False
        new = effective(self.settings, kubelet)  # on top of whatever was set since
        if new != self.settings:
            old, self.settings = self.settings, new
            if self._serving:  # before serve() the services start with the new settings
                self.services.apply(old, new)
        return kubelet

    def _probe(self, now: datetime) -> ProbeResult | None:
        """The serving-port probe, at every evaluation (the loop evaluates at least every
        MAX_IDLE_SECONDS); one in flight at most; None with --no-probe."""
        kubelet = self.settings.sources.kubelet
        if not kubelet.probe:
            return None
        prober = self._prober
        if prober is None or (prober.host, prober.port, prober.timeout) != (
                kubelet.host, kubelet.port, kubelet.probe_timeout):
            from agent.sources.probe import Prober

            prober = self._prober = Prober(kubelet.host, kubelet.port, kubelet.probe_timeout)
        return prober.probe(now)

    def _time_driven(self, now: datetime, moved: set[str]) -> tuple[Finding, ...] | None:
        """The findings the published snapshot gives by itself at ``now``: time made them,
        not a file event, so the settle period (meant for the kubelet's swap) must not
        hold them back. Only worth judging when some file changed recently."""
        if self._published is None or not (moved or self._settler.recent(now)):
            return None
        return judge(self._published.snapshot, now, self.settings.policy).findings

    def _publish_partial(self, now: datetime, api: ApiState | None,
                         probe: ProbeResult | None) -> None:
        """Before the first scan of the ``--watch`` paths (ten thousand files take seconds),
        publish the kubelet's own certificates, marked incomplete: scrapes see those at once.

        Nothing is settled, diffed or logged: the complete evaluation right after does that.
        """
        sources = replace(self.settings.sources, watch_paths=())
        snapshot = replace(build_snapshot(sources, now, api, probe, self.kubelet.current),
                           complete=False)
        self._publish(AgentState(evaluation=judge(snapshot, now, self.settings.policy),
                                 stats=self.stats))

    def _publish(self, state: AgentState) -> None:
        """Render the exposition of ``state``, then make it the one scrapes see.

        In this order a scrape never renders (nor waits for) thousands of certificates: it
        serves the previous state's body until the new one is ready.
        """
        from agent.sinks.metrics import EXPOSITIONS

        EXPOSITIONS.prerender(state)
        self.holder.set(state)
        EXPOSITIONS.retain(state)
        _release_memory()

    def _write_textfile(self, state: AgentState) -> None:
        directory = self.settings.daemon.textfile_dir
        if directory is None:
            return
        try:
            from agent.sinks.metrics import render

            write_textfile(directory, render(state, self.health.snapshot()))
        except Exception as exc:  # counted, logged once per streak, retried, never fatal
            if not isinstance(exc, OSError):  # a full disk is not a bug; anything else is
                self.health.internal_error("textfile")
            self.stats = record_textfile_error(self.stats)
            self._publish(AgentState(evaluation=state.evaluation, stats=self.stats))
            if not self._textfile_failing:
                error = getattr(exc, "strerror", None) or type(exc).__name__
                emit([event("textfile_write_failed", "error", directory=str(directory),
                             error=str(error))])
            self._textfile_failing = True
            backoff = (TEXTFILE_RETRY_FIRST if self._textfile_retry is None
                       else min(TEXTFILE_RETRY_MAX, self._textfile_retry[1] * 2))
            self._textfile_retry = (self._monotonic() + backoff, backoff)
            return
        if self._textfile_failing:
            emit([event("textfile_write_recovered", directory=str(directory))])
        self._textfile_failing, self._textfile_retry = False, None

    @property
    def textfile_retry_in(self) -> float | None:
        """Seconds until the failed textfile write is retried (None: nothing to retry)."""
        if self._textfile_retry is None:
            return None
        return max(0.0, self._textfile_retry[0] - self._monotonic())

    def retry_textfile(self) -> None:
        """Write the textfile again if a failed write is due, or if the file vanished."""
        directory, state = self.settings.daemon.textfile_dir, self.holder.get()
        if directory is None or state is None:
            return
        retry = self.textfile_retry_in
        if (retry is not None and retry <= 0) or (
                retry is None and not os.path.exists(directory / TEXTFILE_NAME)):
            self._write_textfile(state)

    @property
    def snapshot(self) -> Snapshot | None:
        """The last snapshot evaluated (raw, before settling)."""
        return self._snapshot

    def next_deadline(self) -> datetime | None:
        """The earliest instant after the last evaluation at which a verdict can change
        without new input, or a held verdict settles. Once the clock reaches it the loop
        evaluates: counting from the last evaluation (not from the clock) is what makes
        the instant that woke the loop due, rather than already behind it."""
        candidates = [self._settler.deadline()]
        if self._snapshot is not None and self._evaluated_at is not None:
            candidates.append(next_change(self._snapshot, self._evaluated_at,
                                          self.settings.policy))
        return min((c for c in candidates if c is not None), default=None)

    # -- API monitor callback and requests from signals/other threads -------------------

    def published(self) -> AgentState | None:
        """The state /metrics renders (the services' view of the loop)."""
        return self.holder.get()

    def wake(self) -> None:
        self.waker.wake()

    def api_updated(self, state: ApiState) -> None:
        """Called by the CSR monitor's thread: store and wake the loop."""
        with self._api_lock:
            self._api_state, self._api_changed = state, True
        self.waker.wake()

    def forget_api(self) -> None:
        with self._api_lock:
            self._api_state, self._api_changed = None, True

    def request_stop(self) -> None:
        self._stop_requested = True
        self.waker.wake()

    def stop_now(self) -> None:
        """The SIGTERM/SIGINT handler: stop, and cut a running evaluation short."""
        self.request_stop()
        if self.evaluating:
            raise Interrupted

    def request_reload(self) -> None:
        self._reload_requested = True
        self.waker.wake()

    # -- reload -------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the flags file (if any) and apply it; counters and state are kept.

        The next evaluation re-reads the kubelet config and the anchors in any case.
        Returns False (and logs why) when the flags file is unreadable or invalid.
        """
        new = self._configured
        if self._flags_file is not None:
            try:
                new = settings_from_flags_file(self._flags_file)
            except (OSError, ValueError, ArithmeticError) as exc:
                return self._reload_failed(exc)
        try:
            http = self.services.prepare(self.settings, new)
        except (OSError, ValueError) as exc:  # the new --listen cannot be bound: keep the old
            return self._reload_failed(exc)
        self._configured = new
        self.kubelet.reconfigure(new)
        self._reapply = True
        old, self.settings = self.settings, new
        self._settler.settle = timedelta(seconds=new.daemon.settle)
        if new.daemon.log_format != old.daemon.log_format:
            configure(new.daemon.log_format)
        self.services.apply(old, new, http)
        emit([event("reloaded", flags_file=str(self._flags_file) if self._flags_file else None,
                    cert_dir=str(new.sources.cert_dir), offline=new.api.offline)])
        return True

    def _reload_failed(self, exc: BaseException) -> bool:
        reason = getattr(exc, "strerror", None) or str(exc)
        emit([event("reload_failed", "error",
                    flags_file=str(self._flags_file) if self._flags_file else None,
                    error=str(reason), kept="the running flags and listener")])
        return False

    # -- the loop -----------------------------------------------------------------------

    def serve(self) -> int:
        """Run until :meth:`request_stop`; returns the exit code (0)."""
        self._discover()  # the node name and kubeconfig the API monitor starts with
        self.services.start()
        self._serving = True
        emit([event("agent_started", version=__version__, pid=os.getpid(),
                    node=self.settings.sources.node_name,
                    cert_dir=str(self.settings.sources.cert_dir), **self.services.describe())])
        try:
            self._loop()
        except Interrupted:
            emit([event("evaluation_interrupted", reason="stop requested")])
        finally:
            self._notifier.send("STOPPING=1")
            self.services.stop()
            emit([event("agent_stopped")])
        return 0

    def _loop(self) -> None:
        due, changed, count = True, frozenset[str](), 0
        last_eval = last_process_check = self._monotonic()
        status_line = ""
        while not self._stop_requested:
            if self._reload_requested:
                self._reload_requested = False
                due = self.reload() or due
            if self._monotonic() - last_process_check >= self.kubelet.check_interval():
                last_process_check = self._monotonic()
                due = self.kubelet.process_changed() or due  # a new pid: discover again
            now = self.clock()
            deadline = self.next_deadline()
            rescan = False
            if due or changed or self.failures or (deadline is not None and deadline <= now) or (
                    self._monotonic() - last_eval >= MAX_IDLE_SECONDS):
                self.run_once(now, changed, count)
                last_eval = self._monotonic()
                # a change made before a new directory was watched produced no event
                rescan = self.services.watch(self._snapshot)
                status_line = self._notify(status_line)
            if self.loop_healthy:
                self._notifier.send("WATCHDOG=1")
            self.retry_textfile()
            if not rescan and self._wait(self._timeout(self.clock())):
                self._coalesce()
            changed, overflowed, count = self.services.drain()
            with self._api_lock:
                due = rescan or overflowed or self._api_changed
            due = self.waker.take_mounts_changed() or due

    def _timeout(self, now: datetime) -> float:
        timeouts = [MAX_IDLE_SECONDS, self.kubelet.check_interval()]
        deadline = self.next_deadline()
        if self.failures:
            timeouts.append(FAILED_RETRY_SECONDS)  # retry, but never in a tight loop
        elif deadline is not None and deadline <= now:
            # already due: the evaluation outlasted it (evaluate again at once), or a
            # failed evaluation left it behind (retry, but never in a tight loop)
            timeouts.append(0.0 if self.healthy else FAILED_RETRY_SECONDS)
        elif deadline is not None:
            # waking early costs one more short wait, never an evaluation
            timeouts.append(max(0.01, (deadline - now).total_seconds()))
        if self._notifier.watchdog_interval is not None:
            timeouts.append(self._notifier.watchdog_interval)
        retry = self.textfile_retry_in
        if retry is not None:
            timeouts.append(max(0.01, retry))
        elif self.settings.daemon.textfile_dir is not None:
            # the textfile dir is not watched (our own writes): look for a vanished file
            timeouts.append(TEXTFILE_CHECK_SECONDS)
        return min(timeouts)

    def _coalesce(self) -> None:
        """Let a burst of events finish (the kubelet writes, links, removes, renames)."""
        end = self._monotonic() + MAX_COALESCE_SECONDS
        while self._monotonic() < end and not self._stop_requested:
            if not self._wait(QUIET_SECONDS):
                return

    def _notify(self, previous: str) -> str:
        state = self.holder.get()
        line = status_line(state.evaluation if state else None)
        messages = [f"STATUS={line}"] if line != previous else []
        if self.healthy and not self.services.ready_sent:
            messages.insert(0, "READY=1")
            self.services.ready_sent = True
        if messages:
            self._notifier.send(*messages)
        return line


def _release_memory() -> None:
    """Give the C heap's free pages back to the system after an evaluation.

    Rendering 10,000 certificates peaks at tens of megabytes that glibc keeps mapped after
    Python frees them: on a node that is RSS the agent does not use. Elsewhere (musl, no
    libc found) this does nothing.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes

        trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def status_line(ev: Evaluation | None) -> str:
    """One line for ``systemctl status``: the verdict and the worst findings."""
    if ev is None:
        return "UNKNOWN: no evaluation yet"
    if not ev.findings:
        return "OK: no findings"
    codes = sorted({f.code for f in ev.findings}, key=[f.code for f in ev.findings].index)
    shown = ", ".join(codes[:3]) + (", ..." if len(codes) > 3 else "")
    n = len(ev.findings)
    return f"{ev.status.name}: {n} finding{'s' if n != 1 else ''} ({shown})"

