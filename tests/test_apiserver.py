"""fetch_once and CsrMonitor against a real local HTTPS server replaying kube-apiserver."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from agent import pkigen
from agent.config import ApiSettings
from agent.model import ApiCredential, ApiProblem, ApiState, CredentialKind, CsrState
from agent.sources.apischedule import GONE_RELISTS, Action
from agent.sources.apiserver import CsrMonitor, fetch_once
from agent.sources.apitrack import MAX_PAGES
from agent.sources.kubeconfig import load_credentials
from tests.kubeapi import (
    KubeApi,
    Reply,
    closed_port,
    cut_stream,
    fixture_json,
    list_reply,
    recorded,
    status_reply,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NODE1_SERVING = {"csr-rz44z", "csr-7rkkl", "csr-2tfqn", "csr-9qxds"}
INTERVAL = 60.0


def clock() -> datetime:
    return NOW


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    api = KubeApi(tmp_path_factory.mktemp("api"), NOW)
    yield api
    api.stop()


@pytest.fixture
def kube_api(shared_api: KubeApi) -> KubeApi:
    """The module's server with the default script and an empty request log."""
    shared_api.script("list", recorded("list-node1-signer-kubelet-serving.json"))
    shared_api.script("watch", recorded("watch-node1-serving-bookmarks.jsonl"))
    shared_api.script("review", recorded("selfsubjectreview-node1.json"))
    shared_api.seen.clear()
    shared_api.released.clear()
    return shared_api


def names(state: ApiState) -> set[str]:
    return {c.name for c in state.csrs}


def monitor(api: KubeApi, updates: list[ApiState] | None = None, **kw: object) -> CsrMonitor:
    sink = updates if updates is not None else []
    return CsrMonitor(api.settings(read_timeout=0.5), "node1", clock, sink.append, **kw)  # type: ignore[arg-type]


FAULTS: list[tuple[str, Reply, ApiProblem, int | None]] = [
    ("401-expired-cert", recorded("list-node1-expired-cert-401.json"),
     ApiProblem.AUTH_FAILED, 401),
    ("401-other-ca", recorded("list-node1-untrusted-ca-cert-401.json"),
     ApiProblem.AUTH_FAILED, 401),
    ("403", recorded("list-anonymous-403.json"), ApiProblem.FORBIDDEN, 403),
    ("404", recorded("get-node1-404.json"), ApiProblem.BAD_RESPONSE, 404),
    ("429", status_reply(429, "TooManyRequests", "slow down", [("Retry-After", "1")]),
     ApiProblem.RATE_LIMITED, 429),
    ("500", status_reply(500, "InternalError", "etcd is sad"), ApiProblem.UNREACHABLE, 500),
    ("malformed-json", Reply(200, b'{"kind":"CertificateSigningRequestList","items":['),
     ApiProblem.BAD_RESPONSE, None),
    ("table", recorded("list-node1-table-signer-serving.json"), ApiProblem.BAD_RESPONSE, None),
    ("never-answers", Reply(hang=True), ApiProblem.UNREACHABLE, None),
]


class TestFetchOnce:
    def test_node_sees_every_csr_but_keeps_its_own_serving_ones(self, kube_api: KubeApi) -> None:
        """As node1 the list holds all seven CSRs; node1's four serving ones are kept."""
        kube_api.script("list", recorded("list-node1.json"))
        state = fetch_once(kube_api.settings(), "node1", clock)
        assert state.error is None and names(state) == NODE1_SERVING
        assert state.last_success == NOW and state.server == kube_api.url

    def test_asks_for_serving_csrs_by_signer_in_pages_of_500(self, kube_api: KubeApi) -> None:
        """The list is filtered server-side on spec.signerName, limit=500."""
        fetch_once(kube_api.settings(), "node1", clock)
        (seen,) = kube_api.requests("list")
        assert seen.query == {"fieldSelector": "spec.signerName=kubernetes.io/kubelet-serving",
                              "limit": "500"}

    def test_who_am_i_comes_from_selfsubjectreview(self, kube_api: KubeApi) -> None:
        """identity_username/groups are the API server's view of the credentials."""
        state = fetch_once(kube_api.settings(), "node1", clock)
        assert state.identity_username == "system:node:node1"
        assert state.identity_groups == ("system:nodes", "system:authenticated")

    def test_selfsubjectreview_404_is_ignored_quietly(self, kube_api: KubeApi) -> None:
        """An API server without SelfSubjectReview: no identity, no error."""
        kube_api.script("review", recorded("get-node1-404.json"))
        state = fetch_once(kube_api.settings(), "node1", clock)
        assert state.error is None and state.identity_username is None and state.csrs

    def test_pagination_follows_continue(self, kube_api: KubeApi) -> None:
        """Pages are fetched with each page's continue token until there is none."""
        rest = [i for i in fixture_json("list-node1.json")["items"]
                if i["metadata"]["name"] not in ("csr-2tfqn", "csr-7rkkl")]
        kube_api.script("list", recorded("list-admin-limit1.json"),
                        recorded("list-admin-limit1-page2.json"), list_reply(rest, "229"))
        state = fetch_once(kube_api.settings(), "node1", clock)
        assert state.error is None and names(state) == NODE1_SERVING
        tokens = [s.query.get("continue") for s in kube_api.requests("list")]
        assert tokens[0] is None and str(tokens[1]).startswith("eyJ") and tokens[2] != tokens[1]

    def test_410_on_continue_restarts_the_list(self, kube_api: KubeApi) -> None:
        """An expired continue token (HTTP 410) restarts the list from the first page."""
        kube_api.script("list", recorded("list-admin-limit1.json"),
                        recorded("list-admin-continue-compacted-410.json"),
                        recorded("list-node1-signer-kubelet-serving-after-restart.json"))
        state = fetch_once(kube_api.settings(), "node1", clock)
        assert state.error is None and names(state) == NODE1_SERVING
        assert "continue" not in kube_api.requests("list")[2].query
        assert dict(state.requests_by_outcome)["gone"] == 1

    @pytest.mark.parametrize(("reply", "problem", "code"), [f[1:] for f in FAULTS],
                             ids=[f[0] for f in FAULTS])
    def test_each_fault_gives_its_problem(self, kube_api: KubeApi, reply: Reply,
                                          problem: ApiProblem, code: int | None) -> None:
        """Every fault becomes the right ApiError; nothing raises."""
        kube_api.script("list", reply)
        state = fetch_once(kube_api.settings(read_timeout=0.5), "node1", clock)
        assert state.error is not None
        assert (state.error.problem, state.error.status_code) == (problem, code)
        assert dict(state.requests_by_outcome)[problem.value] == 1

    def test_connection_refused_is_unreachable(self, kube_api: KubeApi) -> None:
        """Nothing listening: UNREACHABLE, saying the connection was refused."""
        settings = kube_api.settings(server=f"https://127.0.0.1:{closed_port()}")
        state = fetch_once(settings, "node1", clock)
        assert state.error is not None and state.error.problem is ApiProblem.UNREACHABLE
        assert "refused" in state.error.detail

    def test_a_server_from_another_ca_is_unreachable(self, kube_api: KubeApi,
                                                    tmp_path: Path) -> None:
        """A server certificate the configured CA did not sign: a TLS error, explained."""
        other = tmp_path / "other-ca.crt"
        other.write_bytes(pkigen.issue("other", usage="ca", not_before=NOW,
                                       not_after=NOW.replace(year=2030)).cert_pem())
        state = fetch_once(kube_api.settings(api_ca_file=other), "node1", clock)
        assert state.error is not None and state.error.problem is ApiProblem.UNREACHABLE
        assert "TLS verification" in state.error.detail

    def test_requests_default_ca_bundle_is_never_trusted(
            self, kube_api: KubeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Only the configured CA authenticates the server: a CA that is merely in
        requests' default bundle (certifi: every public CA) is not trusted."""
        other = tmp_path / "other-ca.crt"
        other.write_bytes(pkigen.issue("other", usage="ca", not_before=NOW,
                                       not_after=NOW.replace(year=2030)).cert_pem())
        monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(kube_api.ca_file))
        state = fetch_once(kube_api.settings(api_ca_file=other), "node1", clock)
        assert state.error is not None and "TLS verification" in state.error.detail

    def test_a_401_carries_the_credential_the_kubeconfig_names(self, kube_api: KubeApi
                                                                ) -> None:
        """The state says which credential was presented: the kubeconfig's
        client-certificate file, wherever it lives, so the finding can name it."""
        kube_api.script("list", recorded("list-node1-expired-cert-401.json"))
        kube_api.script("review", recorded("list-node1-expired-cert-401.json"))
        state = fetch_once(kube_api.settings(), "node1", clock)
        assert state.error is not None and state.error.status_code == 401
        assert state.credential == ApiCredential(CredentialKind.CERT_FILE,
                                                 str(kube_api.client_pem))

    def test_a_failure_keeps_the_last_known_csrs(self, kube_api: KubeApi) -> None:
        """On failure the previous CSRs and last_success stay (stale); failures count up."""
        good = fetch_once(kube_api.settings(), "node1", clock)
        kube_api.script("list", status_reply(500, "InternalError", "down"))
        kube_api.script("review", status_reply(500, "InternalError", "down"))
        later = datetime(2026, 11, 22, 12, 5, tzinfo=UTC)
        bad = fetch_once(kube_api.settings(), "node1", lambda: later, good)
        worse = fetch_once(kube_api.settings(), "node1", lambda: later, bad)
        assert names(worse) == NODE1_SERVING and worse.last_success == NOW
        assert worse.error is not None and worse.error.consecutive_failures == 2
        assert worse.error.since == later and worse.stale

    def test_nothing_configured(self, tmp_path: Path) -> None:
        """No kubeconfig: NOT_CONFIGURED, no request."""
        state = fetch_once(ApiSettings(kubeconfig=tmp_path / "none"), "node1", clock)
        assert state.error is not None and state.error.problem is ApiProblem.NOT_CONFIGURED

    def test_a_crashing_loader_does_not_escape(self, kube_api: KubeApi) -> None:
        """Even an unexpected exception becomes an error in the state."""
        def boom(_: object) -> object:
            raise RuntimeError("surprise")
        state = fetch_once(kube_api.settings(), "node1", clock, load=boom)  # type: ignore[arg-type]
        assert state.error is not None and "RuntimeError" in state.error.detail


class TestCsrMonitor:
    def test_lists_then_watches_from_the_lists_resource_version(self, kube_api: KubeApi) -> None:
        """After the list, the watch asks allowWatchBookmarks=true (not allowBookmarks)
        from the list's resourceVersion with a jittered timeoutSeconds."""
        m = monitor(kube_api)
        assert m.step().action is Action.WATCH
        m.step()
        (watch,) = kube_api.requests("watch")
        assert watch.query["allowWatchBookmarks"] == "true" and "allowBookmarks" not in watch.query
        assert watch.query["resourceVersion"] == "229"
        assert watch.query["fieldSelector"] == "spec.signerName=kubernetes.io/kubelet-serving"
        assert 240 <= int(watch.query["timeoutSeconds"]) <= 360

    def test_watch_events_update_the_csrs(self, kube_api: KubeApi) -> None:
        """MODIFIED events during signing make csr-rz44z Issued and csr-9qxds Failed."""
        kube_api.script("list", recorded("list-node1-signer-kubelet-serving-after-restart.json"))
        kube_api.script("watch", recorded("watch-node1-serving-during-signing.jsonl"))
        updates: list[ApiState] = []
        m = monitor(kube_api, updates)
        m.step()
        m.step()
        states = {c.name: c.state for c in m.state().csrs}
        assert states["csr-rz44z"] is CsrState.ISSUED and states["csr-9qxds"] is CsrState.FAILED
        assert len(updates) >= 4  # list, each event, end of watch

    def test_deleted_removes_the_csr(self, kube_api: KubeApi) -> None:
        """A DELETED event removes the CSR."""
        kube_api.script("list", recorded("list-node1-signer-kubelet-serving-before-delete.json"))
        kube_api.script("watch", recorded("watch-node1-serving-delete.jsonl"))
        m = monitor(kube_api)
        m.step()
        assert "csr-7rkkl" in names(m.state())
        m.step()
        assert names(m.state()) == NODE1_SERVING - {"csr-7rkkl"}

    def test_bookmarks_twice_only_move_the_resource_version(self, kube_api: KubeApi) -> None:
        """The same BOOKMARK twice: no CSR from it, the next watch starts at its RV."""
        ticks = iter([0.0, 400.0, 1000.0, 1400.0])
        m = monitor(kube_api, monotonic=lambda: next(ticks))
        m.step()
        step = m.step()  # the recorded stream: 2 MODIFIED, BOOKMARK 225 twice
        assert names(m.state()) == NODE1_SERVING
        assert step.action is Action.WATCH and step.delay == 0  # ended at its timeout
        m.step()
        assert kube_api.requests("watch")[1].query["resourceVersion"] == "225"

    def test_initial_events_end_bookmark_is_handled(self, kube_api: KubeApi) -> None:
        """A watch-list stream (ADDED..., initial-events-end BOOKMARK) is understood."""
        kube_api.script("watch", recorded("watchlist-node1-serving-initial-events.jsonl"))
        m = monitor(kube_api)
        m.step()
        m.step()
        assert m.state().error is None and names(m.state()) == NODE1_SERVING

    def test_410_on_watch_relists_at_once(self, kube_api: KubeApi) -> None:
        """An ERROR event with code 410 means: list again now; it is not an error."""
        kube_api.script("watch", recorded("watch-node1-serving-too-old-rv-410.jsonl"))
        m = monitor(kube_api)
        m.step()
        step = m.step()
        assert (step.action, step.delay) == (Action.LIST, 0)
        assert m.state().error is None and dict(m.state().requests_by_outcome)["gone"] == 1
        m.step()
        assert len(kube_api.requests("list")) == 2

    def test_a_stream_cut_mid_event_is_unreachable_then_recovers(self, kube_api: KubeApi
                                                                 ) -> None:
        """Events before the cut are kept; the cut is an error; the relist recovers."""
        kube_api.script("list", recorded("list-node1-signer-kubelet-serving-after-restart.json"))
        kube_api.script("watch", cut_stream("watch-node1-serving-during-signing.jsonl", 1))
        m = monitor(kube_api)
        m.step()
        step = m.step()
        state = m.state()
        assert state.error is not None and state.error.problem is ApiProblem.UNREACHABLE
        assert {c.name: c.state for c in state.csrs}["csr-rz44z"] is CsrState.ISSUED
        assert step.action is Action.LIST and step.delay < INTERVAL
        m.step()
        assert m.state().error is None

    @pytest.mark.parametrize(("reply", "problem", "code"), [f[1:] for f in FAULTS],
                             ids=[f[0] for f in FAULTS])
    def test_each_fault_recovers_within_one_interval(self, kube_api: KubeApi, reply: Reply,
                                                     problem: ApiProblem, code: int | None
                                                     ) -> None:
        """A fault is reported; the retry comes within one interval and clears it."""
        kube_api.script("list", reply, recorded("list-node1.json"))
        m = monitor(kube_api)
        step = m.step()
        error = m.state().error
        assert error is not None and (error.problem, error.status_code) == (problem, code)
        assert step.action is Action.LIST and step.delay <= INTERVAL
        m.step()
        assert m.state().error is None and names(m.state()) == NODE1_SERVING

    def test_refused_watch_falls_back_to_polling(self, kube_api: KubeApi) -> None:
        """A watch answered 404 switches to a list every interval (jittered)."""
        kube_api.script("watch", recorded("get-node1-404.json"))
        m = monitor(kube_api)
        m.step()
        step = m.step()
        assert step.action is Action.LIST and 0.8 * INTERVAL <= step.delay <= 1.2 * INTERVAL
        assert m.step().action is Action.LIST  # still polling after a good list

    def test_consecutive_failures_count_up(self, kube_api: KubeApi) -> None:
        """Three failed lists in a row: consecutive_failures 3, since the first."""
        kube_api.script("list", status_reply(503, "ServiceUnavailable", "starting"))
        m = monitor(kube_api)
        for _ in range(3):
            m.step()
        error = m.state().error
        assert error is not None and error.consecutive_failures == 3 and error.since == NOW

    def test_credentials_changed_reloads_and_asks_who_am_i_again(self, kube_api: KubeApi
                                                                ) -> None:
        """After credentials_changed() the credentials are re-read and SelfSubjectReview
        is asked again."""
        loads: list[object] = []

        def load(a: object) -> object:
            loads.append(a)
            return load_credentials(a)  # type: ignore[arg-type]
        m = monitor(kube_api, load=load)
        m.step()
        m.credentials_changed()
        m.step()
        assert len(loads) == 2 and len(kube_api.requests("review")) == 2

    def test_a_rotation_during_the_reload_is_not_lost(self, kube_api: KubeApi) -> None:
        """credentials_changed() while the credentials are being read: read them again."""
        loads: list[object] = []

        def load(a: object) -> object:
            loads.append(a)
            if len(loads) == 1:
                m.credentials_changed()  # the kubelet swapped the file meanwhile
            return load_credentials(a)  # type: ignore[arg-type]
        m = monitor(kube_api, load=load)
        m.step()
        m.step()
        assert len(loads) == 2 and len(kube_api.requests("review")) == 2

    def test_a_replaced_token_file_is_read_again_after_a_401(self, tmp_path: Path) -> None:
        """401: the credentials are re-read before the retry, so a new token (or a
        rotated certificate nobody reported) clears AUTH_FAILED without a restart."""
        api = KubeApi(tmp_path / "api", NOW, require_client_cert=False,
                      tokens=frozenset({"new-token"}))
        try:
            token = tmp_path / "token"
            token.write_text("old-token\n")
            path = api.kubeconfig("token.conf", user={"tokenFile": str(token)})
            m = CsrMonitor(ApiSettings(kubeconfig=path), "node1", clock, lambda s: None)
            m.step()
            error = m.state().error
            assert error is not None and error.problem is ApiProblem.AUTH_FAILED
            token.write_text("new-token\n")
            m.step()
            assert m.state().error is None and names(m.state()) == NODE1_SERVING
        finally:
            api.stop()

    def test_an_internal_error_while_loading_is_retried(self, kube_api: KubeApi) -> None:
        """A loader that crashed once is called again at the next step, which recovers."""
        calls: list[object] = []

        def load(a: object) -> object:
            calls.append(a)
            if len(calls) == 1:
                raise RuntimeError("surprise")
            return load_credentials(a)  # type: ignore[arg-type]
        m = monitor(kube_api, load=load)
        m.step()
        error = m.state().error
        assert error is not None and "RuntimeError" in error.detail
        m.step()
        assert m.state().error is None and names(m.state()) == NODE1_SERVING

    def test_not_configured_is_retried(self, kube_api: KubeApi, tmp_path: Path) -> None:
        """A kubeconfig that is missing is reported, and looked for again later."""
        m = CsrMonitor(ApiSettings(kubeconfig=tmp_path / "later.conf"), "node1", clock,
                       lambda s: None)
        step = m.step()
        error = m.state().error
        assert error is not None and error.problem is ApiProblem.NOT_CONFIGURED
        assert step.delay < INTERVAL

    def test_a_failing_consumer_does_not_stop_the_monitor(self, kube_api: KubeApi) -> None:
        """on_update raising is contained."""
        def bad(_: ApiState) -> None:
            raise ValueError("consumer bug")
        m = CsrMonitor(kube_api.settings(), "node1", clock, bad)
        assert m.step().action is Action.WATCH


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Wait on a condition (threads and sockets are real here), generously."""
    tick = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return True
        tick.wait(0.02)
    return condition()


class TestCsrMonitorThread:
    def test_stop_cuts_a_quiet_watch(self, kube_api: KubeApi) -> None:
        """run() returns promptly when stop is set, even inside a long watch."""
        kube_api.script("watch", recorded("watch-node1-serving-bookmarks.jsonl", hold=True))
        stop = threading.Event()
        m = monitor(kube_api)
        thread = threading.Thread(target=m.run, args=(stop,))
        thread.start()
        assert wait_for(lambda: len(kube_api.requests("watch")) == 1)
        stop.set()
        thread.join(20)
        assert not thread.is_alive()

    def test_credentials_changed_restarts_the_watch(self, kube_api: KubeApi) -> None:
        """A rotated client certificate cuts the open watch; a new one is opened after
        asking who-am-I again."""
        kube_api.script("watch", recorded("watch-node1-serving-bookmarks.jsonl", hold=True))
        stop = threading.Event()
        m = monitor(kube_api)
        thread = threading.Thread(target=m.run, args=(stop,))
        thread.start()
        try:
            assert wait_for(lambda: len(kube_api.requests("watch")) == 1)
            m.credentials_changed()
            assert wait_for(lambda: len(kube_api.requests("watch")) == 2)
            assert len(kube_api.requests("review")) == 2
            # the same timeoutSeconds again, never 0 (the server's 30-60 min default)
            first, second = kube_api.requests("watch")
            assert second.query["timeoutSeconds"] == first.query["timeoutSeconds"]
            assert m.state().error is None
        finally:
            stop.set()
            thread.join(20)
        assert not thread.is_alive()


def _items() -> list[dict[str, object]]:
    return list(fixture_json("list-node1.json")["items"])


def _broken(name: str, user: str, status: object) -> dict[str, object]:
    """A recorded serving CSR renamed, made by ``user``, with ``status`` as given."""
    item = dict(fixture_json("list-node1.json")["items"][0])  # csr-2tfqn, node1 serving
    item["metadata"] = {**item["metadata"], "name": name}  # type: ignore[dict-item]
    item["spec"] = {**item["spec"], "username": user}  # type: ignore[dict-item]
    item["status"] = status
    return item


class TestAServerThatLies:
    """Answers no real kube-apiserver gives: each is a clear error or is contained, and
    none makes the agent ask again at once (5,000 nodes share one API server)."""

    def test_a_list_without_resource_version_is_bad_and_backs_off(self, kube_api: KubeApi
                                                                  ) -> None:
        """Nothing to watch from: BAD_RESPONSE and the backoff, not list-list-list."""
        kube_api.script("list", list_reply(_items(), ""))
        state = fetch_once(kube_api.settings(), "node1", clock)
        assert state.error is not None and state.error.problem is ApiProblem.BAD_RESPONSE
        assert "resourceVersion" in state.error.detail
        m = monitor(kube_api, rng=random.Random(1))  # noqa: S311 - seeded jitter
        step = m.step()
        assert step.action is Action.LIST and step.delay > 0
        assert m.state().error is not None

    def test_a_repeated_continue_token_is_bad(self, kube_api: KubeApi) -> None:
        """A continue token the server gave before would page forever: BAD_RESPONSE."""
        items = _items()
        kube_api.script("list", list_reply(items[:2], "229", "again"),
                        list_reply(items[2:4], "229", "again"), list_reply(items[4:], "229"))
        state = fetch_once(kube_api.settings(), "node1", clock)
        assert state.error is not None and state.error.problem is ApiProblem.BAD_RESPONSE
        assert "repeated a continue token" in state.error.detail
        assert len(kube_api.requests("list")) == 2

    def test_pagination_that_never_ends_stops_at_max_pages(self, kube_api: KubeApi) -> None:
        """Fresh tokens forever: at most MAX_PAGES requests, then BAD_RESPONSE."""
        pages = [list_reply([], "229", f"t{n}") for n in range(MAX_PAGES)]
        kube_api.script("list", *pages, list_reply(_items(), "229"))
        state = fetch_once(kube_api.settings(), "node1", clock)
        assert state.error is not None and state.error.problem is ApiProblem.BAD_RESPONSE
        assert len(kube_api.requests("list")) == MAX_PAGES

    def test_malformed_items_of_other_nodes_do_not_matter(self, kube_api: KubeApi) -> None:
        """Another node's CSR with wrong types, a non-object item, an item with no
        owner: the list still works and node1's CSRs are all there."""
        bad = [42, {"metadata": "x"}, {"metadata": {"name": "n"}, "spec": {"username": 7}},
               _broken("csr-other", "system:node:node2",
                       {"conditions": [{"type": ["Approved"], "status": "True"}]}),
               _broken("csr-other2", "system:node:node2", {"conditions": "Approved"})]
        kube_api.script("list", list_reply([*bad, *_items()], "229"))
        state = fetch_once(kube_api.settings(), "node1", clock)
        assert state.error is None and names(state) == NODE1_SERVING

    def test_a_malformed_item_of_this_node_is_shown_not_hidden(self, kube_api: KubeApi
                                                               ) -> None:
        """node1's malformed CSR is kept, Pending, with request_error saying why; the
        others are unaffected."""
        bad = _broken("csr-bad", "system:node:node1",
                      {"conditions": [{"type": "Approved", "lastUpdateTime": 12}]})
        kube_api.script("list", list_reply([*_items(), bad], "229"))
        state = fetch_once(kube_api.settings(), "node1", clock)
        assert state.error is None and names(state) == NODE1_SERVING | {"csr-bad"}
        (csr,) = [c for c in state.csrs if c.name == "csr-bad"]
        assert csr.state is CsrState.PENDING
        assert csr.request_error is not None and "malformed CSR object" in csr.request_error

    def test_a_malformed_watch_event_of_another_node_does_not_end_the_watch(
            self, kube_api: KubeApi) -> None:
        """The events after it still arrive; no error, no fallback to polling."""
        bad = _broken("csr-other", "system:node:node2", {"conditions": [{"type": {}}]})
        lines = recorded("watch-node1-serving-during-signing.jsonl").stream or ()
        event = json.dumps({"type": "MODIFIED", "object": bad}).encode() + b"\n"
        kube_api.script("list", recorded("list-node1-signer-kubelet-serving-after-restart.json"))
        kube_api.script("watch", Reply(stream=(event, *lines)))
        m = monitor(kube_api)
        m.step()
        m.step()
        states = {c.name: c.state for c in m.state().csrs}
        assert m.state().error is None and "csr-other" not in states
        assert states["csr-rz44z"] is CsrState.ISSUED

    def test_http_410_on_the_watch_request_relists_at_once(self, kube_api: KubeApi) -> None:
        """HTTP 410 Gone answering the watch itself is the same as an ERROR 410 event:
        list again now (not ten rounds of polling), and it is not an error."""
        kube_api.script("watch", status_reply(410, "Expired", "too old resource version"))
        m = monitor(kube_api)
        m.step()
        step = m.step()
        assert (step.action, step.delay) == (Action.LIST, 0)
        assert m.state().error is None and dict(m.state().requests_by_outcome)["gone"] == 1

    @pytest.mark.parametrize("reply", [
        recorded("watch-node1-serving-too-old-rv-410.jsonl"),
        status_reply(410, "Expired", "too old resource version")], ids=["event", "http"])
    def test_a_watch_that_is_always_gone_is_polled_not_hammered(self, kube_api: KubeApi,
                                                                reply: Reply) -> None:
        """A server that answers 410 to every watch of its own resourceVersion: two
        immediate relists, then a list every interval."""
        kube_api.script("watch", reply)
        m = monitor(kube_api)
        delays = [m.step().delay for _ in range(2 * (GONE_RELISTS + 1))]
        assert delays[:-1] == [0.0] * (2 * GONE_RELISTS + 1)
        assert 0.8 * INTERVAL <= delays[-1] <= 1.2 * INTERVAL


class TestLastSuccess:
    """last_success: the API server answered a request successfully, whichever request."""

    def moving(self, api: KubeApi) -> tuple[list[datetime], CsrMonitor]:
        now = [NOW]
        m = CsrMonitor(api.settings(read_timeout=0.5), "node1", lambda: now[0],
                       lambda _state: None)
        return now, m

    def test_a_successful_who_am_i_counts_when_the_list_then_fails(self, kube_api: KubeApi
                                                                    ) -> None:
        kube_api.script("list", status_reply(500, "InternalError", "etcd is sad"))
        state = fetch_once(kube_api.settings(), "node1", clock)
        assert state.error is not None and state.last_success == NOW

    def test_a_watch_opened_counts_even_if_it_is_then_cut(self, kube_api: KubeApi) -> None:
        now, m = self.moving(kube_api)
        m.step()  # list at NOW
        kube_api.script("watch", cut_stream("watch-node1-serving-bookmarks.jsonl", 0))
        now[0] = NOW + timedelta(minutes=5)
        m.step()
        state = m.state()
        assert state.error is not None  # the stream was cut: data may be stale...
        assert state.last_success == NOW + timedelta(minutes=5)  # ...but the server answered

    def test_a_reload_after_a_rotation_counts_its_who_am_i(self, kube_api: KubeApi) -> None:
        """The new credentials were accepted (SelfSubjectReview answered) although the
        reopened watch then failed (a 503 rather than a hang: a watch's read timeout is
        its timeoutSeconds, and the test would wait it out)."""
        now, m = self.moving(kube_api)
        m.step()
        m.credentials_changed()
        kube_api.script("watch", status_reply(503, "ServiceUnavailable", "apiserver is sad"))
        now[0] = NOW + timedelta(minutes=7)
        m.step()
        assert len(kube_api.requests("review")) == 2
        assert m.state().last_success == NOW + timedelta(minutes=7)
