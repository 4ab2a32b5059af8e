"""The cert dir as the kubelet leaves it: links, swap states, reads, history, fallback."""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest

from agent import pkigen
from agent.model import KeyMatch, LinkProblem, ReadProblem, Role
from agent.sources.certdir import scan_cert_dir
from agent.sources.files import problem_for, read_file
from agent.sources.watched import load_watched
from tests.conftest import NOW

LIMIT = 1 << 20


def scan(cert_dir: Path, anchors: tuple[object, ...] = ()) -> object:
    return scan_cert_dir(str(cert_dir), anchors, LIMIT)  # type: ignore[arg-type]


def client_of(cert_dir: Path):  # type: ignore[no-untyped-def]
    return scan_cert_dir(str(cert_dir), (), LIMIT).certs[0]


@pytest.fixture
def rotated(node_pki: pkigen.NodePki) -> tuple[pkigen.NodePki, Path, pkigen.Issued]:
    """A node plus a freshly written client generation, not yet swapped in."""
    new = pkigen.kubelet_client(node_pki.ca, "node1", NOW)
    path = pkigen.write_generation(node_pki.cert_dir, "client", new, NOW)
    return node_pki, path, new


class TestSwapStates:
    @pytest.mark.parametrize(("stop_after", "current_serial", "updated"), [
        pytest.param(1, "old", False, id="1-stale-updated-removed"),
        pytest.param(2, "old", True, id="2-updated-link-created"),
        pytest.param(3, "new-via-updated", True, id="3-current-removed"),
        pytest.param(4, "new", False, id="4-renamed-into-place"),
    ])
    def test_each_step_of_the_kubelet_swap_is_recorded(
            self, rotated: tuple[pkigen.NodePki, Path, pkigen.Issued], stop_after: int,
            current_serial: str | None, updated: bool) -> None:
        """Every intermediate state shows what is current and whether -updated.pem exists."""
        pki, new_file, new = rotated
        pkigen.kubelet_swap(pki.cert_dir, "client", new_file, stop_after=stop_after)
        result = scan_cert_dir(str(pki.cert_dir), (), LIMIT)
        client = result.certs[0]
        updated_path = str(pki.cert_dir / "kubelet-client-updated.pem")
        assert (updated_path in result.updated_links) is updated
        expected = {"old": pki.client, "new": new, "new-via-updated": new}[current_serial]
        if current_serial == "new-via-updated":
            # -current.pem is gone: the generation -updated.pem links to is the live one
            # (the kubelet renames the link into place at its next start)
            assert client.path == str(pki.cert_dir / "kubelet-client-current.pem")
            assert client.link is not None and client.link.path == updated_path
        if expected is None:
            assert client.link is not None and client.link.problem is LinkProblem.MISSING
            assert client.leaf is None and client.read_error is None
        else:
            assert client.link is not None and client.link.problem is None
            assert client.leaf is not None
            assert client.leaf.serial == format(expected.cert.serial_number, "x")
            assert client.key_match is KeyMatch.MATCH


class TestLinks:
    def test_absolute_target_is_followed(self, node_pki: pkigen.NodePki) -> None:
        """The kubelet's absolute link: raw target kept, resolved to the generation file."""
        client = client_of(node_pki.cert_dir)
        assert client.link.is_symlink and os.path.isabs(client.link.target)
        assert client.target == str(node_pki.client_history[-1].resolve())

    def test_relative_target_is_followed(self, node_pki: pkigen.NodePki) -> None:
        """A relative link (hand-made) is resolved against the cert dir."""
        current = node_pki.cert_dir / "kubelet-client-current.pem"
        current.unlink()
        current.symlink_to(node_pki.client_history[-1].name)
        client = client_of(node_pki.cert_dir)
        assert client.link.target == node_pki.client_history[-1].name
        assert client.leaf is not None and client.link.problem is None

    def test_target_outside_cert_dir_is_followed(self, node_pki: pkigen.NodePki,
                                                 tmp_path: Path) -> None:
        """A link may point outside the cert dir; the resolved path says where."""
        outside = tmp_path / "elsewhere" / "client.pem"
        outside.parent.mkdir()
        outside.write_bytes(node_pki.client.cert_pem() + node_pki.client.key_pem())
        pkigen.kubelet_swap(node_pki.cert_dir, "client", outside)
        client = client_of(node_pki.cert_dir)
        assert client.target == str(outside) and client.key_match is KeyMatch.MATCH

    @pytest.mark.parametrize(("make", "problem"), [
        pytest.param(lambda d, c: c.symlink_to(d / "gone.pem"), LinkProblem.DANGLING,
                     id="dangling"),
        pytest.param(lambda d, c: (os.symlink(c, d / "a"), c.symlink_to(d / "a")),
                     LinkProblem.LOOP, id="loop"),
        pytest.param(lambda d, c: c.symlink_to("/dev/null"), LinkProblem.NOT_REGULAR,
                     id="dev-null-target"),
        pytest.param(lambda d, c: c.symlink_to(d), LinkProblem.NOT_REGULAR, id="dir-target"),
        pytest.param(lambda d, c: (os.mkfifo(d / "fifo"), c.symlink_to(d / "fifo")),
                     LinkProblem.NOT_REGULAR, id="fifo-target"),
        pytest.param(lambda d, c: os.mkfifo(c), LinkProblem.NOT_REGULAR, id="fifo-as-current"),
        pytest.param(lambda d, c: c.mkdir(), LinkProblem.NOT_REGULAR, id="dir-as-current"),
    ])
    def test_broken_links_are_classified_without_reading(self, tmp_path: Path, make: object,
                                                         problem: LinkProblem) -> None:
        """Dangling, looping and non-regular links get their problem and are never opened."""
        current = tmp_path / "kubelet-client-current.pem"
        make(tmp_path, current)  # type: ignore[operator]
        client = client_of(tmp_path)  # returns: a FIFO would block a naive open()
        assert client.link.problem is problem
        assert client.leaf is None and client.read_error is None

    def test_regular_file_is_not_a_link_but_still_read(self, tmp_path: Path) -> None:
        """A regular -current.pem is flagged NOT_A_LINK and its certificate is still reported."""
        issued = pkigen.kubelet_client(pkigen.cluster_ca(NOW), "node1", NOW)
        (tmp_path / "kubelet-client-current.pem").write_bytes(issued.cert_pem() + issued.key_pem())
        client = client_of(tmp_path)
        assert not client.link.is_symlink and client.link.problem is LinkProblem.NOT_A_LINK
        assert client.leaf is not None and client.key_match is KeyMatch.MATCH

    def test_missing_cert_dir_gives_missing_links(self, tmp_path: Path) -> None:
        """A cert dir that does not exist yet: both links MISSING, no history, no crash."""
        result = scan_cert_dir(str(tmp_path / "nope"), (), LIMIT)
        assert [c.link.problem for c in result.certs] == [LinkProblem.MISSING] * 2
        assert [h.count for h in result.history] == [0, 0]


class TestReadFile:
    def test_too_large_file_is_refused_without_reading_it(self, tmp_path: Path) -> None:
        """A file over the limit is TOO_LARGE, with its size, and no data."""
        big = tmp_path / "big.pem"
        big.write_bytes(b"A" * (LIMIT + 1))
        result = read_file(str(big), LIMIT)
        assert result.data is None and result.size == LIMIT + 1
        assert result.error is not None and result.error.problem is ReadProblem.TOO_LARGE

    def test_file_exactly_at_the_limit_is_read(self, tmp_path: Path) -> None:
        """The limit is inclusive."""
        edge = tmp_path / "edge.pem"
        edge.write_bytes(b"A" * LIMIT)
        assert read_file(str(edge), LIMIT).size == LIMIT

    def test_fifo_is_never_opened(self, tmp_path: Path) -> None:
        """A FIFO is NOT_REGULAR and the call returns (opening it would block)."""
        os.mkfifo(tmp_path / "fifo")
        error = read_file(str(tmp_path / "fifo"), LIMIT).error
        assert error is not None and error.problem is ReadProblem.NOT_REGULAR
        assert "a FIFO" in error.detail

    def test_socket_is_not_regular(self, tmp_path: Path) -> None:
        """A UNIX socket is NOT_REGULAR."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(tmp_path / "sock"))
            error = read_file(str(tmp_path / "sock"), LIMIT).error
        assert error is not None and error.problem is ReadProblem.NOT_REGULAR

    def test_file_vanishing_between_stat_and_open_is_not_found(self, tmp_path: Path) -> None:
        """Stat, then the file goes, then the open: NOT_FOUND, not an exception."""
        path = tmp_path / "gone.pem"
        path.write_bytes(b"x")
        st = os.stat(path)
        path.unlink()
        error = read_file(str(path), LIMIT, pre_stat=st).error
        assert error is not None and error.problem is ReadProblem.NOT_FOUND

    def test_file_changed_once_during_read_is_read_again(self, tmp_path: Path) -> None:
        """A write during the first read triggers one retry, which returns the new content."""
        path = tmp_path / "moving.pem"
        path.write_bytes(b"first")
        writes = iter([b"first and more"])

        def change() -> None:
            for data in writes:
                path.write_bytes(data)
                return

        result = read_file(str(path), LIMIT, during_read=change)
        assert result.error is None and result.data == b"first and more"

    def test_file_changing_on_every_read_is_changed_during_read(self, tmp_path: Path) -> None:
        """A file that changes during both reads is CHANGED_DURING_READ."""
        path = tmp_path / "moving.pem"
        path.write_bytes(b"x")
        error = read_file(str(path), LIMIT,
                          during_read=lambda: path.write_bytes(path.read_bytes() + b"x")).error
        assert error is not None and error.problem is ReadProblem.CHANGED_DURING_READ

    @pytest.mark.parametrize(("code", "problem"), [
        pytest.param(errno.EACCES, ReadProblem.PERMISSION_DENIED, id="EACCES"),
        pytest.param(errno.EPERM, ReadProblem.PERMISSION_DENIED, id="EPERM"),
        pytest.param(errno.ENOENT, ReadProblem.NOT_FOUND, id="ENOENT"),
        pytest.param(errno.EIO, ReadProblem.IO_ERROR, id="EIO"),
    ])
    def test_os_errors_map_to_read_problems(self, code: int, problem: ReadProblem) -> None:
        """Each OSError maps to its ReadProblem with the path in the message."""
        error = problem_for(OSError(code, os.strerror(code)), "/x/y.pem")
        assert error.problem is problem and "/x/y.pem" in error.detail

    def test_unreadable_file_is_permission_denied(self) -> None:
        """chmod 000 gives PERMISSION_DENIED (as root: read from a child that became nobody)."""
        with tempfile.TemporaryDirectory() as base:
            os.chmod(base, 0o755)  # noqa: S103 - nobody must traverse it; only the file is closed
            secret = Path(base) / "secret.pem"
            secret.write_bytes(b"data")
            secret.chmod(0o000)
            problem = _read_as_nobody(str(secret)) if os.geteuid() == 0 else (
                read_file(str(secret), LIMIT).error.problem.value)  # type: ignore[union-attr]
        assert problem == "permission-denied"


def _read_as_nobody(path: str) -> str:
    """Run read_file in a forked child with uid/gid 65534; return the problem it saw."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.setgid(65534)
            os.setuid(65534)
            error = read_file(path, LIMIT).error
            os.write(wfd, (error.problem.value if error else "none").encode())
        finally:
            os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


class TestHistory:
    def test_generations_are_counted_and_previous_is_parsed(self, node_pki: pkigen.NodePki
                                                            ) -> None:
        """Three client generations: count, bytes, oldest/newest and the one before current."""
        client_hist = scan(node_pki.cert_dir).history[0]  # type: ignore[attr-defined]
        files = node_pki.client_history
        assert client_hist.role is Role.CLIENT and client_hist.count == 3
        assert client_hist.total_bytes == sum(f.stat().st_size for f in files)
        assert client_hist.oldest == files[0].name.removeprefix("kubelet-client-")[:-4]
        assert client_hist.newest == files[-1].name.removeprefix("kubelet-client-")[:-4]
        assert client_hist.previous_path == str(files[-2])
        assert client_hist.previous is not None
        assert client_hist.previous.not_after < node_pki.client.cert.not_valid_after_utc

    def test_previous_skips_the_current_target_even_if_it_is_not_newest(
            self, node_pki: pkigen.NodePki) -> None:
        """After a roll-back to an older generation, previous is the newest other one."""
        files = node_pki.client_history
        pkigen.kubelet_swap(node_pki.cert_dir, "client", files[0])
        client_hist = scan(node_pki.cert_dir).history[0]  # type: ignore[attr-defined]
        assert client_hist.previous_path == str(files[-1])

    @pytest.mark.slow
    def test_ten_thousand_generations_are_counted_exactly(self, tmp_path: Path) -> None:
        """10,000 history files (never opened) are all counted; the real previous is parsed."""
        ca = pkigen.cluster_ca(NOW)
        old = pkigen.kubelet_client(ca, "node1", NOW - timedelta(days=30))
        cur = pkigen.kubelet_client(ca, "node1", NOW)
        start = NOW - timedelta(days=400)
        for i in range(10_000):
            name = (start + timedelta(minutes=i)).strftime(pkigen.TIMESTAMP_FORMAT)
            (tmp_path / f"kubelet-client-{name}.pem").write_bytes(b"junk")
        prev = pkigen.write_generation(tmp_path, "client", old, NOW - timedelta(days=30))
        pkigen.kubelet_swap(tmp_path, "client",
                            pkigen.write_generation(tmp_path, "client", cur, NOW))
        client_hist = scan(tmp_path).history[0]  # type: ignore[attr-defined]
        assert client_hist.count == 10_002
        assert client_hist.newest == NOW.strftime(pkigen.TIMESTAMP_FORMAT)
        assert client_hist.oldest == start.strftime(pkigen.TIMESTAMP_FORMAT)
        assert client_hist.previous_path == str(prev)
        assert client_hist.previous is not None
        assert client_hist.previous.serial == format(old.cert.serial_number, "x")

    def test_unrelated_files_are_not_history(self, tmp_path: Path) -> None:
        """Names that merely look alike are ignored."""
        for name in ("kubelet-client-2026-01-01.pem", "kubelet-client-current.pem.bak",
                     "kubelet-server-2026-01-01-00-00-00.pem.old", "kubelet-client-updated.pem"):
            (tmp_path / name).write_bytes(b"x")
        result = scan_cert_dir(str(tmp_path), (), LIMIT)
        assert [h.count for h in result.history] == [0, 0]


class TestSelfSignedFallback:
    def test_kubelet_crt_is_reported_self_signed_with_its_key(self, node_pki: pkigen.NodePki
                                                              ) -> None:
        """kubelet.crt + kubelet.key: role kubelet-crt, self-signed, key matches."""
        result = scan_cert_dir(str(node_pki.cert_dir), (node_pki.ca.cert,), LIMIT)
        crt = result.certs[2]
        assert crt.role is Role.SELF_SIGNED and crt.self_signed and crt.trusted is False
        assert crt.key_path == str(node_pki.cert_dir / "kubelet.key")
        assert crt.key_match is KeyMatch.MATCH

    def test_missing_kubelet_key_is_absent_with_not_found(self, node_pki: pkigen.NodePki) -> None:
        """kubelet.crt without kubelet.key: key ABSENT, and the key error says not found."""
        (node_pki.cert_dir / "kubelet.key").unlink()
        crt = scan_cert_dir(str(node_pki.cert_dir), (), LIMIT).certs[2]
        assert crt.key_match is KeyMatch.ABSENT
        assert crt.key_error is not None and crt.key_error.problem is ReadProblem.NOT_FOUND

    def test_other_key_is_a_mismatch(self, node_pki: pkigen.NodePki) -> None:
        """A kubelet.key from another certificate is a MISMATCH."""
        (node_pki.cert_dir / "kubelet.key").write_bytes(node_pki.client.key_pem())
        assert scan_cert_dir(str(node_pki.cert_dir), (), LIMIT).certs[2].key_match \
            is KeyMatch.MISMATCH

    def test_no_kubelet_crt_means_no_entry(self, tmp_path: Path) -> None:
        """Without kubelet.crt only the two rotating roles are reported."""
        result = scan_cert_dir(str(tmp_path), (), LIMIT)
        assert [c.role for c in result.certs] == [Role.CLIENT, Role.SERVER]


class TestWatched:
    @pytest.fixture
    def pki_dir(self, tmp_path: Path) -> Path:
        """A kubeadm-like /etc/kubernetes/pki with keys, odd names, a FIFO and a sub-dir."""
        d = tmp_path / "pki"
        (d / "etcd").mkdir(parents=True)
        ca = pkigen.cluster_ca(NOW)
        (d / "ca.crt").write_bytes(ca.cert_pem())
        (d / "ca.key").write_bytes(ca.key_pem())
        (d / "etcd" / "ca.crt").write_bytes(ca.cert_pem())
        (d / "front-proxy-ca").write_bytes(ca.cert_pem())  # no suffix, but a certificate
        (d / "sa.pub").write_bytes(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
        (d / "broken.pem").write_bytes(b"garbage")
        os.mkfifo(d / "fifo.crt")
        return d

    def test_directory_lists_certificates_and_broken_cert_files(self, pki_dir: Path) -> None:
        """*.crt/*.pem are reported (even broken); other files only if they parse; *.key never."""
        found = load_watched([pki_dir], (), LIMIT)
        assert [Path(c.path).name for c in found] == ["broken.pem", "ca.crt", "front-proxy-ca"]
        assert all(c.role is Role.WATCHED for c in found)
        assert found[0].read_error is not None
        assert found[0].read_error.problem is ReadProblem.GARBAGE

    def test_single_file_and_missing_path(self, pki_dir: Path) -> None:
        """A file path is one entry; a missing path is NOT_FOUND; duplicates collapse."""
        found = load_watched([pki_dir / "ca.crt", pki_dir / "nope.crt", pki_dir / "ca.crt"],
                             (), LIMIT)
        assert [Path(c.path).name for c in found] == ["ca.crt", "nope.crt"]
        assert found[1].read_error is not None
        assert found[1].read_error.problem is ReadProblem.NOT_FOUND

    def test_fifo_given_as_a_file_is_not_regular(self, pki_dir: Path) -> None:
        """A FIFO passed to --watch is NOT_REGULAR and the scan returns."""
        (found,) = load_watched([pki_dir / "fifo.crt"], (), LIMIT)
        assert found.read_error is not None
        assert found.read_error.problem is ReadProblem.NOT_REGULAR
