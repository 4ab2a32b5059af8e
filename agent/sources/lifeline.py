"""The client-renewal lifeline: what the CSR monitor asks besides the serving CSRs.

Chores, each on its own period (jittered so a fleet does not ask in step):

* ``client-csrs``: this node's ``kubernetes.io/kube-apiserver-client-kubelet`` CSRs, one
  list every 5 minutes (they matter for minutes once a year, at the renewal);
* ``renewal-review``: a SelfSubjectAccessReview for ``create`` on
  ``certificatesigningrequests/selfnodeclient``, at start and once a day;
* ``bootstrap-review``: a SelfSubjectReview with the bootstrap kubeconfig's token, once
  a day (it lives 24 h by default: a rejected one means the node cannot rejoin);
* ``node``: this node's own Node object (``status.addresses``), once an hour.

The monitor runs the due chores only right after a serving request succeeded, so that
an API server outage never multiplies the requests of the reconnect. ``Chores`` is pure
(virtual time in, tasks out): ``bench/bench_apiserver_scale.py`` runs it for 5,000 nodes.
"""

from __future__ import annotations

import enum
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import requests

from agent.clock import Clock
from agent.config import ApiSettings
from agent.model import (
    AccessReview,
    ApiError,
    BootstrapCheck,
    BootstrapOutcome,
    CsrInfo,
    NodeAddresses,
)
from agent.sources.apiclient import ApiClient, ApiFailure
from agent.sources.apiparse import OK, Failure
from agent.sources.kubeconfig import Credentials, load_credentials

SSAR_PATH: Final = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
NODE_PATH: Final = "/api/v1/nodes/"
SSAR_BODY: Final = json.dumps({
    "kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
    "spec": {"resourceAttributes": {
        "verb": "create", "group": "certificates.k8s.io",
        "resource": "certificatesigningrequests", "subresource": "selfnodeclient"}}},
    separators=(",", ":")).encode()
JITTER = 0.1  # periods drawn in period * (1 +/- this)
RETRY = 300.0  # seconds before a failed chore is tried again (at the next success)


class Task(enum.StrEnum):
    CLIENT_CSRS = "client-csrs"
    RENEWAL_REVIEW = "renewal-review"
    BOOTSTRAP_REVIEW = "bootstrap-review"
    NODE = "node"


PERIODS: Final[dict[Task, float]] = {
    Task.CLIENT_CSRS: 300.0, Task.RENEWAL_REVIEW: 86400.0,
    Task.BOOTSTRAP_REVIEW: 86400.0, Task.NODE: 3600.0,
}


class Chores:
    """When each chore is due next, on the monitor's monotonic clock. All due at start."""

    def __init__(self, tasks: Iterable[Task] = tuple(Task),
                 rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.next: dict[Task, float] = dict.fromkeys(tasks, float("-inf"))

    def due(self, now: float) -> list[Task]:
        return [t for t, at in self.next.items() if at <= now]

    def done(self, task: Task, now: float, ok: bool = True) -> None:
        period = PERIODS[task] if ok else RETRY
        self.next[task] = now + period * self.rng.uniform(1 - JITTER, 1 + JITTER)


def parse_access_review(doc: dict[str, Any]) -> tuple[bool, str]:
    """(allowed, reason) of a SelfSubjectAccessReview answer."""
    status = doc.get("status")
    if doc.get("kind") != "SelfSubjectAccessReview" or not isinstance(status, dict):
        raise ValueError(f"expected a SelfSubjectAccessReview, got {doc.get('kind')}")
    return status.get("allowed") is True, str(status.get("reason") or "")[:300]


def parse_node_addresses(doc: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """(type, address) of each entry of a Node's status.addresses."""
    status = doc.get("status")
    if doc.get("kind") != "Node" or not isinstance(status, dict):
        raise ValueError(f"expected a Node, got {doc.get('kind')}")
    entries = status.get("addresses") or []
    return tuple((str(a.get("type")), str(a.get("address")))
                 for a in entries if isinstance(a, dict) and a.get("address"))


@dataclass
class Lifeline:
    """The chores' results, updated by :meth:`run`; fields go into ``ApiState``."""

    api: ApiSettings
    node_name: str
    clock: Clock
    bootstrap_kubeconfig: Path | None
    chores: Chores = field(default_factory=Chores)
    session_factory: Callable[[], requests.Session] = requests.Session
    client_csrs: tuple[CsrInfo, ...] = ()
    client_csrs_known: bool = False
    renewal_review: AccessReview | None = None
    bootstrap: BootstrapCheck | None = None
    node: NodeAddresses | None = None

    def run(self, client: ApiClient, now: float, count: Callable[[str], None],
            list_client: Callable[[], tuple[list[CsrInfo], Failure | None]]) -> None:
        """Do every due chore now; failures are counted and retried, never raised."""
        for task in self.chores.due(now):
            ok = True
            try:
                if task is Task.CLIENT_CSRS:
                    items, failure = list_client()
                    ok = failure is None
                    if ok:
                        self.client_csrs = tuple(items)
                        self.client_csrs_known = True
                elif task is Task.RENEWAL_REVIEW:
                    self._review(client, count)
                elif task is Task.NODE:
                    self._node(client, count)
                else:
                    self._bootstrap(count)
            except ApiFailure as exc:
                count(exc.failure.outcome)
                ok = False
            except (ValueError, TypeError):
                count("bad-response")
                ok = False
            self.chores.done(task, now, ok)

    def _review(self, client: ApiClient, count: Callable[[str], None]) -> None:
        allowed, reason = parse_access_review(client.call("POST", SSAR_PATH, SSAR_BODY))
        count(OK)
        self.renewal_review = AccessReview(allowed=allowed, reason=reason, at=self.clock())

    def _node(self, client: ApiClient, count: Callable[[str], None]) -> None:
        doc = client.call("GET", NODE_PATH + self.node_name)
        count(OK)
        self.node = NodeAddresses(parse_node_addresses(doc), at=self.clock())

    def _bootstrap(self, count: Callable[[str], None]) -> None:
        path = self.bootstrap_kubeconfig
        if path is None:
            return
        check = BootstrapCheck(path=str(path), outcome=BootstrapOutcome.ABSENT, at=self.clock())
        if not path.exists():
            self.bootstrap = check
            return
        creds = load_credentials(ApiSettings(
            kubeconfig=path, insecure=self.api.insecure,
            connect_timeout=self.api.connect_timeout, read_timeout=self.api.read_timeout))
        self.bootstrap = _bootstrap_outcome(check, creds, self.api, self.session_factory, count)


def _bootstrap_outcome(check: BootstrapCheck, creds: Credentials | ApiError, api: ApiSettings,
                       session_factory: Callable[[], requests.Session],
                       count: Callable[[str], None]) -> BootstrapCheck:
    if isinstance(creds, ApiError):
        return replace(check, outcome=BootstrapOutcome.UNUSABLE, detail=creds.detail)
    if creds.token is None:
        return replace(check, outcome=BootstrapOutcome.CERTIFICATE, detail=creds.auth)
    client = ApiClient(creds, api, session_factory())
    try:
        identity = client.review()
    except ApiFailure as exc:
        if exc.failure.status_code != 401:
            raise  # unreachable and the like: counted by run(), retried
        count(exc.failure.outcome)
        return replace(check, outcome=BootstrapOutcome.REJECTED,
                       detail=f"{creds.server} answered 401 Unauthorized")
    finally:
        client.close()
    count(OK)
    user = identity[0] if identity else None
    return replace(check, outcome=BootstrapOutcome.VALID, username=user,
                   detail=f"{creds.server} accepts it" + (f" as {user}" if user else ""))
