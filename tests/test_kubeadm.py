"""The kubeadm control plane: the fourteen files, each broken every way, external CAs,
CA rotation, and kubeconfigs that are bad input. Trees from agent.pkigen_kubeadm."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from agent import codes, kubeadm
from agent.model import ReadProblem, Role, Severity
from agent.pkigen import issue
from agent.pkigen_kubeadm import CA_LIFETIME, CA_SUBJECTS, YEAR, kubeconfig
from tests.conftest import NOW
from tests.kubeadmtree import INIT, NAMES, Plane

LEAF_NAMES = tuple(leaf.name for leaf in kubeadm.LEAVES)
CA_OF = {leaf.name: leaf.ca for leaf in kubeadm.LEAVES}


def _leaves_of(ca: str) -> list[str]:
    return [name for name, owner in CA_OF.items() if owner == ca]


def _reissue(plane: Plane, name: str, not_after_from_now: timedelta) -> None:
    """``name`` re-issued (same key, same CA) so that it ends ``not_after_from_now``."""
    end = NOW + not_after_from_now
    if name in kubeadm.AUTHORITIES:  # same subject and key: its leaves still verify
        old = plane.plane.cas[name]
        plane.plane.write_ca(name, issue(CA_SUBJECTS[name], usage="ca", key=old.key,
                                         not_before=end - CA_LIFETIME, not_after=end))
    else:
        plane.plane.write_leaf(name, plane.plane.issue_leaf(name, end - YEAR))


def _foreign_ca(name: str) -> object:
    """Another cluster's CA with the very same name: only the signature tells them apart."""
    return issue(CA_SUBJECTS[name], usage="ca", key_type="ec", not_before=INIT,
                 not_after=INIT + CA_LIFETIME)


def _wrong_ca(plane: Plane, name: str) -> None:
    if name in kubeadm.AUTHORITIES:
        plane.plane.write_ca(name, _foreign_ca(name))  # type: ignore[arg-type]
    else:
        foreign = _foreign_ca(CA_OF[name])
        plane.plane.write_leaf(name, plane.plane.issue_leaf(
            name, INIT, issuer=foreign))  # type: ignore[arg-type]


def _pairs(plane: Plane) -> set[tuple[str, str, Severity]]:
    return {(f.code, f.path or "", f.severity) for f in plane.findings()}


class TestHealthy:
    def test_the_fourteen_in_kubeadms_order_with_no_finding(self, plane: Plane) -> None:
        """Leaves sorted by name, then the CAs; all signed by their CA; nothing to say."""
        snap = plane.evaluate().snapshot
        listed = [c for c in snap.certs if c.role in (Role.KUBEADM, Role.KUBEADM_CA)]
        assert [c.name for c in listed] == list(NAMES)
        assert [c.role for c in listed] == [Role.KUBEADM] * 11 + [Role.KUBEADM_CA] * 3
        assert all(c.leaf is not None and c.externally_managed is False for c in listed)
        assert all(c.trusted is True for c in listed if c.role is Role.KUBEADM)
        assert plane.findings() == []

    def test_kubeconfigs_are_judged_on_their_embedded_client_certificate(
            self, plane: Plane) -> None:
        admin = plane.file("admin.conf")
        assert admin.path == str(plane.path("admin.conf"))
        assert admin.leaf is not None and admin.leaf.subject_cn == "kubernetes-admin"
        assert admin.key_match.value == "match"

    def test_keys_and_other_files_are_never_listed(self, plane: Plane) -> None:
        """sa.key, *.key and manifests/ are in the dir but never judged as certificates."""
        paths = {c.path for c in plane.evaluate().snapshot.certs}
        assert not any(p.endswith(".key") or "manifests" in p for p in paths)

    def test_a_node_that_is_not_a_control_plane_gets_no_kubeadm_rows(self, plane: Plane
                                                                     ) -> None:
        """The default dir is used only when pki/ca.crt exists; --no-kubeadm skips it."""
        plane.path("ca").unlink()
        implicit = plane.evaluate(kubeadm_explicit=False).snapshot
        assert implicit.kubeadm_dir is None
        assert not [c for c in implicit.certs if c.role is Role.KUBEADM]
        skipped = plane.evaluate(kubeadm_dir=None).snapshot
        assert skipped.kubeadm_dir is None and not skipped.certs[2:]

    def test_a_kubeadm_worker_is_not_a_control_plane(self, plane: Plane) -> None:
        """`kubeadm join` leaves pki/ca.crt on a worker: without the API server's
        certificate or manifest the default dir is not inventoried (no MISSING rows)."""
        for name in ("apiserver",):
            plane.path(name).unlink()
        manifest = plane.root / "manifests" / "kube-apiserver.yaml"
        if manifest.exists():
            manifest.unlink()
        implicit = plane.evaluate(kubeadm_explicit=False).snapshot
        assert implicit.kubeadm_dir is None
        assert not [c for c in implicit.certs if c.role is Role.KUBEADM]


class TestEachOfTheFourteen:
    @pytest.mark.parametrize("name", NAMES)
    def test_expiring(self, plane: Plane, name: str) -> None:
        """Five days left: critical for a one-year leaf and a ten-year CA alike (7 d floor)."""
        _reissue(plane, name, timedelta(days=5))
        found = plane.findings()
        assert {(f.code, f.path, f.severity) for f in found} == {
            (codes.CERT_EXPIRING_SOON, str(plane.path(name)), Severity.CRITICAL)}
        message = found[0].message
        if name in kubeadm.AUTHORITIES:
            assert "kubeadm never renews a CA" in message
        else:
            assert f"`kubeadm certs renew {name}` (or `all`)" in message
            assert "restart the control-plane static pods" in message

    @pytest.mark.parametrize("name", NAMES)
    def test_expired(self, plane: Plane, name: str) -> None:
        _reissue(plane, name, timedelta(days=-1))
        assert _pairs(plane) == {(codes.CERT_EXPIRED, str(plane.path(name)), Severity.CRITICAL)}

    @pytest.mark.parametrize("name", NAMES)
    def test_missing_is_info(self, plane: Plane, name: str) -> None:
        """kubeadm prints !MISSING! and carries on (external etcd, joined control plane)."""
        plane.path(name).unlink()
        assert _pairs(plane) == {
            (codes.KUBEADM_CERT_MISSING, str(plane.path(name)), Severity.INFO)}

    @pytest.mark.parametrize("name", NAMES)
    def test_unreadable(self, plane: Plane, name: str) -> None:
        plane.path(name).write_bytes(b"\x00\x01 this is not a certificate nor YAML \xff")
        found = plane.findings()
        assert {(f.code, f.path, f.severity) for f in found} == {
            (codes.CERT_UNREADABLE, str(plane.path(name)), Severity.WARNING)}
        assert name in found[0].message

    @pytest.mark.parametrize("name", NAMES)
    def test_issued_by_the_wrong_ca(self, plane: Plane, name: str) -> None:
        """A leaf from another CA with the same name; a CA replaced: all its leaves break."""
        _wrong_ca(plane, name)
        broken = _leaves_of(name) if name in kubeadm.AUTHORITIES else [name]
        assert _pairs(plane) == {(codes.UNTRUSTED_ISSUER, str(plane.path(leaf)),
                                  Severity.CRITICAL) for leaf in broken}


class TestKeys:
    @pytest.mark.parametrize("name", ["apiserver", "etcd-ca"])
    def test_a_key_that_does_not_match_its_certificate(self, plane: Plane, name: str) -> None:
        """A leaf's or a CA's key from elsewhere: kubeadm and the server cannot use the pair."""
        entry = kubeadm.AUTHORITIES.get(name)
        key_file = plane.root / (entry.key if entry else f"pki/{name}.key")
        key_file.write_bytes(issue("other", usage="client", key_type="ec", not_before=INIT,
                                   not_after=INIT + YEAR).key_pem())
        assert _pairs(plane) == {(codes.KEY_MISMATCH, str(key_file), Severity.CRITICAL)}


class TestExternalCa:
    def test_a_ca_without_its_key_is_externally_managed_and_so_are_its_leaves(
            self, plane: Plane) -> None:
        (plane.root / "pki" / "ca.key").unlink()
        snap = plane.evaluate().snapshot
        external = {c.name for c in snap.certs if c.externally_managed}
        assert external == {"ca", *_leaves_of("ca")}
        assert plane.findings() == []  # an external CA is a layout, not a fault

    def test_the_remedy_of_an_externally_managed_leaf_is_not_kubeadm_renew(
            self, plane: Plane) -> None:
        (plane.root / "pki" / "front-proxy-ca.key").unlink()
        _reissue(plane, "front-proxy-client", timedelta(days=3))
        (found,) = plane.findings()
        assert "externally managed" in found.message and "generate-csr" in found.message
        assert "kubeadm certs renew front-proxy-client" not in found.message


class TestCaRotation:
    def _retired(self, name: str, end_from_now: timedelta) -> object:
        end = NOW + end_from_now
        return issue(CA_SUBJECTS[name], usage="ca", key_type="ec",
                     not_before=end - CA_LIFETIME, not_after=end)

    @pytest.mark.parametrize("retired_first", [True, False])
    def test_an_expired_ca_beside_a_valid_one_is_info(self, plane: Plane,
                                                      retired_first: bool) -> None:
        current = plane.plane.cas["ca"]
        retired = self._retired("ca", timedelta(days=-10))
        pair = (retired, current) if retired_first else (current, retired)
        plane.plane.write_ca("ca", *pair)  # type: ignore[arg-type]
        assert _pairs(plane) == {
            (codes.CA_ROTATION_IN_PROGRESS, str(plane.path("ca")), Severity.INFO)}

    def test_the_key_of_the_current_ca_matches_a_bundle_that_lists_the_retired_first(
            self, plane: Plane) -> None:
        """ca.key belongs to today's CA, the second in the file: no KEY_MISMATCH."""
        retired = self._retired("ca", timedelta(days=-10))
        current = plane.plane.cas["ca"]
        plane.plane.write_ca("ca", retired, current)  # type: ignore[arg-type]
        (plane.root / "pki" / "ca.key").write_bytes(current.key_pem())
        assert plane.file("ca").key_match.value == "match"
        assert {f.code for f in plane.findings()} == {codes.CA_ROTATION_IN_PROGRESS}

    def test_leaves_signed_by_the_new_ca_verify_against_the_bundle(self, plane: Plane) -> None:
        """Mid-rotation, the file holds old and new CA; a leaf of either is trusted."""
        new_ca = issue("kubernetes", usage="ca", key_type="ec", not_before=NOW - timedelta(1),
                       not_after=NOW + CA_LIFETIME)
        plane.plane.write_ca("ca", plane.plane.cas["ca"], new_ca)
        plane.plane.write_leaf("apiserver", plane.plane.issue_leaf(
            "apiserver", NOW - timedelta(days=1), issuer=new_ca))
        assert plane.file("apiserver").trusted is True
        assert plane.findings() == []

    def test_a_bundle_with_no_valid_ca_is_expired(self, plane: Plane) -> None:
        plane.plane.write_ca("etcd-ca", self._retired("etcd-ca", timedelta(days=-20)),
                             self._retired("etcd-ca", timedelta(days=-2)))  # type: ignore[arg-type]
        ca_file = str(plane.path("etcd-ca"))
        found = [f for f in plane.findings() if f.path == ca_file]
        assert [f.code for f in found] == [codes.CERT_EXPIRED]
        assert "(2d 0h ago)" in found[0].message  # judged on the one that expired last

    def test_a_trust_anchor_bundle_mid_rotation_is_not_critical(self, plane: Plane,
                                                                 tmp_path: Path) -> None:
        """--ca-file / clientCAFile with the retired CA expired beside today's."""
        bundle = tmp_path / "ca-bundle.crt"
        retired = self._retired("ca", timedelta(days=-30))
        bundle.write_bytes(retired.cert_pem() + plane.plane.cas["ca"].cert_pem())  # type: ignore[attr-defined]
        found = [f for f in plane.evaluate(ca_files=(bundle,)).findings
                 if f.path == str(bundle)]
        assert [(f.code, f.severity) for f in found] == [
            (codes.CA_ROTATION_IN_PROGRESS, Severity.INFO)]

    def test_an_expired_intermediate_in_a_leaf_file_is_expired(self, plane: Plane,
                                                               tmp_path: Path) -> None:
        """Every certificate in a file is judged, not only the leaf."""
        root = plane.plane.cas["ca"]
        intermediate = issue("intermediate", usage="ca", key_type="ec", issuer=root,
                             not_before=NOW - YEAR, not_after=NOW - timedelta(days=1))
        leaf = issue("svc", usage="server", key_type="ec", issuer=intermediate,
                     not_before=NOW - timedelta(days=2), not_after=NOW + YEAR)
        chain = tmp_path / "svc.pem"
        chain.write_bytes(leaf.cert_pem() + intermediate.cert_pem())
        found = [f for f in plane.evaluate(watch_paths=(chain,)).findings
                 if f.path == str(chain)]
        assert [f.code for f in found] == [codes.CERT_EXPIRED]
        assert "CN=intermediate" in found[0].message and "#2" in found[0].message


BILLION_LAUGHS = "\n".join(
    [f'l0: &l0 ["{"lol" * 3}"]']
    + [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 10)]
    + ["users: *l9"]) + "\n"


def _embedded(plane: Plane, *, cert: str) -> bytes:
    """admin.conf as kubeadm writes it, with client-certificate-data replaced."""
    text = kubeconfig("kubernetes-admin", plane.plane.cas["ca"],
                      plane.plane.leaves["admin.conf"]).decode()
    lines = [f"    client-certificate-data: {cert}" if "client-certificate-data" in line
             else line for line in text.splitlines()]
    return ("\n".join(lines) + "\n").encode()


def _referenced(plane: Plane, cert_file: str) -> bytes:
    """admin.conf pointing at a certificate file (relative to the kubeconfig's dir)."""
    text = _embedded(plane, cert="X").decode()
    return text.replace("client-certificate-data: X", f"client-certificate: {cert_file}"
                        ).encode()


Breaker = Callable[[Plane], object]
BAD_KUBECONFIGS: dict[str, tuple[Breaker, ReadProblem, str]] = {
    "garbage": (lambda p: p.path("admin.conf").write_text("{{{ [[ not: yaml"),
                ReadProblem.GARBAGE, "not valid YAML"),
    "not-a-mapping": (lambda p: p.path("admin.conf").write_text("- just\n- a list\n"),
                      ReadProblem.GARBAGE, "not a YAML mapping"),
    "yaml-bomb": (lambda p: p.path("admin.conf").write_text(BILLION_LAUGHS),
                  ReadProblem.GARBAGE, "YAML aliases"),
    "nested-too-deeply": (lambda p: p.path("admin.conf").write_text("[" * 5000),
                          ReadProblem.GARBAGE, "nested too deeply"),
    "data-not-base64": (lambda p: p.path("admin.conf").write_bytes(
        _embedded(p, cert="bm90$YmFzZTY0")), ReadProblem.GARBAGE, "not valid base64"),
    "data-not-a-certificate": (lambda p: p.path("admin.conf").write_bytes(_embedded(
        p, cert=base64.b64encode(b"hello, world").decode())), ReadProblem.GARBAGE,
        "client-certificate-data neither PEM nor DER"),
    "data-bad-pem": (lambda p: p.path("admin.conf").write_bytes(_embedded(
        p, cert=base64.b64encode(b"-----BEGIN CERTIFICATE-----\nAAAA\n"
                                 b"-----END CERTIFICATE-----\n").decode())),
        ReadProblem.BAD_CERTIFICATE, "CERTIFICATE block #1"),
    "no-client-certificate": (lambda p: p.path("admin.conf").write_bytes(
        _embedded(p, cert="X").replace(b"    client-certificate-data: X\n", b"")),
        ReadProblem.NO_CERTIFICATE, "no client certificate"),
    "referenced-fifo": (lambda p: (os.mkfifo(p.root / "admin.crt"), p.path(
        "admin.conf").write_bytes(_referenced(p, "admin.crt"))), ReadProblem.NOT_REGULAR,
        "is a FIFO"),
    "referenced-missing": (lambda p: p.path("admin.conf").write_bytes(
        _referenced(p, "gone.crt")), ReadProblem.NOT_FOUND, "gone.crt"),
    "kubeconfig-is-a-fifo": (lambda p: (p.path("admin.conf").unlink(),
                                        os.mkfifo(p.path("admin.conf"))),
                             ReadProblem.NOT_REGULAR, "is a FIFO"),
}


class TestBadKubeconfigs:
    @pytest.mark.parametrize("case", BAD_KUBECONFIGS)
    def test_a_specific_finding_never_a_crash_or_a_hang(self, plane: Plane, case: str) -> None:
        breaker, problem, words = BAD_KUBECONFIGS[case]
        breaker(plane)
        admin = plane.file("admin.conf")
        assert admin.leaf is None and admin.read_error is not None
        assert admin.read_error.problem is problem
        found = plane.findings()
        assert [(f.code, f.path) for f in found] == [
            (codes.CERT_UNREADABLE, str(plane.path("admin.conf")))]
        assert words in found[0].message and "admin.conf" in found[0].message

    def test_a_referenced_certificate_file_is_judged(self, plane: Plane) -> None:
        """kubeconfigs may point at a file (kubelet.conf style) instead of embedding it."""
        crt = plane.root / "pki" / "admin.crt"
        crt.write_bytes(plane.plane.leaves["admin.conf"].cert_pem())
        plane.path("admin.conf").write_bytes(_referenced(plane, "pki/admin.crt"))
        admin = plane.file("admin.conf")
        assert admin.target == str(crt) and admin.leaf is not None
        assert admin.trusted is True and plane.findings() == []
