"""Edge values from issue 13: year 1, a negative serial, notBefore after notAfter."""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import codes, pkigen
from agent.sinks.metrics import render
from tests.conftest import require_tool
from tests.nodetree import NODE, NOW, healthy_node, real_node_state, run_in_process, run_subprocess


def _pem(der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


def inverted_certificate(path: Path) -> Path:
    """A certificate whose notBefore (2027-01-01) is after its notAfter (2026-01-01).

    cryptography refuses to build one, so a valid certificate's two UTCTime fields are
    swapped in its DER (same length, same structure; the signature no longer verifies,
    which no expiry check looks at). Such files exist: hand-edited or broken CA tooling.
    """
    ca = pkigen.issue("inverted", not_before=datetime(2026, 1, 1, tzinfo=UTC),
                      not_after=datetime(2027, 1, 1, tzinfo=UTC), usage="server")
    der = ca.cert_der()
    before, after = b"260101000000Z", b"270101000000Z"
    assert der.count(before) == 1 and der.count(after) == 1
    der = der.replace(before, b"\0" * 13).replace(after, before).replace(b"\0" * 13, after)
    path.write_bytes(_pem(der))
    return path


class TestYearOne:
    def test_at_year_one_is_iso8601_in_json_and_table(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        tree = healthy_node(tmp_path)
        base = ["check", "--offline", "--cert-dir", str(tree.cert_dir), "--kubelet-config",
                str(tree.config), "--node-name", NODE, "--at", "0001-01-01"]
        run = run_in_process([*base, "--format", "json"], capsys)
        assert json.loads(run.out)["evaluated_at"] == "0001-01-01T00:00:00Z"
        table = run_in_process(base, capsys).out
        assert "evaluated 0001-01-01T00:00:00Z" in table


class TestNegativeSerial:
    def test_a_negative_serial_prints_no_warning(self, tmp_path: Path) -> None:
        cert = tmp_path / "negative.pem"
        subprocess.run([require_tool("openssl"), "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", str(tmp_path / "negative.key"), "-out", str(cert),
                        "-subj", "/CN=negative", "-days", "30", "-set_serial", "-12345"],
                       check=True, capture_output=True, timeout=60)
        run = run_subprocess(["check", "--offline", "--cert-dir", str(tmp_path / "none"),
                              "--kubelet-config", "", "--watch", str(cert), "--format", "json",
                              "--node-name", NODE], PYTHONWARNINGS="always")
        assert run.err == ""
        serials = [c.get("serial") for c in json.loads(run.out)["certificates"]
                   if c["path"] == str(cert)]
        assert serials == ["-3039"]


class TestInvertedValidity:
    def test_is_its_own_finding_not_expired_and_has_no_backwards_window(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        tree = healthy_node(tmp_path)
        cert = inverted_certificate(tmp_path / "inverted.pem")
        base = ["check", "--offline", "--cert-dir", str(tree.cert_dir), "--kubelet-config",
                str(tree.config), "--node-name", NODE, "--watch", str(cert),
                "--at", NOW.isoformat()]
        found = json.loads(run_in_process([*base, "--format", "json"], capsys).out)["findings"]
        about = [f["code"] for f in found if f.get("path") == str(cert)]
        assert about == [codes.CERT_VALIDITY_INVERTED]
        row = next(line for line in run_in_process(base, capsys).out.splitlines()
                   if "inverted.pem" in line and line.startswith("watched"))
        assert "never valid" in row and "expired" not in row

    def test_no_rotation_window_series_for_an_inverted_client(self, tmp_path: Path) -> None:
        """A backwards window would fire the rotation alert: no window series at all."""
        state, _ = real_node_state(tmp_path)
        text = render(state).decode()
        window = "kubelet_cert_agent_certificate_rotation_window_"
        assert window in text  # the healthy ones still have theirs
        snap = state.evaluation.snapshot
        client = snap.certs[0]
        assert client.leaf is not None
        flipped = replace(client.leaf, not_before=client.leaf.not_after,
                          not_after=client.leaf.not_before)
        bad = replace(state, evaluation=replace(state.evaluation, snapshot=replace(
            snap, certs=(replace(client, leaf=flipped), *snap.certs[1:]))))
        lines = [line for line in render(bad).decode().splitlines()
                 if line.startswith(window) and client.path in line]
        assert lines == []
