"""Properties over generated inputs: no exception, every failure specific, no key bytes leak.

parse_bundle and build_snapshot have a last-resort ``except`` that would hide a crash as
"unexpected ... failure"; these properties also assert it is never reached, so every
generated failure went through a specific, intended path. 10,800 inputs per run.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import pkigen
from agent.config import SourceSettings
from agent.model import CertFile, LinkProblem, ReadError, ReadProblem
from agent.snapshot import build_snapshot
from agent.sources.kubeletconfig import interpret
from agent.sources.parse import ParsedBundle, parse_bundle, parse_key
from tests.conftest import NOW

pytestmark = [pytest.mark.slow,
              # mangled DER may hold a negative serial: cryptography warns, we still parse it
              pytest.mark.filterwarnings("ignore:Parsed a serial number")]

CA = pkigen.cluster_ca(NOW)
LEAF = pkigen.kubelet_client(CA, "node1", NOW - timedelta(days=1))
BUNDLE = LEAF.cert_pem() + CA.cert_pem() + LEAF.key_pem()
KEY_LINES = [line for line in LEAF.key_pem().splitlines() if b"-----" not in line]
LABELS = [b"CERTIFICATE", b"EC PRIVATE KEY", b"PRIVATE KEY", b"RSA PRIVATE KEY",
          b"CERTIFICATE REQUEST", b"X509 CRL", b"PUBLIC KEY", b"TRUSTED CERTIFICATE", b"FOO"]
B64 = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=!\n ",
              min_size=0, max_size=80).map(str.encode)
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_well_formed(parsed: ParsedBundle) -> None:
    """Either certificates and no error, or a specific error and no certificates."""
    if parsed.error is None:
        assert parsed.certificates and parsed.leaf in parsed.certificates
    else:
        assert isinstance(parsed.error, ReadError)
        assert isinstance(parsed.error.problem, ReadProblem)
        assert parsed.certificates == () and parsed.leaf is None
        assert "unexpected" not in parsed.error.detail
    for error in (parsed.error, parsed.key_error):
        if error is not None:
            assert not any(line in error.detail.encode() for line in KEY_LINES if len(line) > 8)


@settings(FAST, max_examples=5500)
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise(data: bytes) -> None:
    """Any bytes: parse_bundle and parse_key return data, never raise."""
    assert_well_formed(parse_bundle(data))
    spki, error = parse_key(data)
    assert (spki is None) != (error is None) or spki is None


@st.composite
def mangled_pem(draw: st.DrawFn) -> bytes:
    """The kubelet's bundle, damaged the ways files get damaged."""
    data = bytearray(BUNDLE)
    for _ in range(draw(st.integers(1, 3))):
        how = draw(st.sampled_from(["truncate", "flip", "relabel", "inject", "drop-line"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if how == "truncate":
            del data[at:]
        elif how == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif how == "relabel":
            old = draw(st.sampled_from([b"BEGIN CERTIFICATE", b"END CERTIFICATE",
                                        b"BEGIN EC PRIVATE KEY", b"END EC PRIVATE KEY"]))
            word = old.split(b" ", 1)[0]
            data = bytearray(bytes(data).replace(old, word + b" " + draw(st.sampled_from(LABELS)),
                                                 1))
        elif how == "inject":
            data[at:at] = draw(B64)
        else:
            lines = bytes(data).split(b"\n")
            del lines[at % max(len(lines), 1)]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


@settings(FAST, max_examples=3500)
@given(mangled_pem())
def test_mangled_pem_gives_specific_errors(data: bytes) -> None:
    """Truncated, bit-flipped, relabelled or garbage-filled PEM: a specific error or a result."""
    parsed = parse_bundle(data, [CA.cert])
    assert_well_formed(parsed)
    if parsed.error is None and parsed.key_present and parsed.key_error is None:
        assert parsed.key_spki_sha256 is not None


@settings(FAST, max_examples=800)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["serverTLSBootstrap", "tlsCertFile",
                                                       "authentication", "x509",
                                                       "clientCAFile", "rotateCertificates"]),
                                      inner, max_size=4), max_leaves=12),
       st.booleans())
def test_any_kubelet_config_document_is_data(doc: object, as_json: bool) -> None:
    """Any YAML/JSON document gives KubeletConfigInfo, with a specific error if unusable."""
    import json

    import yaml
    text = json.dumps(doc) if as_json else yaml.dump(doc, Dumper=yaml.CSafeDumper)
    info = interpret(text.encode(), "/etc/kubernetes/config.yaml")
    assert info.present
    if info.error is not None:
        assert info.error.problem in (ReadProblem.GARBAGE, ReadProblem.EMPTY)
    for value in (info.tls_cert_file, info.tls_private_key_file, info.client_ca_file):
        assert value is None or os.path.isabs(value)


NODE_KINDS = ["file-good", "file-garbage", "file-empty", "fifo", "dir", "absent",
              "link-abs", "link-rel", "link-outside"]


@st.composite
def topology(draw: st.DrawFn) -> list[tuple[str, str, int]]:
    """Entries n0..n4 and the current link: each a file, FIFO, dir, nothing, or a link."""
    return [(name, draw(st.sampled_from(NODE_KINDS)), draw(st.integers(0, 5)))
            for name in ["kubelet-client-current.pem", "n0", "n1", "n2", "n3", "n4"]]


def build_tree(root: Path, entries: list[tuple[str, str, int]]) -> None:
    names = [name for name, _, _ in entries]
    for name, kind, pointer in entries:
        path = root / name
        target = names[pointer]
        if kind == "file-good":
            path.write_bytes(BUNDLE)
        elif kind == "file-garbage":
            path.write_bytes(b"\x00garbage\xff")
        elif kind == "file-empty":
            path.write_bytes(b"")
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "dir":
            path.mkdir()
        elif kind == "link-abs":
            path.symlink_to(root / target)
        elif kind == "link-rel":
            path.symlink_to(target)
        elif kind == "link-outside":
            path.symlink_to(f"/nonexistent/{target}")


def assert_explained(cert: CertFile) -> None:
    """A certificate file is usable, or says why not with a specific problem."""
    link_problem = cert.link.problem if cert.link else None
    if cert.leaf is None:
        assert cert.read_error is not None or link_problem is not None
    if cert.read_error is not None:
        assert isinstance(cert.read_error.problem, ReadProblem)
        assert "unexpected" not in cert.read_error.detail
    if link_problem is not None:
        assert isinstance(link_problem, LinkProblem)


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One directory for every generated tree (removed once: rmdir per example is slow)."""
    yield tmp_path_factory.mktemp("trees")


@settings(FAST, max_examples=1000)
@given(entries=topology())
def test_symlink_topologies_never_block_or_raise(trees: Path,
                                                 entries: list[tuple[str, str, int]]) -> None:
    """Chains, loops, dangling and relative/absolute links, FIFOs and dirs: all explained."""
    root = Path(tempfile.mkdtemp(dir=trees))
    build_tree(root, entries)
    source = SourceSettings(cert_dir=root, kubelet_config=None, watch_paths=(root,))
    snap = build_snapshot(source, NOW)
    for cert in snap.certs:
        assert_explained(cert)
    kind = dict((n, k) for n, k, _ in entries)["kubelet-client-current.pem"]
    client = snap.certs[0]
    assert client.link is not None
    if kind == "absent":
        assert client.link.problem is LinkProblem.MISSING
    elif kind == "file-good":
        assert client.link.problem is LinkProblem.NOT_A_LINK and client.leaf is not None
