"""Specification of agent.checks.files: missing, broken links, unreadable files and config."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from agent import codes
from agent.checks import evaluate, files, judge
from agent.config import SourceSettings
from agent.model import (
    CertFile,
    CsrState,
    KeyMatch,
    KubeletConfigInfo,
    LinkProblem,
    LinkState,
    Policy,
    ReadError,
    ReadProblem,
    Role,
    Severity,
    Snapshot,
)
from agent.sinks.table import render_table
from agent.snapshot import build_snapshot
from tests.snapshots import (
    CERT_DIR,
    CONFIG,
    NOW,
    anchor,
    api,
    broken_link,
    client,
    codes_of,
    config,
    csr,
    fallback,
    history,
    leaf,
    missing,
    only,
    plain,
    server,
    snapshot,
    via_updated,
)

UPDATED = {role: os.path.join(CERT_DIR, f"kubelet-{role.value}-updated.pem")
           for role in (Role.CLIENT, Role.SERVER)}


def check(snap: Snapshot) -> list[str]:
    return codes_of(list(files.check(snap, NOW, Policy())))


def unreadable(problem: ReadProblem, detail: str = "test detail") -> ReadError:
    return ReadError(problem, detail)


class TestMissing:
    def test_missing_client_is_critical(self) -> None:
        f = only(list(files.check(snapshot(missing(Role.CLIENT), server()), NOW, Policy())),
                 codes.CLIENT_CERT_MISSING)
        assert f.severity is Severity.CRITICAL
        assert f.path == os.path.join(CERT_DIR, "kubelet-client-current.pem")

    @pytest.mark.parametrize("role", [Role.CLIENT, Role.SERVER], ids=["client", "server"])
    def test_an_interrupted_swap_is_a_warning_and_judges_the_updated_generation(
            self, role: Role) -> None:
        """-current.pem missing, -updated.pem linking to a generation: SWAP_INTERRUPTED
        (warning), never *_CERT_MISSING, and the generation is judged (expired here)."""
        certs = [client(), server()]
        certs[0 if role is Role.CLIENT else 1] = via_updated(
            role, leaf(NOW - timedelta(days=30), NOW - timedelta(days=1),
                       dns_names=("node1",) if role is Role.SERVER else ()))
        snap = snapshot(*certs, cfg=config(server_tls_bootstrap=True))
        found = evaluate(snap, NOW, Policy())
        f = only(list(found), codes.SWAP_INTERRUPTED)
        assert f.severity is Severity.WARNING
        assert UPDATED[role] in f.message and "next start" in f.message
        assert codes.CERT_EXPIRED in codes_of(found)
        assert not {codes.CLIENT_CERT_MISSING, codes.SERVER_CERT_MISSING} & set(codes_of(found))

    def test_the_other_roles_swap_does_not_excuse_a_missing_link(self) -> None:
        snap = snapshot(missing(Role.CLIENT), server(), updated_links=(UPDATED[Role.SERVER],))
        assert check(snap) == [codes.CLIENT_CERT_MISSING]

    def test_missing_server_with_bootstrap_names_the_symptom_and_the_fix(self) -> None:
        f = only(list(files.check(snapshot(client(), missing(Role.SERVER)), NOW, Policy())),
                 codes.SERVER_CERT_MISSING)
        assert f.severity is Severity.CRITICAL
        assert "remote error: tls: internal error" in f.message
        assert "kubectl certificate approve <name>" in f.message

    def test_missing_server_names_the_newest_pending_csr_when_known(self) -> None:
        state = api(csr("csr-old", timedelta(hours=1)), csr("csr-new", timedelta(minutes=2)))
        snap = snapshot(client(), missing(Role.SERVER), api=state)
        f = only(list(files.check(snap, NOW, Policy())), codes.SERVER_CERT_MISSING)
        assert "`kubectl certificate approve csr-new`" in f.message

    def test_missing_server_never_names_an_abandoned_csr(self) -> None:
        """A Pending CSR behind a newer Denied one is abandoned: approving it does nothing."""
        state = api(csr("csr-new", timedelta(minutes=2)),
                    csr("csr-denied", timedelta(minutes=1), CsrState.DENIED))
        snap = snapshot(client(), missing(Role.SERVER), api=state)
        f = only(list(files.check(snap, NOW, Policy())), codes.SERVER_CERT_MISSING)
        assert "csr-new" not in f.message
        assert "`kubectl certificate approve <name>`" in f.message

    @pytest.mark.parametrize("cfg", [
        pytest.param(config(server_tls_bootstrap=False), id="bootstrap off"),
        pytest.param(KubeletConfigInfo(path=CONFIG, present=False), id="config unknown"),
    ])
    def test_missing_server_without_bootstrap_is_fine(self, cfg: KubeletConfigInfo) -> None:
        assert check(snapshot(client(), missing(Role.SERVER), fallback(), cfg=cfg)) == []

    def test_missing_served_kubelet_crt_is_fine(self) -> None:
        """The kubelet generates kubelet.crt at start."""
        gone = fallback(leaf=None, chain=(), read_error=unreadable(ReadProblem.NOT_FOUND))
        snap = snapshot(client(), missing(Role.SERVER), gone,
                        cfg=config(server_tls_bootstrap=False))
        assert check(snap) == []

    def test_missing_tls_cert_file_is_critical(self) -> None:
        tls = CertFile(Role.TLS_CERT_FILE, "/etc/kubelet/tls.crt",
                       read_error=unreadable(ReadProblem.NOT_FOUND, "no such file"))
        snap = snapshot(client(), missing(Role.SERVER), tls,
                        cfg=config(server_tls_bootstrap=False, tls_cert_file=tls.path))
        f = only(list(files.check(snap, NOW, Policy())), codes.CERT_UNREADABLE)
        assert (f.severity, f.path) == (Severity.CRITICAL, tls.path)


class TestLinks:
    @pytest.mark.parametrize(("problem", "words"), [
        pytest.param(LinkProblem.DANGLING, "does not exist", id="dangling"),
        pytest.param(LinkProblem.LOOP, "symlink loop", id="loop"),
        pytest.param(LinkProblem.NOT_REGULAR, "not a regular file", id="fifo or directory"),
    ])
    def test_broken_link_is_critical_and_names_its_target(self, problem: LinkProblem,
                                                          words: str) -> None:
        snap = snapshot(broken_link(Role.CLIENT, problem, "/var/lib/kubelet/pki/gone.pem"),
                        server(), history=(history(Role.CLIENT, newest="2026-01-01-00-00-00"),))
        f = only(list(files.check(snap, NOW, Policy())), codes.SYMLINK_BROKEN)
        assert f.severity is Severity.CRITICAL
        assert "-> /var/lib/kubelet/pki/gone.pem" in f.message
        assert words in f.message
        assert "ln -sfn /var/lib/kubelet/pki/kubelet-client-2026-01-01-00-00-00.pem" in f.message

    def test_broken_link_is_not_also_unreadable(self) -> None:
        link = broken_link(Role.SERVER, LinkProblem.DANGLING)
        assert check(snapshot(client(), link)) == [codes.SYMLINK_BROKEN]

    def test_regular_current_file_is_a_warning_and_still_judged(self) -> None:
        path = os.path.join(CERT_DIR, "kubelet-client-current.pem")
        plain_file = client(leaf(NOW - timedelta(days=400), NOW - timedelta(days=35)),
                            link=LinkState(path, False, resolved=path,
                                           problem=LinkProblem.NOT_A_LINK))
        snap = snapshot(plain_file, server())
        f = only(list(files.check(snap, NOW, Policy())), codes.CURRENT_NOT_SYMLINK)
        assert f.severity is Severity.WARNING
        assert "refuses to rotate" in f.message
        assert codes.CERT_EXPIRED in codes_of(evaluate(snap, NOW))


class TestUnreadable:
    @pytest.mark.parametrize("problem", [
        p for p in ReadProblem if p is not ReadProblem.NOT_FOUND])
    def test_every_read_problem_of_a_kubelet_file_is_critical(self,
                                                              problem: ReadProblem) -> None:
        bad = client(leaf=None, chain=(), read_error=unreadable(problem, "what went wrong"))
        f = only(list(files.check(snapshot(bad, server()), NOW, Policy())),
                 codes.CERT_UNREADABLE)
        assert f.severity is Severity.CRITICAL
        assert f"what went wrong ({problem.value})" in f.message
        assert "\n" not in f.message

    @pytest.mark.parametrize("cf", [
        pytest.param(plain(Role.WATCHED, "/etc/kubernetes/pki/x.crt", leaf=None, chain=(),
                           read_error=unreadable(ReadProblem.GARBAGE)), id="watched"),
        pytest.param(plain(Role.WATCHED, "/etc/kubernetes/pki/gone.crt", leaf=None, chain=(),
                           read_error=unreadable(ReadProblem.NOT_FOUND)), id="watched gone"),
        pytest.param(anchor(leaf=None, chain=(), read_error=unreadable(ReadProblem.EMPTY)),
                     id="trust anchor"),
    ])
    def test_watched_files_and_anchors_are_warnings(self, cf: CertFile) -> None:
        anchors = (cf,) if cf.role is Role.TRUST_ANCHOR else ()
        certs = (client(), server()) + (() if anchors else (cf,))
        f = only(list(files.check(snapshot(*certs, anchors=anchors), NOW, Policy())),
                 codes.CERT_UNREADABLE)
        assert (f.severity, f.path) == (Severity.WARNING, cf.path)

    def test_stale_file_says_since_when(self) -> None:
        stale = client(stale_since=NOW - timedelta(hours=3),
                       read_error=unreadable(ReadProblem.TRUNCATED, "PEM block never ends"))
        f = only(list(files.check(snapshot(stale, server()), NOW, Policy())),
                 codes.CERT_UNREADABLE)
        assert "last good copy, read at 2026-03-10T09:00:00Z" in f.message

    def test_stale_broken_link_says_since_when(self) -> None:
        link = broken_link(Role.CLIENT, LinkProblem.DANGLING)
        stale = client(link=link.link, stale_since=NOW - timedelta(hours=1))
        f = only(list(files.check(snapshot(stale, server()), NOW, Policy())),
                 codes.SYMLINK_BROKEN)
        assert "last good copy, read at 2026-03-10T11:00:00Z" in f.message

    def test_garbage_client_suggests_the_previous_generation(self) -> None:
        bad = client(leaf=None, chain=(), read_error=unreadable(ReadProblem.GARBAGE))
        snap = snapshot(bad, server(), history=(history(Role.CLIENT),))
        f = only(list(files.check(snap, NOW, Policy())), codes.CERT_UNREADABLE)
        assert f"ln -sfn {snap.history[0].previous_path} {bad.path}" in f.message

    def test_permission_denied_asks_for_read_access(self) -> None:
        bad = client(leaf=None, chain=(), read_error=unreadable(ReadProblem.PERMISSION_DENIED))
        f = only(list(files.check(snapshot(bad, server()), NOW, Policy())),
                 codes.CERT_UNREADABLE)
        assert "read access" in f.message

    def test_unparsable_key_is_unreadable_on_the_key_path(self) -> None:
        crt = fallback(key_match=KeyMatch.UNREADABLE,
                       key_error=unreadable(ReadProblem.GARBAGE, "not a PEM key"))
        snap = snapshot(client(), missing(Role.SERVER), crt,
                        cfg=config(server_tls_bootstrap=False))
        f = only(list(files.check(snap, NOW, Policy())), codes.CERT_UNREADABLE)
        assert (f.severity, f.path) == (Severity.CRITICAL, crt.key_path)
        assert "private key" in f.message

    def test_leftover_kubelet_crt_is_not_judged(self) -> None:
        bad = fallback(leaf=None, chain=(), read_error=unreadable(ReadProblem.EMPTY))
        assert check(snapshot(client(), server(), bad)) == []


class TestKubeletConfig:
    def test_unreadable_config_is_a_warning(self) -> None:
        cfg = KubeletConfigInfo(path=CONFIG, present=True,
                                error=unreadable(ReadProblem.GARBAGE, "not YAML at line 3"))
        f = only(list(files.check(snapshot(cfg=cfg), NOW, Policy())),
                 codes.KUBELET_CONFIG_UNREADABLE)
        assert (f.severity, f.path) == (Severity.WARNING, CONFIG)
        assert "not YAML at line 3" in f.message
        assert "--kubelet-config" in f.message

    def test_healthy_node_has_no_file_findings(self) -> None:
        assert check(snapshot(anchors=(anchor(),))) == []


class TestAbsentCertDir:
    """A cert dir that does not exist: the finding says so, not just "link missing"."""

    def test_the_client_finding_says_the_directory_is_absent(self, tmp_path: Path) -> None:
        sources = SourceSettings(cert_dir=tmp_path / "no-such-dir", kubelet_config=None,
                                 node_name="node1")
        snap = build_snapshot(sources, NOW, None)
        assert snap.cert_dir_error is not None
        assert snap.cert_dir_error.problem is ReadProblem.NOT_FOUND
        f = only(list(files.check(snap, NOW, Policy())), codes.CLIENT_CERT_MISSING)
        assert f"the cert dir {tmp_path / 'no-such-dir'} does not exist" in f.message
        assert "--cert-dir" in f.message
        assert "(absent)" in render_table(judge(snap, NOW)).splitlines()[0]

    def test_an_existing_dir_without_the_link_is_just_missing(self, tmp_path: Path) -> None:
        sources = SourceSettings(cert_dir=tmp_path, kubelet_config=None, node_name="node1")
        snap = build_snapshot(sources, NOW, None)
        assert snap.cert_dir_error is None
        f = only(list(files.check(snap, NOW, Policy())), codes.CLIENT_CERT_MISSING)
        assert "does not exist" not in f.message
