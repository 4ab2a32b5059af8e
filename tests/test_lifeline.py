"""The client-renewal lifeline against the real HTTPS fake kube-apiserver (tests/kubeapi.py).

Each 2026-12-01 recording that an agent request can receive is replayed here and the
finding it must (or must not) give is asserted through ``check``; the daemon's CSR
monitor runs the same chores on their periods.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent import clock, codes
from agent.config import ApiSettings
from agent.model import ApiState, BootstrapOutcome, Severity
from agent.sources.apiserver import CsrMonitor
from agent.sources.lifeline import Chores, Lifeline, Task
from tests.kubeapi import KubeApi, fixture_json, kubeconfig_doc, list_reply, recorded
from tests.nodetree import NODE, Run, Tree, healthy_node, run_in_process

TOKEN = "abcdef.0123456789abcdef"  # a test value, as in the recording's README


@pytest.fixture
def kube_api(tmp_path: Path) -> Iterator[KubeApi]:
    # A client certificate is requested, not required: the bootstrap token comes without one.
    api = KubeApi(root=tmp_path / "api", now=clock.utcnow(), tokens=frozenset({TOKEN}),
                  require_client_cert=False)
    yield api
    api.stop()


def _bootstrap(tree: Tree, api: KubeApi, token: str = TOKEN) -> Path:
    path = tree.root / "bootstrap-kubelet.conf"
    path.write_text(json.dumps(kubeconfig_doc(
        {"server": api.url, "certificate-authority": str(api.ca_file)},
        {"token": token}, context="tls-bootstrap-token-user@kubernetes")))
    return path


def _check(tree: Tree, api: KubeApi, capsys: pytest.CaptureFixture[str],
           *extra: str, bootstrap: Path | None = None) -> Run:
    argv = tree.args("--format", "json", "--no-probe", "--kubeconfig", str(api.kubeconfig()),
                     "--bootstrap-kubeconfig", str(bootstrap or tree.root / "absent.conf"),
                     "--at", "+0s", *extra)  # judged now: the recordings are of 2026-12-01
    argv.remove("--offline")
    return run_in_process(argv, capsys)


def _found(run: Run) -> dict[str, dict[str, Any]]:
    return {f["code"]: f for f in json.loads(run.out)["findings"]}


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return healthy_node(tmp_path / "node", at=clock.utcnow())


class TestRenewalAuthorization:
    def test_allowed_is_quiet(self, tree: Tree, kube_api: KubeApi,
                              capsys: pytest.CaptureFixture[str]) -> None:
        run = _check(tree, kube_api, capsys)
        doc = json.loads(run.out)
        assert doc["api"]["renewal_review"]["allowed"] is True
        assert codes.CLIENT_RENEWAL_NOT_AUTHORIZED not in _found(run)
        [ssar] = kube_api.requests("ssar")
        assert ssar.method == "POST" and ssar.client_cn == "system:node:node1"

    def test_denied_names_the_binding_to_create(self, tree: Tree, kube_api: KubeApi,
                                                capsys: pytest.CaptureFixture[str]) -> None:
        kube_api.script("ssar", recorded("ssar-node1-selfnodeclient-denied.json"))
        finding = _found(_check(tree, kube_api, capsys))[codes.CLIENT_RENEWAL_NOT_AUTHORIZED]
        assert finding["severity"] == "warning"
        assert ("kubectl create clusterrolebinding kubeadm:node-autoapprove-certificate-"
                "rotation --clusterrole=system:certificates.k8s.io:certificatesigningrequests:"
                "selfnodeclient --group=system:nodes") in finding["message"]


class TestClientCsrs:
    def test_a_pending_renewal_is_reported(self, tree: Tree, kube_api: KubeApi,
                                           capsys: pytest.CaptureFixture[str]) -> None:
        """list-node1-client-signer.json: csr-w58st Pending since 2026-12-01T20:35."""
        run = _check(tree, kube_api, capsys, "--csr-stale-after", "60")
        finding = _found(run)[codes.CLIENT_CSR_PENDING]
        assert "csr-w58st" in finding["message"] and finding["severity"] == "warning"
        assert [c["name"] for c in json.loads(run.out)["api"]["client_csrs"]] == ["csr-w58st"]
        [listed] = kube_api.requests("client-list")
        assert listed.query["fieldSelector"] == (
            "spec.signerName=kubernetes.io/kube-apiserver-client-kubelet")

    def test_newest_issued_renewal_counts(self, tree: Tree, kube_api: KubeApi,
                                          capsys: pytest.CaptureFixture[str]) -> None:
        """The pending csr-w58st was issued once kube-controller-manager ran; csr-fnjqn too."""
        items = [fixture_json("get-node1-client-renewal-pending-after-kcm.json"),
                 fixture_json("get-node1-client-renewal-approved-issued.json")]
        kube_api.script("client-list", list_reply(items, "240"))
        run = _check(tree, kube_api, capsys, "--csr-stale-after", "60")
        assert not {c for c in _found(run) if c.startswith("CLIENT_CSR_")}

    def test_a_denied_renewal(self, tree: Tree, kube_api: KubeApi,
                              capsys: pytest.CaptureFixture[str]) -> None:
        kube_api.script("client-list", list_reply([fixture_json("get-node1-denied.json")], "9"))
        finding = _found(_check(tree, kube_api, capsys))[codes.CLIENT_CSR_DENIED]
        assert "csr-9g5tr" in finding["message"]

    def test_another_nodes_bootstrap_csr_is_not_ours(self, tree: Tree, kube_api: KubeApi,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
        kube_api.script("client-list", recorded("list-admin-signer-client-kubelet.json"))
        doc = json.loads(_check(tree, kube_api, capsys).out)
        assert {c["name"] for c in doc["api"]["client_csrs"]} <= {"csr-9g5tr"}


class TestBootstrap:
    def test_absent_is_info(self, tree: Tree, kube_api: KubeApi,
                            capsys: pytest.CaptureFixture[str]) -> None:
        kube_api.script("node", recorded("get-node2-node-as-node1.json"))  # nothing else to say
        kube_api.script("client-list", list_reply([], "226"))
        kube_api.script("list", list_reply([], "226"))
        run = _check(tree, kube_api, capsys)
        assert _found(run)[codes.BOOTSTRAP_KUBECONFIG_ABSENT]["severity"] == "info"
        assert list(_found(run)) == [codes.BOOTSTRAP_KUBECONFIG_ABSENT] and run.code == 0

    def test_a_valid_token_is_quiet(self, tree: Tree, kube_api: KubeApi,
                                    capsys: pytest.CaptureFixture[str]) -> None:
        run = _check(tree, kube_api, capsys, bootstrap=_bootstrap(tree, kube_api))
        bootstrap = json.loads(run.out)["api"]["bootstrap"]
        assert bootstrap["outcome"] == "valid"
        assert bootstrap["username"] == "system:bootstrap:abcdef"
        assert not {c for c in _found(run) if c.startswith("BOOTSTRAP_")}
        [review] = kube_api.requests("bootstrap-review")
        assert review.bearer and review.client_cn is None

    @pytest.mark.parametrize("recording", ["ssr-bootstrap-expired-401.json",
                                           "ssr-bootstrap-unknown-401.json"])
    def test_a_rejected_token_warns_and_never_shows(
            self, tree: Tree, kube_api: KubeApi, capsys: pytest.CaptureFixture[str],
            recording: str) -> None:
        kube_api.script("bootstrap-review", recorded(recording))
        with capture_logs() as logs:
            run = _check(tree, kube_api, capsys, bootstrap=_bootstrap(tree, kube_api))
        finding = _found(run)[codes.BOOTSTRAP_CREDENTIALS_INVALID]
        assert finding["severity"] == "warning" and "401" in finding["message"]
        for text in (run.out, run.err, repr(logs)):
            assert TOKEN not in text and "0123456789abcdef" not in text

    def test_a_token_the_server_does_not_know(self, tree: Tree, kube_api: KubeApi,
                                              capsys: pytest.CaptureFixture[str]) -> None:
        run = _check(tree, kube_api, capsys,
                     bootstrap=_bootstrap(tree, kube_api, "unk000.0123456789abcdef"))
        assert codes.BOOTSTRAP_CREDENTIALS_INVALID in _found(run)
        assert "unk000" not in run.out


class TestNodeAddresses:
    def test_an_internal_ip_missing_from_the_serving_cert(
            self, tree: Tree, kube_api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
        """get-node1-node.json: InternalIP 10.0.0.11, Hostname node1; the cert has
        DNS:node1 and IP:127.0.0.1 only."""
        run = _check(tree, kube_api, capsys)
        finding = _found(run)[codes.SERVING_CERT_SANS_INCOMPLETE]
        assert "InternalIP 10.0.0.11" in finding["message"]
        assert "Hostname" not in finding["message"]
        assert json.loads(run.out)["api"]["node_addresses"] == [
            {"type": "InternalIP", "address": "10.0.0.11"},
            {"type": "Hostname", "address": "node1"}]
        assert kube_api.requests("node")[0].path == f"/api/v1/nodes/{NODE}"

    def test_a_forbidden_node_read_is_no_finding(
            self, tree: Tree, kube_api: KubeApi, capsys: pytest.CaptureFixture[str]) -> None:
        kube_api.script("node", recorded("get-node2-node-as-node1.json"))
        run = _check(tree, kube_api, capsys)
        assert codes.SERVING_CERT_SANS_INCOMPLETE not in _found(run)
        assert json.loads(run.out)["api"]["node_addresses"] is None


class TestMonitorChores:
    def test_chores_run_after_a_success_then_on_their_periods(self, kube_api: KubeApi,
                                                               tmp_path: Path) -> None:
        calls = [-1]

        def virtual() -> float:  # every reading is 1,000 s after the previous one
            calls[0] += 1
            return 1000.0 * calls[0]

        updates: list[ApiState] = []
        settings: ApiSettings = kube_api.settings()
        lifeline = Lifeline(settings, NODE, clock.utcnow, None,
                            chores=Chores(rng=random.Random(1)))  # noqa: S311
        monitor = CsrMonitor(settings, NODE, clock.utcnow, updates.append,
                             monotonic=virtual, lifeline=lifeline)
        monitor.step()  # list + every chore, at t=0
        assert [len(kube_api.requests(k)) for k in ("ssar", "client-list", "node")] == [1, 1, 1]
        monitor.step()  # a watch that ran to its timeout (1,000 s), chores at t=3,000
        assert len(kube_api.requests("client-list")) == 2  # 5 min period
        assert len(kube_api.requests("ssar")) == 1 and len(kube_api.requests("node")) == 1
        monitor.step()  # chores at t=6,000
        assert len(kube_api.requests("node")) == 2  # hourly
        assert updates[-1].renewal_review is not None and updates[-1].node is not None
        assert updates[-1].bootstrap is None  # no bootstrap kubeconfig configured

    def test_no_chores_on_the_relists_of_a_reconnect(self, kube_api: KubeApi) -> None:
        """Watches that end early (as at an API server restart): no chore after them."""
        lifeline = Lifeline(kube_api.settings(), NODE, clock.utcnow, None)
        monitor = CsrMonitor(kube_api.settings(), NODE, clock.utcnow, lambda _: None,
                             monotonic=lambda: 0.0, lifeline=lifeline)
        monitor.step()  # the first list: every chore
        monitor.step()  # the recorded watch ends at once: an early end
        monitor.step()  # and again
        assert len(kube_api.requests("watch")) == 2
        assert len(kube_api.requests("client-list")) == 1 and len(kube_api.requests("ssar")) == 1

    def test_chores_wait_while_the_api_server_fails(self, kube_api: KubeApi) -> None:
        kube_api.script("list", recorded("list-bad-token-401.json"))
        lifeline = Lifeline(kube_api.settings(), NODE, clock.utcnow, None)
        monitor = CsrMonitor(kube_api.settings(), NODE, clock.utcnow, lambda _: None,
                             lifeline=lifeline)
        monitor.step()
        assert kube_api.requests("ssar") == [] and kube_api.requests("client-list") == []
        assert lifeline.chores.due(clock.monotonic()) == list(Task)


def test_bootstrap_outcomes_are_stable_values() -> None:
    assert {o.value for o in BootstrapOutcome} == {
        "absent", "certificate", "valid", "rejected", "unusable"}
    assert Severity.INFO.label == "info"
