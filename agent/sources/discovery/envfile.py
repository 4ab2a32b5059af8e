"""``EnvironmentFile=`` contents, read as systemd's ``load_env_file`` reads them. Pure.

One ``NAME=VALUE`` per line; blank lines and lines starting with ``#`` or ``;`` are
comments; a leading ``export`` is ignored; whitespace around the name and before the
value is dropped, and trailing whitespace of an unquoted value too; a value may be
``'single'`` (literal) or ``"double"`` quoted (``\\`` escapes ``"``, ``\\``, ``$`` and a
newline); in an unquoted value a backslash escapes the next character and a ``#`` is
literal. A line that is not an assignment of a valid name is ignored, as systemd does
(with a note here).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.sources.discovery.words import is_name


@dataclass(frozen=True)
class EnvFile:
    values: dict[str, str]
    problems: tuple[str, ...] = ()


def _value(text: str, i: int) -> tuple[str, int]:
    """The value starting at ``text[i]`` (after ``=``); returns it and the next line start."""
    out: list[str] = []
    n = len(text)
    while i < n and text[i] in " \t":
        i += 1
    trailing = 0  # unquoted trailing whitespace to drop at the end of the line
    while i < n and text[i] != "\n":
        c = text[i]
        if c in "'\"":
            end, chunk = _quoted(text, i + 1, c)
            out.append(chunk)
            trailing = 0
            i = end
            continue
        if c == "\\" and i + 1 < n:
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
            trailing = 0
            continue
        out.append(c)
        trailing = trailing + 1 if c in " \t" else 0
        i += 1
    value = "".join(out)
    return (value[:-trailing] if trailing else value), i + 1


def _quoted(text: str, i: int, quote: str) -> tuple[int, str]:
    """A quoted chunk from ``text[i]`` to the closing quote (or the end of the text)."""
    out: list[str] = []
    n = len(text)
    while i < n and text[i] != quote:
        c = text[i]
        if quote == '"' and c == "\\" and i + 1 < n and text[i + 1] in '"\\`$\n':
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return i + 1, "".join(out)


def parse_env(data: str) -> EnvFile:
    """Every assignment in the file, later ones winning. Never raises."""
    values: dict[str, str] = {}
    problems: list[str] = []
    i, n, line_no = 0, len(data), 0
    while i < n:
        line_no += 1
        end = data.find("\n", i)
        line = data[i:] if end < 0 else data[i:end]
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            i = n if end < 0 else end + 1
            continue
        if stripped.startswith("export ") or stripped.startswith("export\t"):
            stripped = stripped[7:].lstrip()
        name, sep, _ = stripped.partition("=")
        name = name.strip()
        if not sep or not is_name(name):
            problems.append(f"line {line_no} is not NAME=VALUE; ignored")
            i = n if end < 0 else end + 1
            continue
        start = i + line.index("=") + 1
        value, i = _value(data, start)
        values[name] = value
    return EnvFile(values=values, problems=tuple(problems))
