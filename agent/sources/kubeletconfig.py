"""Read the kubelet config file (``--config``): the few fields the checks need.

A KubeletConfiguration is YAML or JSON (YAML reads both). The file is optional: a
missing file is ``present=False`` without an error. Anything else that stops us
using it (unreadable, not YAML, not a mapping, a field of the wrong type) is a
ReadError; the fields that could be read are still reported. Relative paths are
resolved against the config file's directory, as the kubelet does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from agent.config import MAX_FILE_BYTES
from agent.model import KubeletConfigInfo, ReadError, ReadProblem
from agent.sources.files import read_file

# libyaml's loader when PyYAML was built with it: same safe semantics, much faster.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BOOLS = {"serverTLSBootstrap": "server_tls_bootstrap",
          "rotateCertificates": "rotate_certificates"}
_PATHS = {"tlsCertFile": "tls_cert_file", "tlsPrivateKeyFile": "tls_private_key_file"}


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
    assert read.data is not None  # noqa: S101 - read_file returns data when error is None
    return interpret(read.data, where)


KIND = "KubeletConfiguration"
API_VERSIONS = ("kubelet.config.k8s.io/v1beta1",)


def load_document(data: bytes, where: str) -> tuple[dict[Any, Any] | None, ReadError | None]:
    """Parse a KubeletConfiguration (YAML or JSON); the kubelet refuses any other kind."""
    if not data.strip():
        return None, ReadError(ReadProblem.EMPTY, f"kubelet config {where} is empty")
    try:
        doc: Any = yaml.load(data, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return None, ReadError(ReadProblem.GARBAGE, f"kubelet config {where} is not "
                                                    f"YAML/JSON{at}")
    except Exception as exc:  # e.g. undecodable bytes: never raise
        return None, ReadError(ReadProblem.GARBAGE, f"kubelet config {where} could not be "
                                                    f"parsed ({type(exc).__name__})")
    if not isinstance(doc, dict):
        return None, ReadError(ReadProblem.GARBAGE, f"kubelet config {where} is not a "
                                                    f"mapping but {type(doc).__name__}")
    kind, version = doc.get("kind"), doc.get("apiVersion")
    if kind != KIND or version not in API_VERSIONS:
        found = f"kind {kind!r}, apiVersion {version!r}" if kind or version else \
            "no kind or apiVersion"
        return None, ReadError(ReadProblem.GARBAGE, f"{where} is not a KubeletConfiguration "
                               f"({found}; the kubelet wants kind {KIND}, apiVersion "
                               f"{API_VERSIONS[0]})")
    return doc, None


def interpret(data: bytes, where: str) -> KubeletConfigInfo:
    """Turn the config file's bytes into KubeletConfigInfo (pure)."""
    doc, error = load_document(data, where)
    if error is not None:
        return KubeletConfigInfo(path=where, present=True, error=error)
    assert doc is not None  # noqa: S101
    return _fields(doc, where)


def _bad(where: str, problem: ReadProblem, detail: str) -> KubeletConfigInfo:
    return KubeletConfigInfo(path=where, present=True, error=ReadError(problem, detail))


def _fields(doc: dict[Any, Any], where: str) -> KubeletConfigInfo:
    base = os.path.dirname(where)
    values: dict[str, Any] = {}
    wrong: list[str] = []
    for key, attr in _BOOLS.items():
        value = doc.get(key)
        if isinstance(value, bool):
            values[attr] = value
        elif value is not None:
            wrong.append(f"{key} is not a boolean")
    auth = doc.get("authentication")
    x509_section = auth.get("x509") if isinstance(auth, dict) else None
    ca = x509_section.get("clientCAFile") if isinstance(x509_section, dict) else None
    for key, attr, value in [(k, a, doc.get(k)) for k, a in _PATHS.items()] + [
            ("authentication.x509.clientCAFile", "client_ca_file", ca)]:
        if isinstance(value, str):
            if value:  # "" is the kubelet's "not set"
                values[attr] = os.path.normpath(os.path.join(base, value))
        elif value is not None:
            wrong.append(f"{key} is not a string")
    error = None
    if wrong:
        error = ReadError(ReadProblem.GARBAGE, f"kubelet config {where}: " + "; ".join(wrong))
    return KubeletConfigInfo(path=where, present=True, error=error, **values)
