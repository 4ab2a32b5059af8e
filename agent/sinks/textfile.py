"""Atomic, durable writes of the node_exporter textfile ``kubelet_cert_agent.prom``.

node_exporter's textfile collector reads every ``*.prom`` file in its directory at each
scrape, so a reader must only ever see a complete file: the data goes to a temporary file
in the same directory (same filesystem, and a name that does not end in ``.prom`` so
node_exporter ignores it), is fsync'd, made mode 0644 (a hardened systemd unit's
``UMask=0077`` would otherwise leave node_exporter unable to read it), renamed over the
target with ``os.replace`` and the directory is fsync'd so the rename survives a crash.
prometheus_client's own ``write_to_textfile`` does neither the fsync nor the chmod.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TEXTFILE_NAME = "kubelet_cert_agent.prom"
FILE_MODE = 0o644
_TEMP_PREFIX = ".kubelet_cert_agent."
_TEMP_SUFFIX = ".tmp"  # anything but ".prom"


def write_textfile(directory: Path, data: bytes) -> None:
    """Atomically replace ``directory/kubelet_cert_agent.prom`` with ``data``.

    Raises ``OSError`` (the caller counts it in ``textfile_write_errors_total`` and keeps
    running); on any failure the temporary file is removed and the previous textfile, if
    any, is left untouched.
    """
    target = directory / TEXTFILE_NAME
    fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=directory)
    replaced = False
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), FILE_MODE)
        os.replace(temp_name, target)
        replaced = True
        _fsync_directory(directory)
    finally:
        if not replaced:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable: fsync the directory entry itself."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
