"""This node's serving CSRs and whether the API server still accepts the node.

``fetch_once`` does one who-am-I, one complete list and every lifeline chore (for
``check``).
``CsrMonitor`` keeps an ``ApiState`` current for the daemon: list, then watch from the
list's resourceVersion (bookmarks on), relist on 410, poll when watching is refused,
back off with jitter on failures (see ``apischedule``), and run the lifeline's due chores
after a watch that ran to its timeout (see ``lifeline``). Both never raise: every failure
becomes ``ApiState.error``, and the last known CSRs and ``last_success`` are kept (stale).
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable

import requests
import structlog

from agent import clock as clock_mod
from agent.clock import Clock, Monotonic
from agent.config import ApiSettings
from agent.model import ApiError, ApiProblem, ApiState
from agent.sources.apiclient import ApiClient, ApiFailure
from agent.sources.apiparse import (
    OK,
    Failure,
    WatchEvent,
    classify_status,
)
from agent.sources.apischedule import Action, Scheduler, Step
from agent.sources.apitrack import (
    Tracker,
    internal,
    list_all,
    review,
    run_chores,
)
from agent.sources.kubeconfig import Credentials, load_credentials
from agent.sources.lifeline import Lifeline

log = structlog.get_logger("kubelet_cert_agent.apiserver")
SessionFactory = Callable[[], requests.Session]
CredentialLoader = Callable[[ApiSettings], "Credentials | ApiError"]


def fetch_once(api: ApiSettings, node_name: str, clock: Clock,
               previous: ApiState | None = None, *,
               session_factory: SessionFactory = requests.Session,
               load: CredentialLoader = load_credentials,
               lifeline: Lifeline | None = None) -> ApiState:
    """Who-am-I plus one complete list of this node's serving CSRs, then every chore of
    ``lifeline`` (when given). Never raises."""
    tracker = Tracker(api.server or "", node_name, clock, previous)
    tracker.lifeline = lifeline
    try:
        creds = load(api)
        if isinstance(creds, ApiError):
            tracker.not_configured(creds)
            return tracker.state()
        tracker.server, tracker.credential = creds.server, creds.credential
        client = ApiClient(creds, api, session_factory())
        try:
            review(client, tracker)
            _, failure = list_all(client, tracker)
            if failure is None:
                run_chores(client, tracker, clock_mod.monotonic())
        finally:
            client.close()
        if failure is not None:
            tracker.failed(failure)
    except Exception as exc:  # never let a surprise escape into `check`
        log.error("api_fetch_internal_error", error=type(exc).__name__)
        tracker.failed(internal(exc))
    return tracker.state()


class CsrMonitor:
    """Keeps this node's serving CSRs current with list+watch; one request at a time.

    ``run(stop)`` blocks (the daemon runs it in its own thread) and calls ``on_update``
    with a new ``ApiState`` after every request and every watch event. ``step()`` does
    the planned request now and returns the next plan: tests drive it without time.
    """

    def __init__(self, api: ApiSettings, node_name: str, clock: Clock,
                 on_update: Callable[[ApiState], None], *,
                 session_factory: SessionFactory = requests.Session,
                 sleep: Callable[[float], None] | None = None,
                 monotonic: Monotonic = clock_mod.monotonic,
                 rng: random.Random | None = None,
                 load: CredentialLoader = load_credentials,
                 previous: ApiState | None = None,
                 lifeline: Lifeline | None = None) -> None:
        self.api, self.node_name, self.on_update = api, node_name, on_update
        self._session_factory, self._sleep, self._monotonic = session_factory, sleep, monotonic
        self._load = load
        self._tracker = Tracker(api.server or "", node_name, clock, previous)
        self._tracker.lifeline = lifeline
        self._scheduler = Scheduler(api.csr_interval, rng)
        self._plan: Step = self._scheduler.start()
        self._client: ApiClient | None = None
        self._rv = ""
        self._reload = True
        self._need_review = True
        self._watch_ended = False  # the last watch ran to its timeoutSeconds
        self._chores_started = False
        self._wake = threading.Event()

    @property
    def plan(self) -> Step:
        """The next request and the delay before it."""
        return self._plan

    def state(self) -> ApiState:
        return self._tracker.state()

    def credentials_changed(self) -> None:
        """The client certificate (or token) changed: reload it, ask who-am-I again, and
        cut the watch in progress, which was opened with the old credentials."""
        self._reload = self._need_review = True
        self._wake.set()
        client = self._client
        if client is not None:
            client.abort()

    def run(self, stop: threading.Event) -> None:
        """Request, publish, wait; until ``stop`` is set. Never raises."""
        def interrupt() -> None:
            stop.wait()
            self._wake.set()
            client = self._client
            if client is not None:
                client.abort()

        threading.Thread(target=interrupt, name="csr-monitor-stop", daemon=True).start()
        while not stop.is_set():
            self._wait(self._plan.delay)
            if stop.is_set():
                break
            self.step()
        if self._client is not None:
            self._client.close()

    def _wait(self, delay: float) -> None:
        if delay <= 0:
            return
        if self._sleep is not None:
            self._sleep(delay)
            return
        self._wake.wait(delay)  # credentials_changed() or stop cut the wait short
        self._wake.clear()

    def step(self) -> Step:
        """Do the planned request now, publish the new state, return the next plan."""
        try:
            self._plan = self._step()
        except Exception as exc:  # the last line of defence: the thread must not die
            log.error("api_monitor_internal_error", error=type(exc).__name__)
            self._tracker.failed(internal(exc))
            self._reload = True  # start again from fresh credentials and a new client
            self._plan = self._scheduler.retry()
        self._publish()
        return self._plan

    def _publish(self) -> None:
        try:
            self.on_update(self._tracker.state())
        except Exception as exc:  # a broken consumer must not stop the monitor
            log.error("api_on_update_failed", error=type(exc).__name__)

    def _step(self) -> Step:
        error = self._tracker.error
        if error is not None and error.problem is ApiProblem.AUTH_FAILED:
            self._reload = True  # a rotated cert or replaced token nobody told us about
        if self._reload:
            self._reload = False  # before reading: a credentials_changed() meanwhile stays
            creds = self._load(self.api)
            if isinstance(creds, ApiError):
                self._reload = True
                self._tracker.not_configured(creds)
                return self._scheduler.retry()
            if self._client is not None:
                self._client.close()
            self._client = ApiClient(creds, self.api, self._session_factory())
            self._tracker.server, self._need_review = creds.server, True  # new creds: who am I?
            self._tracker.credential = creds.credential
        client = self._client
        assert client is not None  # noqa: S101 - set above on the first step
        if self._need_review:
            self._need_review = not review(client, self._tracker)
        if self._plan.action is Action.WATCH and self._rv:
            self._watch_ended = False
            step = self._watch(client, self._plan.watch_timeout)
            healthy = self._watch_ended
        else:
            step = self._list(client)
            healthy = self._tracker.error is None and not self._chores_started
        # Chores ride on a watch that ended normally (and on the very first list), never
        # on the relists of a reconnect: an outage must not multiply the reconnect storm.
        if self._tracker.lifeline is not None and healthy and not client.aborted:
            self._chores_started = True
            run_chores(client, self._tracker, self._monotonic())
        return step

    def _list(self, client: ApiClient) -> Step:
        rv, failure = list_all(client, self._tracker)
        if failure is not None:
            self._tracker.failed(failure)
            return self._scheduler.list_failed(failure)
        self._rv = rv
        return self._scheduler.listed()

    def _watch(self, client: ApiClient, timeout: int) -> Step:
        started = self._monotonic()
        try:
            resp = client.open_watch(self._rv, timeout)
        except ApiFailure as exc:
            return self._watch_failed(exc.failure, established=False)
        self._tracker.answered()  # the watch is open: the server accepted us
        self._publish()
        try:
            for event in client.events(resp):
                step = self._on_event(event)
                if step is not None:
                    return step
        except ApiFailure as exc:
            if client.aborted:  # stop or credentials_changed(): not the server's fault
                return Step(Action.WATCH, 0.0, timeout)
            return self._watch_failed(exc.failure, established=True)
        finally:
            client.finish(resp)
        self._tracker.count(OK)
        if client.aborted:  # timeoutSeconds=0 would mean the server's 30-60 min default
            return Step(Action.WATCH, 0.0, timeout)
        self._tracker.succeeded()
        elapsed = self._monotonic() - started
        self._watch_ended = elapsed >= timeout / 2  # not an early end (a restart)
        return self._scheduler.watch_ended(elapsed, timeout)

    def _watch_failed(self, failure: Failure, established: bool) -> Step:
        self._tracker.count(failure.outcome)
        if not failure.gone:  # 410: the resourceVersion expired, relist; not an error
            self._tracker.failed(failure)
        return self._scheduler.watch_failed(failure, established)

    def _on_event(self, event: WatchEvent) -> Step | None:
        """Apply one event; a Step when the watch must end (ERROR)."""
        if event.type == "ERROR":
            status = event.status or {}
            code = status.get("code")
            failure = classify_status(code if isinstance(code, int) else 500,
                                      json.dumps(status).encode())
            return self._watch_failed(failure, established=True)
        if event.resource_version:
            self._rv = event.resource_version
        if event.type == "BOOKMARK":
            self._tracker.answered()  # nothing changed, but the server is there
        else:
            self._tracker.apply(event)
            self._tracker.succeeded()
        self._publish()
        return None
