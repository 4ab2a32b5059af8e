"""systemd unit files: the ``[Service]`` settings that decide the kubelet's command line.

Pure. :func:`assignments` reads one file as systemd's ``config_parse`` does: sections,
``#``/``;`` comments, a trailing backslash continues the line (comment lines inside a
continuation are skipped; a continuation at the end of the file ends the line).
:func:`fold` applies the assignments of the unit and its drop-ins, in order:
``ExecStart=``, ``Environment=`` and ``EnvironmentFile=`` append, and an empty value
resets the list. Bad quoting makes systemd ignore that one assignment; so do we, and
say so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agent.sources.discovery.words import QuoteError, is_name, split

KEYS = frozenset({"ExecStart", "Environment", "EnvironmentFile"})
_EXEC_PREFIXES = "-@:+!"


@dataclass(frozen=True)
class Assignment:
    key: str
    value: str
    origin: str  # the file it is in


@dataclass(frozen=True)
class EnvFileRef:
    path: str
    optional: bool  # a leading "-": a missing file is no error
    origin: str


@dataclass(frozen=True)
class Service:
    """The ``[Service]`` settings after every file was applied."""

    exec_start: tuple[tuple[tuple[str, str], ...], ...] = ()  # each: words with origins
    environment: tuple[tuple[str, str, str], ...] = ()  # (name, value, origin), in order
    env_files: tuple[EnvFileRef, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)


def _lines(text: str) -> Iterable[str]:
    """Logical lines: continuations joined, comments and blank lines dropped."""
    pending: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if pending is not None and line[:1] in ("#", ";"):
            continue  # systemd skips comment lines inside a continuation
        if pending is None and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending = (pending or "") + line[:-1] + " "
            continue
        yield (pending or "") + line
        pending = None
    if pending is not None:
        yield pending


def assignments(text: str, origin: str) -> list[Assignment]:
    """The ExecStart/Environment/EnvironmentFile assignments of ``[Service]``."""
    out: list[Assignment] = []
    section = ""
    for line in _lines(text):
        if line.startswith("["):
            section = line.strip("[] ")
            continue
        key, sep, value = line.partition("=")
        if section == "Service" and sep and key.strip() in KEYS:
            out.append(Assignment(key.strip(), value.strip(), origin))
    return out


def _exec(value: str) -> list[str]:
    """An ExecStart value's words: path and arguments, prefixes (``-@:+!``) removed."""
    i = 0
    while i < len(value) and value[i] in _EXEC_PREFIXES:
        i += 1
    prefixes, words = value[:i], split(value[i:])
    if "@" in prefixes and len(words) > 1:
        del words[1]  # "@": the second word is only argv[0]
    return words


def _environment(a: Assignment, env: list[tuple[str, str, str]], problems: list[str]) -> None:
    for word in split(a.value):
        name, sep, val = word.partition("=")
        if sep and is_name(name):
            env.append((name, val, a.origin))
        else:
            # the word itself is not shown: an environment may carry a secret
            problems.append(f"{a.origin}: an Environment= word is not NAME=VALUE; ignored")


def fold(items: Iterable[Assignment]) -> Service:
    """Apply assignments in order (unit first, then drop-ins in lexical order)."""
    execs: list[tuple[tuple[str, str], ...]] = []
    env: list[tuple[str, str, str]] = []
    files: list[EnvFileRef] = []
    problems: list[str] = []
    lists: dict[str, list[Any]] = {"ExecStart": execs, "Environment": env,
                                   "EnvironmentFile": files}
    for a in items:
        if not a.value:  # an empty assignment resets the list
            lists[a.key].clear()
            continue
        try:
            if a.key == "ExecStart":
                execs.append(tuple((w, a.origin) for w in _exec(a.value)))
            elif a.key == "Environment":
                _environment(a, env, problems)
            else:
                optional = a.value.startswith("-")
                files.append(EnvFileRef(a.value.lstrip("-").strip(), optional, a.origin))
        except QuoteError as exc:
            problems.append(f"{a.origin}: {a.key}= ignored ({exc}), as systemd does")
    if len(execs) > 1:
        problems.append("more than one ExecStart= remains: systemd refuses to start a "
                        "Type=simple service; the first one is used here")
    return Service(tuple(execs), tuple(env), tuple(files), tuple(problems))
