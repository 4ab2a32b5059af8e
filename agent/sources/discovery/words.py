"""systemd's word splitting and ``$VAR`` / ``${VAR}`` expansion. Pure.

Splitting follows ``extract_first_word(…, EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE)``: words
are separated by whitespace; ``"…"`` and ``'…'`` may appear anywhere in a word and are
removed; a backslash escapes the next character (``\\n``, ``\\t`` and friends are C
escapes). An unterminated quote is an error: systemd ignores such an assignment.

Expansion follows ``replace_env_argv``: a word that is exactly ``$NAME`` becomes the
variable's value split at whitespace (zero or more words, quotes honoured); ``${NAME}``
anywhere in a word is replaced by the exact value; ``$$`` is a literal ``$``; an
unset variable is empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", '"': '"', "'": "'", "s": " ", " ": " ", "$": "$"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BRACED = re.compile(r"\$\$|\$\{([^}]*)\}")
WHITESPACE = " \t\n\r"

Env = Mapping[str, tuple[str, str]]  # name -> (value, origin)


class QuoteError(ValueError):
    """An unterminated quote or a trailing backslash."""


def split(text: str) -> list[str]:
    """Split ``text`` into words as systemd does; raise QuoteError on bad quoting."""
    words: list[str] = []
    current: list[str] = []
    in_word = False
    quote = ""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        i += 1
        if c == "\\" and quote != "'":
            if i >= n:
                raise QuoteError("a backslash at the end")
            nxt = text[i]
            i += 1
            current.append(_ESCAPES.get(nxt, nxt))
            in_word = True
        elif quote:
            if c == quote:
                quote = ""
            else:
                current.append(c)
        elif c in "\"'":
            quote, in_word = c, True
        elif c in WHITESPACE:
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(c)
            in_word = True
    if quote:
        raise QuoteError(f"unterminated {quote} quote")
    if in_word:
        words.append("".join(current))
    return words


def split_relaxed(text: str) -> list[str]:
    """Split a variable's value (``$VAR``): bad quoting keeps the rest as plain words."""
    try:
        return split(text)
    except QuoteError:
        return text.split()


def is_name(text: str) -> bool:
    return _NAME.match(text) is not None


def expand(words: Sequence[tuple[str, str]], env: Env) -> list[tuple[str, str]]:
    """Expand each ``(word, origin)``; an expanded word takes its variable's origin."""
    out: list[tuple[str, str]] = []
    for word, origin in words:
        if word.startswith("$") and not word.startswith("${") and is_name(word[1:]):
            value, where = env.get(word[1:], ("", origin))
            out.extend((w, where) for w in split_relaxed(value))
            continue
        expanded, where = _braced(word, origin, env)
        out.append((expanded, where))
    return out


def _braced(word: str, origin: str, env: Env) -> tuple[str, str]:
    """``${NAME}`` and ``$$`` in one word; the origin of the last variable used."""
    where = origin
    parts: list[str] = []
    last = 0
    for m in _BRACED.finditer(word):
        parts.append(word[last:m.start()])
        last = m.end()
        if m.group(0) == "$$":
            parts.append("$")
            continue
        value, where = env.get(m.group(1), ("", where))
        parts.append(value)
    parts.append(word[last:])
    return "".join(parts), where
