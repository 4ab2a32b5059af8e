"""Every recorded kube-apiserver response (tests/fixtures/kube-api/) through the parser."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

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
}
ERROR_PROBLEM = {401: ApiProblem.AUTH_FAILED, 403: ApiProblem.FORBIDDEN,
                 400: ApiProblem.BAD_RESPONSE, 404: ApiProblem.BAD_RESPONSE,
                 409: ApiProblem.BAD_RESPONSE}
NOT_A_CSR_LIST = {"Table", "PartialObjectMetadataList", "Status", "APIResourceList",
                  "SelfSubjectReview", "SelfSubjectAccessReview", "CertificateSigningRequest"}


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
        assert parse_identity(body) == ("system:node:node1",
                                        ("system:nodes", "system:authenticated"))


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
