"""The kubelet's command line, parsed as spf13/pflag parses it. Pure.

* ``--name=value`` and ``--name value`` (the next word, whatever it is) for value flags;
* a boolean flag given bare means true (``--rotate-certificates``); ``--b=false`` sets
  false, and ``--b false`` is true followed by a stray word, exactly as pflag does;
* the last occurrence wins, except ``--feature-gates``, whose ``A=true,B=false`` lists
  merge key by key (a map flag);
* ``_`` and ``-`` are the same in names (the kubelet's ``WordSepNormalizeFunc``);
* ``--`` ends the flags; words that are not flags are ignored;
* unknown flags are ignored and never take the next word: kubelet versions add and
  remove flags, and a stray word is harmless while a swallowed ``--cert-dir`` is not.

Every value keeps the origin of its word (``kubelet pid 812``, a unit or env file).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# Flags whose values the agent uses. Everything else is parsed past, never interpreted.
VALUE_FLAGS = frozenset({
    "cert-dir", "config", "config-dir", "kubeconfig", "bootstrap-kubeconfig",
    "hostname-override", "node-ip", "tls-cert-file", "tls-private-key-file",
    "client-ca-file", "address", "port", "root-dir", "feature-gates",
})
BOOL_FLAGS = frozenset({"rotate-certificates", "rotate-server-certificates"})
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # Go's strconv.ParseBool
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})

Word = tuple[str, str]  # (word, where it came from)


@dataclass(frozen=True)
class Flag:
    value: str
    origin: str  # where the word came from, e.g. "kubelet pid 812"


@dataclass(frozen=True)
class ParsedFlags:
    values: dict[str, Flag] = field(default_factory=dict)  # last occurrence per name
    gates: dict[str, tuple[bool, str]] = field(default_factory=dict)  # gate -> (on, origin)
    problems: tuple[str, ...] = ()  # flags the kubelet itself would refuse

    def get(self, name: str) -> Flag | None:
        return self.values.get(name)


def parse_bool(text: str) -> bool | None:
    """Go's ``strconv.ParseBool``; None when it is not a boolean."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def parse_gates(text: str) -> tuple[dict[str, bool], list[str]]:
    """``A=true,B=false`` -> {A: True, B: False}, plus what could not be read."""
    gates: dict[str, bool] = {}
    bad: list[str] = []
    for raw_item in text.split(","):
        item = raw_item.strip()
        if not item:
            continue
        key, sep, raw = item.partition("=")
        value = parse_bool(raw.strip()) if sep else None
        if value is None:
            bad.append(item)
        else:
            gates[key.strip()] = value
    return gates, bad


def parse(words: Iterable[Word]) -> ParsedFlags:
    """Parse the arguments after argv[0]. Never raises."""
    values: dict[str, Flag] = {}
    gates: dict[str, tuple[bool, str]] = {}
    problems: list[str] = []
    items = list(words)
    i = 0
    while i < len(items):
        word, origin = items[i]
        i += 1
        if word == "--":
            break
        if not word.startswith("--") or len(word) == 2:
            continue  # a positional word or a shorthand (-v=2): nothing the agent needs
        name, sep, value = word[2:].partition("=")
        name = name.replace("_", "-")
        if name in BOOL_FLAGS:
            parsed = parse_bool(value) if sep else True
            if parsed is None:
                problems.append(f"--{name}={value} is not a boolean ({origin})")
                continue
            values[name] = Flag("true" if parsed else "false", origin)
        elif name in VALUE_FLAGS:
            if not sep:
                if i >= len(items):
                    problems.append(f"--{name} has no value ({origin})")
                    continue
                value, origin = items[i][0], items[i][1]
                i += 1
            if name == "feature-gates":
                parsed_gates, bad = parse_gates(value)
                gates.update({k: (v, origin) for k, v in parsed_gates.items()})
                problems.extend(f"--feature-gates item {b!r} is not NAME=BOOL ({origin})"
                                for b in bad)
            values[name] = Flag(value, origin)
    return ParsedFlags(values=values, gates=gates, problems=tuple(problems))
