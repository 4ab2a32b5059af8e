"""agent.sinks.textfile: node_exporter only ever sees a complete, readable file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.sinks.metrics import render
from agent.sinks.textfile import TEXTFILE_NAME, write_textfile
from tests import metrics_fixtures as fx
from tests.conftest import require_tool

REWRITES = 1000


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def entries(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


class TestWriteTextfile:
    def test_writes_the_data_to_kubelet_cert_agent_prom(self, tmp_path: Path) -> None:
        """The file holds exactly the bytes given, and nothing else is left in the directory."""
        data = render(fx.full_state())
        write_textfile(tmp_path, data)
        assert (tmp_path / TEXTFILE_NAME).read_bytes() == data
        assert entries(tmp_path) == {TEXTFILE_NAME}

    def test_replaces_the_previous_file(self, tmp_path: Path) -> None:
        """A second write replaces the first, even when it is shorter."""
        write_textfile(tmp_path, render(fx.full_state()))
        write_textfile(tmp_path, render(None))
        assert (tmp_path / TEXTFILE_NAME).read_bytes() == render(None)

    def test_file_is_world_readable_even_with_umask_077(self, tmp_path: Path) -> None:
        """Mode 0644 whatever the service's UMask, so node_exporter can read it."""
        with umask(0o077):
            write_textfile(tmp_path, b"x 1\n")
        assert stat.S_IMODE((tmp_path / TEXTFILE_NAME).stat().st_mode) == 0o644

    def test_a_directory_that_is_a_file_raises_oserror(self, tmp_path: Path) -> None:
        """A bad --textfile-dir is an OSError for the caller to count, not a crash."""
        not_a_dir = tmp_path / "file"
        not_a_dir.write_text("")
        with pytest.raises(NotADirectoryError):
            write_textfile(not_a_dir, b"x 1\n")
        assert entries(tmp_path) == {"file"}

    def test_a_failed_rename_leaves_no_temporary_file_and_the_target_untouched(
            self, tmp_path: Path) -> None:
        """When the final rename fails (a directory in the way) the temp file is removed."""
        (tmp_path / TEXTFILE_NAME).mkdir()
        (tmp_path / TEXTFILE_NAME / "keep").write_text("")
        with pytest.raises(IsADirectoryError):
            write_textfile(tmp_path, b"x 1\n")
        assert entries(tmp_path) == {TEXTFILE_NAME}
        assert entries(tmp_path / TEXTFILE_NAME) == {"keep"}

    def test_the_temporary_file_is_never_named_prom(self, tmp_path: Path) -> None:
        """node_exporter reads every *.prom: the temp file seen mid-write must not be one."""
        seen: set[str] = set()
        original = os.replace

        def spy(src: str | Path, dst: str | Path) -> None:
            seen.update(entries(tmp_path))
            original(src, dst)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(os, "replace", spy)
            write_textfile(tmp_path, b"x 1\n")
        temps = seen - {TEXTFILE_NAME}
        assert len(temps) == 1
        assert not any(name.endswith(".prom") for name in temps)


# A separate process, like node_exporter: reads the textfile in a loop until told to stop,
# counts reads that are not exactly one of the expected contents, keeps every 50th read.
READER = """
import json, sys
from pathlib import Path
path, stop, samples = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
expected = {Path(p).read_bytes() for p in sys.argv[4:]}
reads = partial = 0
print("ready", flush=True)
while not stop.exists():
    data = path.read_bytes()
    reads += 1
    partial += data not in expected
    if reads % 50 == 0:
        (samples / f"{reads}.prom").write_bytes(data)
print(json.dumps({"reads": reads, "partial": partial}), flush=True)
"""


@pytest.mark.slow
class TestConcurrentReader:
    def test_a_reader_never_sees_a_partial_file_during_rewrites(self, tmp_path: Path) -> None:
        """While 1,000 rewrites alternate two contents, another process only reads whole files."""
        out, samples = tmp_path / "out", tmp_path / "samples"
        out.mkdir()
        samples.mkdir()
        contents = (render(fx.full_state()), render(fx.quiet_state()))
        expected = [tmp_path / "a", tmp_path / "b"]
        for path, data in zip(expected, contents, strict=True):
            path.write_bytes(data)
        write_textfile(out, contents[0])
        stop = tmp_path / "stop"
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(out / TEXTFILE_NAME), str(stop), str(samples),
             *map(str, expected)], stdout=subprocess.PIPE, text=True)
        try:
            assert reader.stdout is not None and reader.stdout.readline() == "ready\n"
            # At least REWRITES rewrites, and on until the reader has made 200 reads (it
            # keeps every 50th): the count of overlapping reads is by construction, not
            # a guess about how fast this machine is.
            i = 0
            while i < REWRITES or len(list(samples.iterdir())) < 4:
                write_textfile(out, contents[i % 2])
                i += 1
                assert i < 200 * REWRITES, "the reader made no progress"
        finally:
            stop.touch()
            result, _ = reader.communicate(timeout=60)
        counts = json.loads(result)
        assert counts["reads"] >= 200, counts
        assert counts["partial"] == 0, counts
        assert entries(out) == {TEXTFILE_NAME}
        self._promtool_accepts(sorted(samples.iterdir())[:10])

    @staticmethod
    def _promtool_accepts(samples: list[Path]) -> None:
        promtool = require_tool("promtool")
        assert samples
        for sample in samples:
            result = subprocess.run([promtool, "check", "metrics"], input=sample.read_bytes(),
                                    capture_output=True, timeout=60, check=False)
            assert result.returncode == 0 and not result.stdout + result.stderr, result
