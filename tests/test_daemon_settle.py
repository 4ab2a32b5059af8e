"""The settle rule on hand-built evaluations (pure: no files, no clock)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from agent import codes
from agent.daemon.settle import Settler, changed_paths
from agent.model import (
    CertFile,
    CertInfo,
    Evaluation,
    Finding,
    KubeletConfigInfo,
    LinkProblem,
    LinkState,
    ReadError,
    ReadProblem,
    Role,
    Severity,
)
from tests.snapshots import cert, evaluation, snapshot

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LINK = "/pki/kubelet-client-current.pem"
OLD = "/pki/kubelet-client-2026-01-01-00-00-00.pem"
NEW = "/pki/kubelet-client-2026-11-23-12-00-00.pem"
SETTLE = timedelta(seconds=2)


def leaf(serial: str) -> CertInfo:
    return cert(T0 - timedelta(days=10), T0 + timedelta(days=355), subject="CN=system:node:n1",
                serial=serial, fingerprint_sha256=serial * 8)


def linked(target: str | None = OLD, serial: str | None = "aa") -> CertFile:
    problem = None if target else LinkProblem.MISSING
    return CertFile(role=Role.CLIENT, path=LINK, target=target,
                    link=LinkState(LINK, is_symlink=target is not None, target=target,
                                   resolved=target, problem=problem),
                    leaf=leaf(serial) if serial else None)


def ev(seconds: float, file: CertFile, *findings: Finding) -> Evaluation:
    snap = snapshot(file, taken_at=T0, node_name="n1", cert_dir="/pki",
                    cfg=KubeletConfigInfo(path=None), anchors=())
    return evaluation(snap, *findings, now=T0 + timedelta(seconds=seconds))


MISSING = Finding(codes.CLIENT_CERT_MISSING, Severity.CRITICAL, "no client cert", LINK)
SOON = Finding(codes.CERT_EXPIRING_SOON, Severity.WARNING, "expires soon", LINK)
API = Finding(codes.APISERVER_UNREACHABLE, Severity.WARNING, "api down", None)


class TestSettler:
    def test_the_first_evaluation_is_published_as_it_is(self) -> None:
        raw = ev(0, linked(None, None), MISSING)
        assert Settler(SETTLE).apply(raw, None, [LINK]).findings == (MISSING,)

    def test_a_bad_verdict_on_a_changed_path_waits_for_the_settle_period(self) -> None:
        settler = Settler(SETTLE)
        published = settler.apply(ev(0, linked()), None)
        for second in (0.0, 1.0, 1.99):
            raw = ev(second, linked(None, None), MISSING)
            published = settler.apply(raw, published, [LINK] if second == 0 else [])
            assert published.findings == ()
            assert published.snapshot.certs == (linked(),)  # the previous file stays
        assert settler.deadline() == T0 + SETTLE
        published = settler.apply(ev(2.0, linked(None, None), MISSING), published)
        assert published.findings == (MISSING,)
        assert settler.deadline() is None

    def test_a_bad_verdict_on_an_unchanged_path_is_published_at_once(self) -> None:
        settler = Settler(SETTLE)
        published = settler.apply(ev(0, linked()), None)
        published = settler.apply(ev(1, linked(), SOON), published)
        assert published.findings == (SOON,)

    def test_api_findings_are_never_held(self) -> None:
        settler = Settler(SETTLE)
        published = settler.apply(ev(0, linked()), None)
        assert settler.apply(ev(0.1, linked(), API), published, [LINK]).findings == (API,)

    def test_a_worse_verdict_is_held_and_the_milder_one_stays_meanwhile(self) -> None:
        settler = Settler(SETTLE)
        published = settler.apply(ev(0, linked(), SOON), None)
        worse = replace(SOON, severity=Severity.CRITICAL)
        assert settler.apply(ev(0.5, linked(), worse), published, [LINK]).findings == (SOON,)

    def test_good_news_on_a_changed_path_is_published_at_once(self) -> None:
        settler = Settler(SETTLE)
        published = settler.apply(ev(0, linked(), SOON), None)
        published = settler.apply(ev(0.1, linked(NEW, "bb")), published, [LINK, NEW])
        assert published.findings == ()
        assert published.snapshot.certs == (linked(NEW, "bb"),)

    @pytest.mark.parametrize("bad", [
        linked(None, None),
        replace(linked(), stale_since=T0, read_error=ReadError(ReadProblem.GARBAGE, "garbage")),
        linked("/pki/gone.pem", None),
    ], ids=["link-missing", "unreadable-kept-stale", "dangling"])
    def test_a_file_turning_bad_without_a_finding_is_held_too(self, bad: CertFile) -> None:
        settler = Settler(SETTLE)
        published = settler.apply(ev(0, linked()), None)
        assert settler.apply(ev(0.1, bad), published, [LINK]).snapshot.certs == (linked(),)
        assert settler.apply(ev(2.5, bad), published).snapshot.certs == (bad,)


class TestChangedPaths:
    @pytest.mark.parametrize(("before", "after", "expected"), [
        (linked(), linked(), set()),
        (linked(), linked(NEW, "bb"), {LINK, OLD, NEW}),
        (linked(), linked(None, None), {LINK, OLD}),
        (linked(), replace(linked(), read_error=ReadError(ReadProblem.EMPTY, "empty")),
         {LINK, OLD}),
    ], ids=["same", "new-target", "link-removed", "became-unreadable"])
    def test_which_paths_changed_between_two_snapshots(
            self, before: CertFile, after: CertFile, expected: set[str]) -> None:
        assert changed_paths(ev(0, before).snapshot, ev(1, after).snapshot) == expected

    def test_nothing_changed_before_the_first_snapshot(self) -> None:
        assert changed_paths(None, ev(0, linked()).snapshot) == frozenset()


class TestTimeDriven:
    def test_a_verdict_the_published_files_give_by_themselves_is_never_held(self) -> None:
        """The link changed 0.5 s ago, but the published certificate itself crossed its
        threshold now: that is time's doing, published at once."""
        settler = Settler(SETTLE)
        published = settler.apply(ev(0, linked()), None)
        settler.apply(ev(1, linked()), published, changed=[LINK])
        raw = ev(1.5, linked(), SOON)
        assert settler.apply(raw, published, expected=[SOON]).findings == (SOON,)
        assert settler.apply(raw, published).findings == ()  # without it: held (file event)
