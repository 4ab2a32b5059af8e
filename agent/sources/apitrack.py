"""What the API server said, request by request, and the list requests behind it.

``Tracker`` turns each answer into the next ``ApiState`` (keeping the last known CSRs and
``last_success`` over a failure); ``pages`` lists every page of one signer's CSRs and
``run_chores`` does the lifeline's due chores. Shared by ``fetch_once`` and
``CsrMonitor`` (agent.sources.apiserver).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from agent.clock import Clock
from agent.kubelet import CLIENT_SIGNER, SERVING_SIGNER
from agent.model import ApiError, ApiProblem, ApiState, CsrInfo
from agent.sources.apiclient import PAGE_SIZE, ApiClient, ApiFailure
from agent.sources.apiparse import (
    OK,
    Failure,
    WatchEvent,
    failure_to_error,
    is_node_serving,
)
from agent.sources.lifeline import Lifeline

MAX_PAGES = 100  # pages of PAGE_SIZE in one list: 50,000 serving CSRs is far beyond real


class Tracker:
    """What the API server last said, updated request by request; yields ApiState."""

    def __init__(self, server: str, node_name: str, clock: Clock,
                 previous: ApiState | None) -> None:
        self.server, self.node_name, self.clock = server, node_name, clock
        self.csrs: dict[str, CsrInfo] = {}
        self.last_success = None if previous is None else previous.last_success
        self.error = None if previous is None else previous.error
        self.identity: tuple[str | None, tuple[str, ...]] = (None, ())
        self.counts: Counter[str] = Counter()
        self.credential = None if previous is None else previous.credential
        self.lifeline: Lifeline | None = None
        if previous is not None:
            self.server = server or previous.server
            self.csrs = {c.name: c for c in previous.csrs}
            self.identity = (previous.identity_username, previous.identity_groups)
            self.counts.update(dict(previous.requests_by_outcome))

    def count(self, outcome: str) -> None:
        self.counts[outcome] += 1

    def answered(self) -> None:
        """The API server answered a request successfully (who-am-I, a list page, a watch
        opened, an event, a bookmark): it works, whatever the CSR data's state."""
        self.last_success = self.clock()

    def succeeded(self) -> None:
        """The CSR data is complete and current again: also clears the failure."""
        self.last_success, self.error = self.clock(), None

    def failed(self, failure: Failure) -> None:
        self.error = failure_to_error(failure, self.error, self.clock())

    def not_configured(self, error: ApiError) -> None:
        failure = Failure("", ApiProblem.NOT_CONFIGURED, error.detail)
        self.error = failure_to_error(failure, self.error, self.clock())

    def replace(self, items: list[CsrInfo]) -> None:
        self.csrs = {c.name: c for c in items if is_node_serving(c, self.node_name)}

    def apply(self, event: WatchEvent) -> None:
        csr = event.csr
        if csr is None or not is_node_serving(csr, self.node_name):
            return
        if event.type == "DELETED":
            self.csrs.pop(csr.name, None)
        else:
            self.csrs[csr.name] = csr

    def state(self) -> ApiState:
        csrs = tuple(sorted(self.csrs.values(), key=lambda c: (c.created, c.name)))
        state = ApiState(server=self.server, last_success=self.last_success, csrs=csrs,
                         error=self.error, identity_username=self.identity[0],
                         identity_groups=self.identity[1],
                         requests_by_outcome=tuple(sorted(self.counts.items())),
                         credential=self.credential)
        life = self.lifeline
        if life is None:
            return state
        return replace(state, client_csrs=tuple(sorted(life.client_csrs,
                                                       key=lambda c: (c.created, c.name))),
                       client_csrs_known=life.client_csrs_known,
                       renewal_review=life.renewal_review, bootstrap=life.bootstrap,
                       node=life.node)


def review(client: ApiClient, tracker: Tracker) -> bool:
    """Ask who we are; True once the server has answered (so no need to ask again)."""
    try:
        identity = client.review()
    except ApiFailure as exc:
        tracker.count(exc.failure.outcome)
        # 401/429/5xx/unreachable: ask again next time; other answers will not change.
        code = exc.failure.status_code
        return code is not None and code not in (401, 429) and code < 500
    tracker.count(OK)
    tracker.answered()
    if identity is not None:
        tracker.identity = identity
    return True


def bad_list(detail: str) -> Failure:
    return Failure("bad-response", ApiProblem.BAD_RESPONSE, f"CSR list: {detail}")


def pages(client: ApiClient, tracker: Tracker, signer: str = SERVING_SIGNER
           ) -> tuple[list[CsrInfo], str, Failure | None]:
    """Every page of the list of ``signer``'s CSRs; restarts from scratch (twice at most)
    on 410.

    A server that lies cannot keep us asking: a continue token seen before, more than
    MAX_PAGES pages, or a complete list without a resourceVersion (nothing to watch
    from) is BAD_RESPONSE, retried on the normal backoff.
    """
    items: list[CsrInfo] = []
    token: str | None = None
    seen: set[str] = set()
    restarts = 0
    while True:
        try:
            page = client.list_page(token, signer)
        except ApiFailure as exc:
            tracker.count(exc.failure.outcome)
            if exc.failure.gone and token is not None and restarts < 2:
                items, token, seen, restarts = [], None, set(), restarts + 1
                continue
            return [], "", exc.failure
        tracker.count(OK)
        tracker.answered()
        items.extend(page.items)
        if not page.continue_token:
            if not page.resource_version:
                return [], "", bad_list("no metadata.resourceVersion in the answer")
            return items, page.resource_version, None
        token = page.continue_token
        if token in seen:
            return [], "", bad_list("the API server repeated a continue token")
        if len(seen) + 1 >= MAX_PAGES:
            return [], "", bad_list(f"more than {MAX_PAGES} pages of {PAGE_SIZE}: "
                                     "the pagination does not end")
        seen.add(token)


def list_all(client: ApiClient, tracker: Tracker) -> tuple[str, Failure | None]:
    """This node's serving CSRs, all pages: (resourceVersion to watch from, failure)."""
    items, rv, failure = pages(client, tracker)
    if failure is None:
        tracker.replace(items)
        tracker.succeeded()
    return rv, failure


def run_chores(client: ApiClient, tracker: Tracker, now: float) -> None:
    """The lifeline's due chores, right after a serving request succeeded."""
    lifeline = tracker.lifeline
    if lifeline is None:
        return
    user = f"system:node:{tracker.node_name}"

    def list_client() -> tuple[list[CsrInfo], Failure | None]:
        items, _, failure = pages(client, tracker, CLIENT_SIGNER)
        return [c for c in items if c.username == user and c.signer == CLIENT_SIGNER], failure

    lifeline.run(client, now, tracker.count, list_client)


def internal(exc: Exception) -> Failure:
    return Failure("bad-response", ApiProblem.BAD_RESPONSE,
                   f"internal error while talking to the API server ({type(exc).__name__})")
