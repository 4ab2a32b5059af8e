"""Hostile names never reach the terminal raw: ESC, newlines, bidi controls, odd bytes.

The property test writes real certificates (cryptography) whose CN, O, issuer CN and DNS
SAN are arbitrary Unicode and control characters, under an arbitrary file name (any bytes
but ``/`` and NUL), with an arbitrary node name, evaluates them through the real pipeline
and checks the table: every character printable, and every row where the layout puts it
(a newline in a CN cannot forge a row).
"""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import pkigen
from agent.checks import judge
from agent.config import SourceSettings
from agent.model import Evaluation, Policy, Role, Severity, Status
from agent.sinks.escape import printable
from agent.sinks.table import HEADERS, render_table
from agent.snapshot import build_snapshot
from tests.nodetree import NOW

NASTY = ["\x1b[2J", "\x1b]0;owned\x07", "\n", "\r", "\u202e", "\u2066", "\u200f", "\x00",
         "\x7f", "\u2028", "\t", "\x9b31m", "\ufeff", "\U000e0001"]
ROLES = {role.value for role in Role}
SEVERITIES = {s.name for s in Severity}


def hostile(max_size: int) -> st.SearchStrategy[str]:
    pieces = st.one_of(st.sampled_from(NASTY),
                       st.text(st.characters(blacklist_categories=("Cs",)), max_size=8))
    # X.509 limits a CN or O to 64 bytes of UTF-8: cut there, on a character boundary.
    return st.lists(pieces, min_size=1, max_size=8).map("".join).map(
        lambda s: s.encode()[:max_size].decode("utf-8", "ignore")).filter(bool)


ascii_hostile = st.text(st.characters(max_codepoint=127), min_size=1, max_size=40)
file_names = st.binary(min_size=1, max_size=80).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b".."))


class TestPrintable:
    @pytest.mark.parametrize(("raw", "shown"), [
        ("plain name", "plain name"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("a\nb", "a\\x0ab"),
        ("\u202etxt.exe", "\\u202etxt.exe"),
        (os.fsdecode(b"bad\xffname"), "bad\\xffname"),
        ("\U000e0001", "\\U000e0001"),
        ("café ✓ 日本", "café ✓ 日本"),
    ])
    def test_examples(self, raw: str, shown: str) -> None:
        assert printable(raw) == shown
        assert printable(shown) == shown  # idempotent


def _layout_holds(text: str, ev: Evaluation) -> None:
    lines = text.split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    for line in lines:
        assert line.isprintable(), repr(line)
    header = lines.index(next(line for line in lines if line.startswith(HEADERS[0])))
    rows = lines[header + 1: header + 1 + len(ev.snapshot.certs + ev.snapshot.anchors)]
    assert all(row.split(" ", 1)[0] in ROLES for row in rows), rows
    start = lines.index("FINDINGS") if ev.findings else lines.index("FINDINGS: none")
    found = lines[start + 1: start + 1 + len(ev.findings)]
    assert all(row.split(" ", 1)[0] in SEVERITIES for row in found), found
    assert lines[start + 1 + len(ev.findings)] == ""
    assert lines[-1].split(":", 1)[0] in {s.name for s in Status}
    assert len(lines) == start + 3 + len(ev.findings)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cn=hostile(64), org=hostile(64), issuer=hostile(64), san=ascii_hostile,
       name=file_names, node=hostile(40))
def test_no_certificate_field_or_file_name_reaches_the_table_raw(
        tmp_path: Path, *, cn: str, org: str, issuer: str, san: str, name: bytes,
        node: str) -> None:
    root = tmp_path / "case"
    shutil.rmtree(root, ignore_errors=True)
    cert_dir, watched = root / "pki", root / "watched"
    cert_dir.mkdir(parents=True)
    watched.mkdir()
    ca = pkigen.issue(issuer, not_before=NOW - timedelta(days=30),
                      not_after=NOW + timedelta(days=300), usage="ca")
    leaf = pkigen.issue(cn, orgs=[org], issuer=ca, dns_names=[san],
                        not_before=NOW - timedelta(days=300), not_after=NOW + timedelta(days=5))
    target = cert_dir / os.fsdecode(name)
    target.write_bytes(leaf.cert_pem() + ca.cert_pem() + leaf.key_pem())
    (cert_dir / "kubelet-client-current.pem").symlink_to(target.name)
    (watched / os.fsdecode(name)).write_bytes(leaf.cert_pem())
    sources = SourceSettings(cert_dir=cert_dir, kubelet_config=None, node_name=node,
                             watch_paths=(watched,), ca_files=())
    snapshot = build_snapshot(sources, NOW)
    ev = judge(snapshot, NOW, Policy())
    _layout_holds(render_table(ev), ev)
