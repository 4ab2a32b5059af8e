"""Read one kubelet config file (``--config``) alone: what it says, field by field.

Discovery (:mod:`agent.sources.discovery.kubeletconf`) reads the config with its
drop-ins and applies flags and defaults; this is the same reading for a single file,
without defaults (an absent field is None). A missing file is ``present=False``
without an error; anything the kubelet would refuse (unreadable, not YAML/JSON, not a
KubeletConfiguration, a field of the wrong type) is a ReadError, and the fields that
could be read are still reported. Relative paths are resolved against the config file's
directory, as the kubelet does.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.config import MAX_FILE_BYTES
from agent.model import KubeletConfigInfo, ReadError, ReadProblem
from agent.sources.discovery.kubeletconf import MergedConfig, merge
from agent.sources.files import read_file

_PATHS = {"tlsCertFile": "tls_cert_file", "tlsPrivateKeyFile": "tls_private_key_file",
          "authentication.x509.clientCAFile": "client_ca_file"}


def read_kubelet_config(path: Path | None, max_bytes: int = MAX_FILE_BYTES) -> KubeletConfigInfo:
    """Read and interpret the kubelet config at ``path`` (None: not configured). Never raises."""
    if path is None:
        return KubeletConfigInfo(path=None)
    where = os.path.abspath(path)
    read = read_file(where, max_bytes)
    if read.error is not None:
        if read.error.problem is ReadProblem.NOT_FOUND:
            return KubeletConfigInfo(path=where)
        return KubeletConfigInfo(path=where, present=True, error=read.error)
    return interpret(read.data or b"", where)


def interpret(data: bytes, where: str) -> KubeletConfigInfo:
    """Turn the config file's bytes into KubeletConfigInfo (pure)."""
    documents: list[tuple[str, bytes | ReadError]] = [(where, data)]
    return info(merge(documents, where), where)


def info(merged: MergedConfig, where: str) -> KubeletConfigInfo:
    """The fields of a merged config as the checks read them (no defaults applied)."""
    def value(key: str) -> object:
        found = merged.fields.get(key)
        return None if found is None else found[0]

    paths: dict[str, str] = {}
    for key, attr in _PATHS.items():
        found = merged.fields.get(key)
        if found is not None and isinstance(found[0], str) and found[0]:  # "": not set
            paths[attr] = os.path.normpath(os.path.join(os.path.dirname(found[1]), found[0]))
    stb, rotate = value("serverTLSBootstrap"), value("rotateCertificates")
    return KubeletConfigInfo(
        path=where, present=True, error=merged.error,
        server_tls_bootstrap=stb if isinstance(stb, bool) else None,
        rotate_certificates=rotate if isinstance(rotate, bool) else None, **paths)
