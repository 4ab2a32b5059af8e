"""The ``--config`` file and its ``--config-dir`` drop-ins, merged as the kubelet does.

Each file must be a KubeletConfiguration (``kind`` and ``apiVersion``), YAML or JSON.
Drop-ins are the ``*.conf`` files of the directory in lexical order; each one overrides
what came before: a scalar replaces, a nested mapping merges key by key, a list
replaces the whole list. The result is flat: ``authentication.x509.clientCAFile`` ->
(value, file that set it). The first file that cannot be used is the error; a
drop-in that fails does not discard the main file's fields.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from agent.model import ReadError, ReadProblem
from agent.sources.discovery.hostfs import read_host, resolve
from agent.sources.kubeletconfig import load_document

MAX_DROPINS = 256


@dataclass(frozen=True)
class MergedConfig:
    fields: dict[str, tuple[Any, str]] = field(default_factory=dict)
    files: tuple[str, ...] = ()  # host paths read, in order
    error: ReadError | None = None
    present: bool = False  # the main config exists


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


def _dropins(root: str, directory: str) -> list[str]:
    try:
        names = sorted(os.listdir(resolve(root, directory)))
    except OSError:
        return []
    return [f"{directory.rstrip('/')}/{n}" for n in names if n.endswith(".conf")][:MAX_DROPINS]


def read_config(root: str, config: str | None, config_dir: str | None,
                max_bytes: int) -> MergedConfig:
    """Read and merge; never raises."""
    fields: dict[str, tuple[Any, str]] = {}
    files: list[str] = []
    error: ReadError | None = None
    present = False
    paths = ([config] if config else []) + (_dropins(root, config_dir) if config_dir else [])
    for i, path in enumerate(paths):
        data, read_error = read_host(root, path, max_bytes)
        files.append(path)
        if read_error is not None:
            if i == 0 and config and read_error.problem is ReadProblem.NOT_FOUND:
                continue  # the kubelet would fail to start; reported as not present
            error = error or read_error
            present = present or i == 0
            continue
        present = present or (i == 0 and bool(config))
        assert data is not None  # noqa: S101
        doc, doc_error = load_document(data, path)
        if doc_error is not None:
            error = error or doc_error
            continue
        assert doc is not None  # noqa: S101
        flatten({k: v for k, v in doc.items() if k not in ("kind", "apiVersion")}, path,
                into=fields)
    return MergedConfig(fields=fields, files=tuple(files), error=error, present=present)
