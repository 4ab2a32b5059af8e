"""Make untrusted text safe for a terminal: one visible escape per invisible character.

Certificate fields (CN, O, issuer, SANs), file names and host names are written by
whoever made the certificate or the file. Printed raw, an ESC sequence recolours or clears
the operator's terminal, a newline forges a table row, a bidi override (U+202E) shows a
name backwards. :func:`printable` keeps every printable character and replaces each other
one (Unicode categories Cc, Cf, Cs, Co, Cn, Zl, Zp and every space but U+0020) with its
Python escape, so the text stays one line and shows exactly what is there. Pure.
"""

from __future__ import annotations


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped (idempotent)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)
