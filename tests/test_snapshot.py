"""build_snapshot, merge_stale, input_paths and watch_dirs on real node trees."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from agent import pkigen
from agent.config import SourceSettings
from agent.model import ApiState, KeyMatch, LinkProblem, ReadProblem, Role
from agent.snapshot import build_snapshot, input_paths, merge_stale, watch_dirs
from tests.conftest import NOW


def settings(pki: pkigen.NodePki, **overrides: object) -> SourceSettings:
    base: dict[str, object] = {"cert_dir": pki.cert_dir,
                               "kubelet_config": pki.cert_dir.parent / "config.yaml",
                               "ca_files": (pki.ca_file,), "node_name": "node1"}
    return SourceSettings(**{**base, **overrides})  # type: ignore[arg-type]


class TestBuildSnapshot:
    def test_healthy_node_is_fully_inventoried(self, node_pki: pkigen.NodePki) -> None:
        """build_node(): client, server, kubelet.crt in order, trusted, keys matching, history."""
        snap = build_snapshot(settings(node_pki), NOW)
        assert snap.taken_at == NOW and snap.node_name == "node1"
        assert snap.cert_dir == str(node_pki.cert_dir)
        assert [c.role for c in snap.certs] == [Role.CLIENT, Role.SERVER, Role.SELF_SIGNED]
        client, server, fallback = snap.certs
        assert client.leaf is not None and server.leaf is not None
        assert client.leaf.serial == format(node_pki.client.cert.serial_number, "x")
        assert client.trusted is True and server.trusted is True
        assert client.key_match is KeyMatch.MATCH and server.key_match is KeyMatch.MATCH
        assert fallback.self_signed and fallback.trusted is False
        assert [a.path for a in snap.anchors] == [str(node_pki.ca_file)]
        assert [h.count for h in snap.history] == [3, 1]
        assert snap.kubelet_config.present is False and snap.updated_links == ()

    def test_api_state_is_carried_through(self, node_pki: pkigen.NodePki) -> None:
        """The ApiState passed in is the snapshot's api."""
        api = ApiState(server="https://127.0.0.1:6443")
        assert build_snapshot(settings(node_pki), NOW, api).api is api

    def test_config_adds_tls_cert_file_and_client_ca(self, node_pki: pkigen.NodePki,
                                                     tmp_path: Path) -> None:
        """tlsCertFile/tlsPrivateKeyFile and clientCAFile from the kubelet config are used."""
        tls = tmp_path / "tls"
        tls.mkdir()
        (tls / "tls.crt").write_bytes(node_pki.server.cert_pem())  # type: ignore[union-attr]
        (tls / "tls.key").write_bytes(node_pki.server.key_pem())  # type: ignore[union-attr]
        config = tmp_path / "config.yaml"
        config.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
                          "tlsCertFile: tls/tls.crt\ntlsPrivateKeyFile: tls/tls.key\n"
                          "authentication: {x509: {clientCAFile: ca.crt}}\n")
        snap = build_snapshot(settings(node_pki, kubelet_config=config, ca_files=()), NOW)
        tls_file = snap.certs[3]
        assert tls_file.role is Role.TLS_CERT_FILE and tls_file.path == str(tls / "tls.crt")
        assert tls_file.key_path == str(tls / "tls.key") and tls_file.key_match is KeyMatch.MATCH
        assert tls_file.trusted is True  # clientCAFile became the anchor
        assert [a.path for a in snap.anchors] == [str(node_pki.ca_file)]

    def test_same_anchor_twice_is_read_once(self, node_pki: pkigen.NodePki) -> None:
        """clientCAFile and --ca-file naming the same file give one anchor entry."""
        snap = build_snapshot(settings(node_pki, ca_files=(node_pki.ca_file, node_pki.ca_file)),
                              NOW)
        assert len(snap.anchors) == 1

    def test_watched_files_come_last_sorted_by_path(self, node_pki: pkigen.NodePki,
                                                    tmp_path: Path) -> None:
        """--watch entries follow the kubelet's own, sorted by path."""
        watch = tmp_path / "watch"
        watch.mkdir()
        for name in ("z.crt", "a.crt"):
            (watch / name).write_bytes(node_pki.ca.cert_pem())
        snap = build_snapshot(settings(node_pki, watch_paths=(watch,)), NOW)
        assert [c.role for c in snap.certs][3:] == [Role.WATCHED, Role.WATCHED]
        assert [Path(c.path).name for c in snap.certs[3:]] == ["a.crt", "z.crt"]

    @pytest.mark.parametrize("make", [
        pytest.param(lambda p: None, id="missing"),
        pytest.param(lambda p: p.write_text("not a dir"), id="a-file"),
        pytest.param(os.mkfifo, id="a-fifo"),
    ])
    def test_unusable_cert_dir_is_data_not_an_exception(self, tmp_path: Path,
                                                        make: object) -> None:
        """A cert dir that is missing, a file or a FIFO gives MISSING links, not a crash."""
        cert_dir = tmp_path / "pki"
        make(cert_dir)  # type: ignore[operator]
        snap = build_snapshot(SourceSettings(cert_dir=cert_dir, kubelet_config=None), NOW)
        assert [c.link.problem for c in snap.certs if c.link] == [LinkProblem.MISSING] * 2


class TestRebuild:
    def test_file_rewritten_in_place_with_the_same_size_is_read_again(
            self, node_pki: pkigen.NodePki, tmp_path: Path) -> None:
        """The parse cache never hides a change: same path, inode and size, new content."""
        watched = tmp_path / "watched.crt"
        pem = node_pki.ca.cert_pem()
        watched.write_bytes(pem)
        source = settings(node_pki, watch_paths=(watched,))
        assert build_snapshot(source, NOW).certs[-1].leaf is not None
        with watched.open("r+b") as f:  # same inode, same size, one character changed
            f.seek(len(pem) // 2)
            f.write(b"!")
        rebuilt = build_snapshot(source, NOW).certs[-1]
        assert rebuilt.leaf is None and rebuilt.read_error is not None
        assert rebuilt.read_error.problem is ReadProblem.BAD_CERTIFICATE

    def test_unchanged_files_give_equal_snapshots(self, node_pki: pkigen.NodePki) -> None:
        """Two builds of an unchanged tree are equal (cached or not)."""
        source = settings(node_pki)
        assert build_snapshot(source, NOW) == build_snapshot(source, NOW)


class TestMergeStale:
    def test_unreadable_current_keeps_last_good_leaf_marked_stale(
            self, node_pki: pkigen.NodePki) -> None:
        """The target emptied: the previous leaf is kept, stale since now, with the read error."""
        source = settings(node_pki)
        good = build_snapshot(source, NOW)
        node_pki.client_history[-1].write_bytes(b"")
        later = NOW + timedelta(minutes=1)
        merged = merge_stale(good, build_snapshot(source, later), later)
        client = merged.certs[0]
        assert client.leaf == good.certs[0].leaf and client.chain == good.certs[0].chain
        assert client.stale_since == later
        assert client.read_error is not None and client.read_error.problem is ReadProblem.EMPTY
        assert merged.certs[1] == build_snapshot(source, later).certs[1]  # untouched

    def test_stale_since_is_kept_across_merges(self, node_pki: pkigen.NodePki) -> None:
        """Still broken a minute later: stale_since stays at the first failure."""
        source = settings(node_pki)
        first = build_snapshot(source, NOW)
        (node_pki.cert_dir / "kubelet-client-current.pem").unlink()
        t1, t2 = NOW + timedelta(minutes=1), NOW + timedelta(minutes=2)
        stale1 = merge_stale(first, build_snapshot(source, t1), t1)
        stale2 = merge_stale(stale1, build_snapshot(source, t2), t2)
        assert stale2.certs[0].stale_since == t1 and stale2.certs[0].leaf is not None
        assert stale2.certs[0].link.problem is LinkProblem.MISSING  # type: ignore[union-attr]

    def test_recovery_clears_stale(self, node_pki: pkigen.NodePki) -> None:
        """Readable again: the fresh data replaces the stale copy."""
        source = settings(node_pki)
        current = node_pki.cert_dir / "kubelet-client-current.pem"
        target = os.readlink(current)
        first = build_snapshot(source, NOW)
        current.unlink()
        stale = merge_stale(first, build_snapshot(source, NOW), NOW)
        current.symlink_to(target)
        fresh = merge_stale(stale, build_snapshot(source, NOW), NOW)
        assert fresh.certs[0].stale_since is None and fresh.certs[0].link.problem is None  # type: ignore[union-attr]

    def test_no_previous_returns_current(self, node_pki: pkigen.NodePki) -> None:
        """The first snapshot has nothing to carry."""
        snap = build_snapshot(settings(node_pki), NOW)
        assert merge_stale(None, snap, NOW) is snap


class TestInputPaths:
    def test_link_targets_outside_the_cert_dir_are_inputs(self, node_pki: pkigen.NodePki,
                                                          tmp_path: Path) -> None:
        """A current link into another directory makes that file and directory watched."""
        outside = tmp_path / "store" / "client.pem"
        outside.parent.mkdir()
        outside.write_bytes(node_pki.client.cert_pem() + node_pki.client.key_pem())
        pkigen.kubelet_swap(node_pki.cert_dir, "client", outside)
        source = settings(node_pki)
        snap = build_snapshot(source, NOW)
        assert str(outside) in input_paths(snap, source)
        assert str(outside.parent) in watch_dirs(snap, source)

    def test_expected_files_are_inputs_even_when_missing(self, tmp_path: Path) -> None:
        """Links, -updated.pem, kubelet.crt/key, config, anchors: listed before they exist."""
        cert_dir = tmp_path / "pki"
        cert_dir.mkdir()
        source = SourceSettings(cert_dir=cert_dir, kubelet_config=tmp_path / "config.yaml",
                                ca_files=(tmp_path / "ca.crt",))
        paths = input_paths(build_snapshot(source, NOW), source)
        for name in ("kubelet-client-current.pem", "kubelet-server-updated.pem", "kubelet.crt",
                     "kubelet.key"):
            assert str(cert_dir / name) in paths
        assert {str(tmp_path / "config.yaml"), str(tmp_path / "ca.crt")} <= paths

    def test_previous_generation_and_key_files_are_inputs(self, node_pki: pkigen.NodePki) -> None:
        """The parsed previous generation and kubelet.key are inputs."""
        source = settings(node_pki)
        paths = input_paths(build_snapshot(source, NOW), source)
        assert str(node_pki.client_history[-2]) in paths
        assert str(node_pki.client_history[-1]) in paths

    def test_missing_directories_are_replaced_by_existing_ancestors(self, tmp_path: Path) -> None:
        """A cert dir not created yet is watched through its nearest existing parent."""
        source = SourceSettings(cert_dir=tmp_path / "var" / "lib" / "pki", kubelet_config=None,
                                watch_paths=(tmp_path,))
        dirs = watch_dirs(build_snapshot(source, NOW), source)
        assert str(tmp_path) in dirs
        assert not any(d.startswith(f"{tmp_path}/") for d in dirs)
