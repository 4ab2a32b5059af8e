"""Every recorded kube-apiserver response (tests/fixtures/kube-api/) through the parser."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.kubelet import CLIENT_SIGNER, RENEWAL_BINDING, RENEWAL_ROLE
from agent.model import ApiProblem, CsrState
from agent.sources.apiparse import (
    ShapeError,
    classify_status,
    csr_from_object,
    is_node_serving,
    load_json,
    parse_identity,
    parse_list,
    parse_watch_line,
)
from agent.sources.lifeline import parse_access_review, parse_node_addresses
from tests.kubeapi import FIXTURES, fixture_files, recorded

# Every state each CSR of the recording goes through (README: names and sequence).
LIFECYCLE = {
    "csr-rz44z": {CsrState.PENDING, CsrState.APPROVED, CsrState.ISSUED},
    "csr-7rkkl": {CsrState.PENDING},
    "csr-2tfqn": {CsrState.PENDING},
    "csr-9qxds": {CsrState.PENDING, CsrState.APPROVED, CsrState.FAILED},
    "csr-9g5tr": {CsrState.PENDING, CsrState.DENIED},
    "node-csr-RSxIUSnVXcTWDF-jEt6bzscxvFmcWg4gxC3vSV1mvSg": {
        CsrState.PENDING, CsrState.APPROVED, CsrState.ISSUED},
    "fixture-alice-client": {CsrState.PENDING},
    # 2026-12-01: node1's client renewals, Pending until kube-controller-manager ran
    "csr-w58st": {CsrState.PENDING, CsrState.APPROVED, CsrState.ISSUED},
    "csr-9g864": {CsrState.PENDING, CsrState.APPROVED, CsrState.ISSUED},
    "csr-fnjqn": {CsrState.PENDING, CsrState.APPROVED, CsrState.ISSUED},
}
IDENTITIES = {
    "selfsubjectreview-node1.json": ("system:node:node1",
                                     ("system:nodes", "system:authenticated")),
    "ssr-bootstrap-valid.json": ("system:bootstrap:abcdef", (
        "system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
        "system:authenticated")),
}
ERROR_PROBLEM = {401: ApiProblem.AUTH_FAILED, 403: ApiProblem.FORBIDDEN,
                 400: ApiProblem.BAD_RESPONSE, 404: ApiProblem.BAD_RESPONSE,
                 409: ApiProblem.BAD_RESPONSE}
NOT_A_CSR_LIST = {"Table", "PartialObjectMetadataList", "Status", "APIResourceList",
                  "SelfSubjectReview", "SelfSubjectAccessReview", "CertificateSigningRequest",
                  "ClusterRoleBinding", "Node"}


def _check_stream(path: Path) -> None:
    for line in path.read_bytes().splitlines():
        event = parse_watch_line(line)
        assert event.type in {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"}
        if event.type == "BOOKMARK":
            assert event.csr is None and event.resource_version
        elif event.type == "ERROR":
            assert event.status is not None
            assert classify_status(event.status["code"], line).gone
        else:
            assert event.csr is not None and event.csr.request_error is None
            assert event.csr.state in LIFECYCLE[event.csr.name]


def _check_document(path: Path) -> None:
    status = recorded(path.name).status
    body = path.read_bytes()
    kind = load_json(body).get("kind")
    if status >= 400:
        failure = classify_status(status, body)
        assert failure.gone if status == 410 else failure.problem is ERROR_PROBLEM[status]
        return
    if kind == "CertificateSigningRequestList":
        for csr in parse_list(body).items:
            assert csr.request_error is None and csr.state in LIFECYCLE[csr.name]
        return
    assert kind in NOT_A_CSR_LIST
    with pytest.raises(ShapeError):  # becomes BAD_RESPONSE, never a crash
        parse_list(body)
    if kind == "CertificateSigningRequest":
        csr = csr_from_object(load_json(body))
        assert csr.request_error is None and csr.state in LIFECYCLE[csr.name]
    if kind == "SelfSubjectReview":
        assert parse_identity(body) == IDENTITIES[path.name]
    if kind == "SelfSubjectAccessReview":
        allowed, reason = parse_access_review(load_json(body))
        assert allowed or reason == ""  # a denial never carries a reason
    if kind == "Node":
        assert ("InternalIP", "10.0.0.1" + path.name[len("create-node")]) in \
            parse_node_addresses(load_json(body)) or path.name == "get-node1-node.json"


@pytest.mark.parametrize("path", list(fixture_files()), ids=lambda p: p.name)
def test_every_recorded_response_is_understood(path: Path) -> None:
    """CSR lists and objects give CsrInfo in a state the recording allows, watch streams
    give events, Status bodies the right problem, other kinds are refused as a list."""
    if path.suffix == ".jsonl":
        _check_stream(path)
    else:
        _check_document(path)


def _states(name: str, node: str = "node1") -> dict[str, CsrState]:
    page = parse_list((FIXTURES / name).read_bytes())
    return {c.name: c.state for c in page.items if is_node_serving(c, node)}


class TestRecordedStates:
    def test_a_node_list_filtered_to_node1_serving(self) -> None:
        """node1 sees all seven CSRs; only its four serving ones are kept."""
        assert _states("list-node1.json") == {
            "csr-rz44z": CsrState.APPROVED, "csr-7rkkl": CsrState.PENDING,
            "csr-2tfqn": CsrState.PENDING, "csr-9qxds": CsrState.APPROVED}

    def test_after_the_signer_ran(self) -> None:
        """After kube-controller-manager: rz44z issued, 9qxds failed, two still pending."""
        assert _states("list-node1-signer-kubelet-serving-after-kcm.json") == {
            "csr-rz44z": CsrState.ISSUED, "csr-7rkkl": CsrState.PENDING,
            "csr-2tfqn": CsrState.PENDING, "csr-9qxds": CsrState.FAILED}

    def test_the_newest_pending_is_csr_2tfqn(self) -> None:
        """Of the two pending serving CSRs, csr-2tfqn is the newer (the one still wanted)."""
        page = parse_list((FIXTURES / "list-node1.json").read_bytes())
        pending = [c for c in page.items
                   if is_node_serving(c, "node1") and c.state is CsrState.PENDING]
        assert max(pending, key=lambda c: c.created).name == "csr-2tfqn"
        assert min(pending, key=lambda c: c.created).name == "csr-7rkkl"

    def test_the_failed_csr_carries_the_signers_reason_and_email_san(self) -> None:
        """csr-9qxds: Failed with the signer's reason, and the email SAN that caused it."""
        csr = csr_from_object(load_json((FIXTURES / "get-admin-failed.json").read_bytes()))
        assert csr.state is CsrState.FAILED
        assert csr.reason.startswith("SignerValidationFailure: Email subjectAltNames")
        assert any(s.startswith("email:") for s in csr.request_other_sans)
        assert csr.state_since == datetime(2026, 11, 22, 11, 27, 41, tzinfo=UTC)

    def test_the_denied_client_renewal_is_not_a_serving_csr(self) -> None:
        """csr-9g5tr is Denied, but it is a client CSR: never one of the node's serving CSRs."""
        csr = csr_from_object(load_json((FIXTURES / "get-node1-denied.json").read_bytes()))
        assert csr.state is CsrState.DENIED and csr.reason.startswith("KubectlDeny")
        assert not is_node_serving(csr, "node1")

    def test_approved_without_certificate(self) -> None:
        """Approved but not issued, since the approval's lastUpdateTime."""
        body = (FIXTURES / "get-node1-approved-not-issued.json").read_bytes()
        csr = csr_from_object(load_json(body))
        assert csr.state is CsrState.APPROVED
        assert csr.state_since == datetime(2026, 11, 22, 11, 26, 46, tzinfo=UTC)

    def test_request_subject_and_sans_are_decoded(self) -> None:
        """spec.request gives the subject and the node's SANs."""
        csr = csr_from_object(load_json((FIXTURES / "get-node1-pending.json").read_bytes()))
        assert csr.request_subject == "CN=system:node:node1,O=system:nodes"
        assert csr.request_dns_names == ("node1",)
        assert csr.request_ip_addresses == ("127.0.0.1",)

    def test_all_401_bodies_give_the_same_explanation(self) -> None:
        """Bad token, expired cert, cert from another CA: one 401, one message."""
        details = {classify_status(401, (FIXTURES / f).read_bytes()).detail
                   for f in ("list-bad-token-401.json", "list-node1-expired-cert-401.json",
                             "list-node1-untrusted-ca-cert-401.json")}
        assert len(details) == 1
        assert "expired" in details.pop()

    def test_403_names_the_missing_permission(self) -> None:
        """A 403 quotes the server and says which RBAC verbs are needed."""
        failure = classify_status(403, (FIXTURES / "list-anonymous-403.json").read_bytes())
        assert 'cannot list resource "certificatesigningrequests"' in failure.detail
        assert "get, list and watch" in failure.detail

    def test_initial_events_end_bookmark_is_recognised(self) -> None:
        """Watch-list ends its initial ADDED events with an annotated BOOKMARK."""
        lines = (FIXTURES / "watchlist-node1-serving-initial-events.jsonl").read_bytes()
        events = [parse_watch_line(line) for line in lines.splitlines()]
        marks = [e for e in events if e.initial_events_end]
        assert len(marks) == 1 and marks[0].type == "BOOKMARK"
        assert [e.type for e in events[:events.index(marks[0])]] == ["ADDED"] * 4

    def test_the_misspelled_allowbookmarks_stream_has_no_bookmark(self) -> None:
        """allowBookmarks is silently ignored by the server: no BOOKMARK at all."""
        lines = (FIXTURES / "watchlist-node1-serving-misspelled-allowBookmarks.jsonl")
        events = [parse_watch_line(x) for x in lines.read_bytes().splitlines()]
        assert events and all(e.type != "BOOKMARK" for e in events)


def _doc(name: str) -> dict[str, Any]:
    return load_json((FIXTURES / name).read_bytes())


def _client_renewals(name: str, node: str = "node1") -> dict[str, CsrState]:
    page = parse_list((FIXTURES / name).read_bytes())
    return {c.name: c.state for c in page.items
            if c.signer == CLIENT_SIGNER and c.username == f"system:node:{node}"}


class TestRecorded20261201:
    """One test per recording added on 2026-12-01 (README: 'Added 2026-12-01')."""

    def test_ssar_selfnodeclient_denied(self) -> None:
        """Before the binding: allowed false, no reason, no 'denied' field."""
        assert parse_access_review(_doc("ssar-node1-selfnodeclient-denied.json")) == (False, "")
        assert recorded("ssar-node1-selfnodeclient-denied.json").status == 201

    def test_ssar_selfnodeclient_allowed_names_the_binding(self) -> None:
        allowed, reason = parse_access_review(_doc("ssar-node1-selfnodeclient-allowed.json"))
        assert allowed
        assert '"kubeadm:node-autoapprove-certificate-rotation"' in reason

    def test_ssar_nodeclient_is_denied_to_nodes(self) -> None:
        """nodeclient is the bootstrap group's permission, not the node's."""
        assert parse_access_review(_doc("ssar-node1-nodeclient.json"))[0] is False

    def test_the_binding_kubeadm_creates(self) -> None:
        """The ClusterRoleBinding CLIENT_RENEWAL_NOT_AUTHORIZED tells the operator to make."""
        doc = _doc("create-crb-node-autoapprove-certificate-rotation-admin.json")
        assert doc["metadata"]["name"] == RENEWAL_BINDING
        assert doc["roleRef"]["name"] == RENEWAL_ROLE
        assert doc["subjects"] == [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                                    "name": "system:nodes"}]

    def test_ssr_with_a_valid_bootstrap_token(self) -> None:
        assert parse_identity((FIXTURES / "ssr-bootstrap-valid.json").read_bytes()) == \
            IDENTITIES["ssr-bootstrap-valid.json"]

    @pytest.mark.parametrize("name", ["ssr-bootstrap-expired-401.json",
                                      "ssr-bootstrap-unknown-401.json"])
    def test_ssr_with_an_expired_or_unknown_token_is_the_common_401(self, name: str) -> None:
        reply = recorded(name)
        assert reply.status == 401
        assert reply.body == (FIXTURES / "list-bad-token-401.json").read_bytes()
        assert classify_status(401, reply.body).problem is ApiProblem.AUTH_FAILED

    @pytest.mark.parametrize(("name", "address"), [("create-node1-node-admin.json", "10.0.0.11"),
                                                   ("create-node2-node-admin.json", "10.0.0.12")])
    def test_created_nodes_keep_their_addresses(self, name: str, address: str) -> None:
        assert ("InternalIP", address) in parse_node_addresses(_doc(name))

    def test_a_node_reads_its_own_addresses(self) -> None:
        assert parse_node_addresses(_doc("get-node1-node.json")) == (
            ("InternalIP", "10.0.0.11"), ("Hostname", "node1"))

    def test_a_node_reading_another_node_is_forbidden(self) -> None:
        failure = classify_status(403, (FIXTURES / "get-node2-node-as-node1.json").read_bytes())
        assert failure.problem is ApiProblem.FORBIDDEN
        assert "only its own Node object" in failure.detail

    @pytest.mark.parametrize("name", ["create-client-kubelet-node1-renewal-pending.json",
                                      "create-client-kubelet-node1-renewal-during-watch.json",
                                      "create-client-kubelet-node1-renewal-with-kcm.json"])
    def test_client_renewal_creates_are_pending_client_csrs(self, name: str) -> None:
        csr = csr_from_object(_doc(name))
        assert csr.state is CsrState.PENDING and csr.signer == CLIENT_SIGNER
        assert csr.username == "system:node:node1" and not is_node_serving(csr, "node1")
        assert csr.request_subject == "CN=system:node:node1,O=system:nodes"

    def test_list_of_client_renewals(self) -> None:
        assert _client_renewals("list-node1-client-signer.json") == {
            "csr-w58st": CsrState.PENDING}
        assert parse_list((FIXTURES / "list-node1-client-signer.json").read_bytes()
                          ).resource_version == "226"

    def test_watch_of_client_renewals(self) -> None:
        lines = (FIXTURES / "watch-node1-client-signer.jsonl").read_bytes().splitlines()
        events = [parse_watch_line(line) for line in lines]
        assert [e.type for e in events] == ["ADDED", "BOOKMARK", "BOOKMARK"]
        assert events[0].csr is not None and events[0].csr.name == "csr-9g864"
        assert events[1].resource_version == events[2].resource_version == "231"

    @pytest.mark.parametrize("name", ["get-node1-client-renewal-approved-issued.json",
                                      "get-node1-client-renewal-pending-after-kcm.json"])
    def test_renewals_are_issued_once_the_controller_runs(self, name: str) -> None:
        csr = csr_from_object(_doc(name))
        assert csr.state is CsrState.ISSUED
        assert csr.reason.startswith("AutoApproved: Auto approving self kubelet client")
