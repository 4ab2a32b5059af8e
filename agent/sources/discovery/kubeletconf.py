"""The ``--config`` file and its ``--config-dir`` drop-ins, merged as the kubelet does.

Each file must be a KubeletConfiguration (``kind`` and ``apiVersion``), YAML or JSON, and
the fields the agent uses must have the kubelet's types: the kubelet refuses a file that
breaks either rule, so such a file is the error (KUBELET_CONFIG_UNREADABLE) and its
wrong field is not used. Drop-ins are the ``*.conf`` files of the directory in lexical
order; each one overrides what came before: a scalar replaces, a nested mapping merges
key by key, a list replaces the whole list. The result is flat:
``authentication.x509.clientCAFile`` -> (value, file that set it). The first problem is
the error; a drop-in that fails does not discard the main file's fields.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from agent.model import ReadError, ReadProblem
from agent.sources.discovery.hostfs import read_host, resolve

MAX_DROPINS = 256
KIND = "KubeletConfiguration"
API_VERSIONS = ("kubelet.config.k8s.io/v1beta1",)
# libyaml's loader when PyYAML was built with it: same safe semantics, much faster.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# The fields the agent reads, with the Go types the kubelet decodes them into.
TYPES: dict[str, tuple[type, str]] = {
    "rotateCertificates": (bool, "a boolean"), "serverTLSBootstrap": (bool, "a boolean"),
    "tlsCertFile": (str, "a string"), "tlsPrivateKeyFile": (str, "a string"),
    "authentication.x509.clientCAFile": (str, "a string"), "address": (str, "a string"),
    "port": (int, "an integer"),
}


@dataclass(frozen=True)
class MergedConfig:
    fields: dict[str, tuple[Any, str]] = field(default_factory=dict)
    files: tuple[str, ...] = ()  # host paths read, in order
    error: ReadError | None = None
    present: bool = False  # the main config exists


def load_document(data: bytes, where: str) -> tuple[dict[Any, Any] | None, ReadError | None]:
    """Parse a KubeletConfiguration (YAML or JSON); the kubelet refuses any other kind."""
    def bad(detail: str) -> tuple[None, ReadError]:
        return None, ReadError(ReadProblem.GARBAGE, detail)

    if not data.strip():
        return None, ReadError(ReadProblem.EMPTY, f"kubelet config {where} is empty")
    try:
        doc: Any = yaml.load(data, Loader=_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return bad(f"kubelet config {where} is not YAML/JSON{at}")
    except Exception as exc:  # e.g. undecodable bytes: never raise
        return bad(f"kubelet config {where} could not be parsed ({type(exc).__name__})")
    if not isinstance(doc, dict):
        return bad(f"kubelet config {where} is not a mapping but {type(doc).__name__}")
    kind, version = doc.get("kind"), doc.get("apiVersion")
    if kind != KIND or version not in API_VERSIONS:
        found = (f"kind {kind!r}, apiVersion {version!r}" if kind or version
                 else "no kind or apiVersion")
        return bad(f"{where} is not a KubeletConfiguration ({found}; the kubelet wants kind "
                   f"{KIND}, apiVersion {API_VERSIONS[0]})")
    return doc, None


def flatten(doc: dict[Any, Any], origin: str, prefix: str = "",
            into: dict[str, tuple[Any, str]] | None = None) -> dict[str, tuple[Any, str]]:
    """Nested mappings become dotted keys; everything else (lists too) is a leaf."""
    out = {} if into is None else into
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            # a mapping merges field by field: drop a scalar the same key held before
            out.pop(name, None)
            flatten(value, origin, f"{name}.", out)
        else:
            for old in [k for k in out if k.startswith(f"{name}.")]:
                del out[old]
            out[name] = (value, origin)
    return out


def _wrong_types(fields: dict[str, tuple[Any, str]]) -> list[str]:
    """The fields of one document the kubelet could not decode (removed from ``fields``)."""
    wrong = []
    for key in list(fields):
        value = fields[key][0]
        want = TYPES.get(key) or ((bool, "a boolean") if key.startswith("featureGates.")
                                  else None)
        if want is None or value is None:
            continue
        if not isinstance(value, want[0]) or (want[0] is int and isinstance(value, bool)):
            wrong.append(f"{key} is not {want[1]}")
            del fields[key]
    return wrong


def merge(documents: Sequence[tuple[str, bytes | ReadError]],
          main: str | None) -> MergedConfig:
    """Merge already-read files, in order (pure). ``main``: the --config path, if any."""
    fields: dict[str, tuple[Any, str]] = {}
    error: ReadError | None = None
    present = False
    for path, data in documents:
        if isinstance(data, ReadError):
            if path == main and data.problem is ReadProblem.NOT_FOUND:
                continue  # the kubelet would fail to start; reported as not present
            error, present = error or data, present or path == main
            continue
        present = present or path == main
        doc, doc_error = load_document(data, path)
        if doc_error is not None or doc is None:
            error = error or doc_error
            continue
        own = flatten({k: v for k, v in doc.items() if k not in ("kind", "apiVersion")}, path)
        wrong = _wrong_types(own)
        if wrong:
            error = error or ReadError(ReadProblem.GARBAGE, f"kubelet config {path}: "
                                       + "; ".join(wrong) + " (the kubelet refuses the file)")
        for key in own:  # merge: a scalar or list replaces, a mapping merges
            flatten({key: own[key][0]}, path, into=fields)
    return MergedConfig(fields=fields, files=tuple(p for p, _ in documents), error=error,
                        present=present)


def _dropins(root: str, directory: str) -> list[str]:
    try:
        names = sorted(os.listdir(resolve(root, directory)))
    except OSError:
        return []
    return [f"{directory.rstrip('/')}/{n}" for n in names if n.endswith(".conf")][:MAX_DROPINS]


def read_config(root: str, config: str | None, config_dir: str | None,
                max_bytes: int) -> MergedConfig:
    """Read and merge; never raises."""
    paths = ([config] if config else []) + (_dropins(root, config_dir) if config_dir else [])
    documents: list[tuple[str, bytes | ReadError]] = []
    for path in paths:
        data, error = read_host(root, path, max_bytes)
        documents.append((path, error if error is not None else data or b""))
    return merge(documents, config)
