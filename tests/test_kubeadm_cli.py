"""``check --kubeadm-dir`` against what kubeadm (and openssl) would say; the table's
kubeadm sections; --watch kubeconfigs and --watch-recursive; JSON, metrics, no leaks."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from agent import codes, kubeadm
from agent.checks import judge
from agent.config import ApiSettings, DaemonSettings, Settings
from agent.daemon.loop import Daemon
from agent.model import AgentState, Evaluation, Finding, Policy, Role, Severity
from agent.pkigen import issue
from agent.pkigen_kubeadm import YEAR, kubeconfig
from agent.sinks.jsonout import evaluation_to_dict
from agent.sinks.metrics import render
from agent.sinks.table import render_table
from agent.snapshot import build_snapshot, watch_plan
from tests.conftest import NOW, require_tool
from tests.kubeadmtree import NAMES, Plane
from tests.nodetree import run_in_process
from tests.secrets_scan import Marker, assert_no_key_material, key_markers

KUBEADM_DATE = "%b %d, %Y %H:%M UTC"


def _openssl_enddate(pem: bytes) -> datetime:
    """``openssl x509 -enddate -noout``: ``notAfter=Jan 10 09:03:00 2027 GMT``."""
    out = subprocess.run([require_tool("openssl"), "x509", "-enddate", "-noout"], input=pem,
                         capture_output=True, check=True, timeout=30).stdout.decode()
    stamp = out.strip().removeprefix("notAfter=")
    return datetime.strptime(" ".join(stamp.split()), "%b %d %H:%M:%S %Y GMT").replace(
        tzinfo=UTC)


def _pem_of(plane: Plane, name: str) -> bytes:
    """The certificate kubeadm reads for ``name``, straight from the file on disk."""
    raw = plane.path(name).read_bytes()
    if name.endswith(".conf"):
        user = yaml.safe_load(raw)["users"][0]["user"]
        return base64.b64decode(user["client-certificate-data"])
    return raw


def _kubeadm_rows(out: str) -> dict[str, list[str]]:
    """CONTROL PLANE and CERTIFICATE AUTHORITY rows of the table, split on 2+ spaces."""
    section = out.split("CONTROL PLANE (kubeadm, ", 1)[1].split("\nHISTORY", 1)[0]
    rows = {}
    for line in section.splitlines()[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] and cells[0] not in ("CERTIFICATE", "CERTIFICATE AUTHORITY"):
            rows[cells[0]] = cells
    return rows


def _args(plane: Plane, *extra: str, at: datetime = NOW) -> list[str]:
    return ["check", "--offline", "--cert-dir", str(plane.root.parent / "no-kubelet"),
            "--kubelet-config", "", "--node-name", "cp1", "--kubeadm-dir", str(plane.root),
            "--at", at.isoformat(), *extra]


class TestLikeKubeadm:
    def test_the_same_fourteen_rows_and_dates_as_kubeadm(
            self, plane: Plane, capsys: pytest.CaptureFixture[str]) -> None:
        """Names in kubeadm's order, EXPIRES as kubeadm formats openssl's notAfter,
        residual time and CA as kubeadm prints them."""
        run = run_in_process(_args(plane), capsys)
        rows = _kubeadm_rows(run.out)
        assert list(rows) == list(NAMES)
        for name in NAMES:
            end = _openssl_enddate(_pem_of(plane, name))
            cells = rows[name]
            assert cells[1] == end.strftime(KUBEADM_DATE), name
            assert cells[2] == kubeadm.residual(end - NOW), name
            if name in kubeadm.AUTHORITIES:
                assert cells[3:] == ["no", "ok"], name
            else:
                ca = next(leaf.ca for leaf in kubeadm.LEAVES if leaf.name == name)
                assert cells[3:] == [ca, "no", "ok"], name
        assert rows["admin.conf"][2] == "265d" and rows["ca"][2] == "9y"

    def test_missing_and_external_are_shown_as_kubeadm_shows_them(
            self, plane: Plane, capsys: pytest.CaptureFixture[str]) -> None:
        for name in ("etcd-peer", "etcd-server"):
            plane.path(name).unlink()
        (plane.root / "pki" / "ca.key").unlink()
        rows = _kubeadm_rows(run_in_process(_args(plane), capsys).out)
        assert rows["!MISSING! etcd-peer"][-1] == "missing"
        assert rows["apiserver"][4] == "yes" and rows["ca"][3] == "yes"
        assert rows["etcd-healthcheck-client"][4] == "no"

    def test_an_expired_certificate_exits_critical_with_the_remedy(
            self, plane: Plane, capsys: pytest.CaptureFixture[str]) -> None:
        run = run_in_process(_args(plane, at=NOW + timedelta(days=300)), capsys)
        assert run.code == 2
        rows = _kubeadm_rows(run.out)
        assert rows["apiserver"][2] == "<invalid>"
        assert rows["apiserver"][-1] == "expired"
        assert rows["ca"][-1] == "ok"
        assert "kubeadm certs renew scheduler.conf" in run.out

    def test_no_kubeadm_skips_it(self, plane: Plane,
                                 capsys: pytest.CaptureFixture[str]) -> None:
        run = run_in_process([*_args(plane), "--no-kubeadm"], capsys)
        assert "CONTROL PLANE" not in run.out


class TestTableRendersFindings:
    def test_state_column_comes_from_findings_not_the_certificates(self, plane: Plane
                                                                     ) -> None:
        """An injected finding shows; an expired file without a finding shows ``ok``."""
        snap = build_snapshot(plane.sources(), NOW)
        api_path = str(plane.path("apiserver"))
        injected = Finding(codes.KEY_MISMATCH, Severity.CRITICAL, "x", api_path)
        later = NOW + timedelta(days=400)  # everything expired, but no finding given
        rows = _kubeadm_rows(render_table(Evaluation(snap, later, (injected,))))
        assert rows["apiserver"][-1] == "key mismatch"
        assert rows["admin.conf"][-1] == "ok"


class TestWatchKubeconfigs:
    def test_a_kubeconfig_under_watch_is_judged_on_its_client_certificate(
            self, plane: Plane) -> None:
        """--watch /etc/kubernetes: kubeconfigs are no longer skipped or "garbage"."""
        snap = build_snapshot(plane.sources(kubeadm_dir=None, watch_paths=(plane.root,)), NOW)
        watched = {Path(c.path).name: c for c in snap.certs if c.role is Role.KUBECONFIG}
        assert set(watched) == {"admin.conf", "super-admin.conf", "controller-manager.conf",
                                "scheduler.conf"}
        assert all(c.leaf is not None and c.read_error is None for c in watched.values())

    def test_an_expired_watched_kubeconfig_is_expired(self, plane: Plane) -> None:
        ev = judge(build_snapshot(plane.sources(
            kubeadm_dir=None, watch_paths=(plane.path("scheduler.conf"),)), NOW),
            NOW + timedelta(days=300), Policy())
        found = [f for f in ev.findings if f.path == str(plane.path("scheduler.conf"))]
        assert [f.code for f in found] == [codes.CERT_EXPIRED]
        assert "kubeconfig" in found[0].message

    def test_a_watched_kubeconfigs_ca_is_judged_too(self, plane: Plane) -> None:
        """The cluster CA embedded in a kubeconfig expires like any CA file."""
        old_ca = issue("kubernetes", usage="ca", key_type="ec", not_before=NOW - timedelta(400),
                       not_after=NOW - timedelta(days=3))
        conf = plane.path("scheduler.conf")
        conf.write_bytes(kubeconfig("system:kube-scheduler", old_ca,
                                    plane.plane.leaves["scheduler.conf"]))
        ev = judge(build_snapshot(plane.sources(kubeadm_dir=None, watch_paths=(conf,)), NOW),
                   NOW, Policy())
        assert [(f.code, f.path) for f in ev.findings if f.path and "scheduler" in f.path] == [
            (codes.CERT_EXPIRED, f"{conf}#certificate-authority-data")]

    def test_watch_recursive_reaches_pki_etcd(self, plane: Plane) -> None:
        sources = plane.sources(kubeadm_dir=None, watch_recursive=(plane.root,))
        snap = build_snapshot(sources, NOW)
        paths = {c.path for c in snap.certs}
        assert str(plane.root / "pki" / "etcd" / "peer.crt") in paths
        assert str(plane.path("admin.conf")) in paths
        assert not any(p.endswith(".key") for p in paths)
        dirs, _paths, whole = watch_plan(snap, sources)
        assert str(plane.root / "pki" / "etcd") in dirs and str(plane.root / "pki") in whole

    def test_the_daemon_watches_every_kubeadm_directory(self, plane: Plane) -> None:
        """`kubeadm certs renew` rewrites files in three directories: all are watched, and a
        missing file's path stays an input, so its creation is seen."""
        plane.path("etcd-peer").unlink()
        sources = plane.sources()
        dirs, paths, _whole = watch_plan(build_snapshot(sources, NOW), sources)
        assert {str(plane.root), str(plane.root / "pki"), str(plane.root / "pki" / "etcd")} <= dirs
        assert str(plane.path("etcd-peer")) in paths
        assert str(plane.root / "pki" / "etcd" / "peer.key") in paths

    def test_watch_without_recursive_does_not_descend(self, plane: Plane) -> None:
        snap = build_snapshot(plane.sources(kubeadm_dir=None, watch_paths=(plane.root,)), NOW)
        assert not any("/pki/" in c.path for c in snap.certs)


class TestSinks:
    def test_json_names_and_roles(self, plane: Plane) -> None:
        doc = evaluation_to_dict(plane.evaluate())
        kube = [c for c in doc["certificates"] if c["kubeadm_name"]]
        assert [c["kubeadm_name"] for c in kube] == list(NAMES)
        assert {c["role"] for c in kube} == {"kubeadm", "kubeadm-ca"}
        assert doc["kubeadm_dir"] == str(plane.root)

    def test_metrics_role_and_name(self, plane: Plane) -> None:
        text = render(AgentState(plane.evaluate())).decode()
        admin = str(plane.path("admin.conf"))

        def series(name: str) -> list[str]:
            return [line for line in text.splitlines()
                    if line.startswith(f"kubelet_cert_agent_{name}{{")]
        ends = series("certificate_not_after_timestamp_seconds")
        assert any('role="kubeadm"' in s and f'path="{admin}"' in s for s in ends)
        assert sum('role="kubeadm-ca"' in s for s in ends) == 3
        info = series("kubeadm_certificate_info")
        assert len(info) == 14
        assert any('name="admin.conf"' in s and f'path="{admin}"' in s for s in info)
        assert not any("kubeadm" in s for s in series(
            "certificate_rotation_window_end_timestamp_seconds"))

    def test_no_key_material_in_any_output(self, plane: Plane) -> None:
        """Keys and the kubeconfigs' client-key-data never reach the table, JSON or metrics."""
        keys = [i.key for i in (*plane.plane.cas.values(), *plane.plane.leaves.values())]
        markers = list(key_markers(*keys))  # type: ignore[arg-type]
        for name in ("admin.conf", "scheduler.conf"):
            data = yaml.safe_load(plane.path(name).read_text())["users"][0]["user"]
            markers.append(Marker(f"{name} client-key-data", data["client-key-data"][:40]))
        plane.path("super-admin.conf").write_text("{{{ garbage")  # errors must not echo
        ev = plane.evaluate(at=NOW + timedelta(days=300))
        text = (render_table(ev) + json.dumps(evaluation_to_dict(ev))
                + render(AgentState(ev)).decode())
        assert_no_key_material(text, markers)


def test_a_ca_rotation_shows_the_current_ca_in_the_table(plane: Plane) -> None:
    retired = issue("kubernetes", usage="ca", key_type="ec", not_before=NOW - timedelta(3650),
                    not_after=NOW - timedelta(days=1))
    plane.plane.write_ca("ca", retired, plane.plane.cas["ca"])  # type: ignore[arg-type]
    rows = _kubeadm_rows(render_table(plane.evaluate()))
    assert rows["ca"][2] == "9y" and rows["ca"][-1] == "CA rotation in progress"


def test_the_control_plane_demo_warns_about_kubeadms_certificates(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``demo --control-plane`` then the command it prints: the eleven leaves warn."""
    demo_dir = tmp_path / "demo"
    wrote = run_in_process(["demo", str(demo_dir), "--control-plane"], capsys)
    assert wrote.code == 0
    command = wrote.out.strip().splitlines()[-1].split()
    assert command[:2] == ["kubelet-cert-agent", "check"] and "--kubeadm-dir" in command
    run = run_in_process(command[1:], capsys)
    assert run.code == 1
    rows = _kubeadm_rows(run.out)
    assert [name for name, cells in rows.items() if cells[-1] == "expiring soon"] == list(
        LEAF_NAMES)
    assert "kubeadm certs renew admin.conf" in run.out


LEAF_NAMES = tuple(leaf.name for leaf in kubeadm.LEAVES)


class TestDaemon:
    def _daemon(self, plane: Plane) -> Daemon:
        settings = Settings(sources=plane.sources(), api=ApiSettings(offline=True),
                            policy=Policy(), daemon=DaemonSettings())
        return Daemon(settings)

    def test_kubeadm_renew_clears_the_published_finding(self, plane: Plane) -> None:
        """What `kubeadm certs renew apiserver` does on disk, seen by the running agent."""
        apiserver = plane.path("apiserver")
        plane.plane.write_leaf("apiserver", plane.plane.issue_leaf(
            "apiserver", NOW - YEAR + timedelta(days=5)))
        daemon = self._daemon(plane)
        state = daemon.run_once(NOW)
        assert state is not None
        assert [(f.code, f.path) for f in state.evaluation.findings
                if f.path == str(apiserver)] == [(codes.CERT_EXPIRING_SOON, str(apiserver))]
        plane.plane.write_leaf("apiserver", plane.plane.issue_leaf("apiserver", NOW))
        state = daemon.run_once(NOW + timedelta(seconds=1), changed=[str(apiserver)])
        assert state is not None
        assert not [f for f in state.evaluation.findings if f.path == str(apiserver)]

    def test_a_kubeconfig_that_turns_to_garbage_keeps_its_last_good_certificate(
            self, plane: Plane) -> None:
        daemon = self._daemon(plane)
        daemon.run_once(NOW)
        admin = plane.path("admin.conf")
        admin.write_text("{{{ half-written")
        state = None
        for second in (1, 10):  # past the settle period
            state = daemon.run_once(NOW + timedelta(seconds=second), changed=[str(admin)])
        assert state is not None
        kept = next(c for c in state.evaluation.snapshot.certs if c.name == "admin.conf")
        assert kept.leaf is not None and kept.stale_since is not None
        assert codes.CERT_UNREADABLE in {f.code for f in state.evaluation.findings
                                         if f.path == str(admin)}
