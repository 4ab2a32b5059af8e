"""RFC 4514 text of a certificate's subject and issuer, read straight from its DER bytes.

``x509.Certificate.subject`` builds a Python object per attribute, RDN and name before
``rfc4514_string()`` can join them: for a directory of ten thousand certificates that is
most of the cost of reading them. Here the two names are located in the certificate's DER
and formatted directly, for the names certificates actually carry (single-valued RDNs of
the RFC 4514 attribute types, as UTF8String, PrintableString or IA5String values). Any
other name gives ``None`` and the caller asks cryptography, so the text is always
cryptography's (tests/test_dername.py compares the two on generated names). Pure, no I/O.
"""

from __future__ import annotations

import re
from functools import lru_cache

# DER content bytes of the attribute types RFC 4514 names (cryptography's short names).
_SHORT_NAMES = {
    bytes.fromhex("550403"): "CN",
    bytes.fromhex("550407"): "L",
    bytes.fromhex("550408"): "ST",
    bytes.fromhex("55040a"): "O",
    bytes.fromhex("55040b"): "OU",
    bytes.fromhex("550406"): "C",
    bytes.fromhex("550409"): "STREET",
    bytes.fromhex("0992268993f22c640119"): "DC",
    bytes.fromhex("0992268993f22c640101"): "UID",
}
_SEQUENCE, _SET, _OID, _CONTEXT_0 = 0x30, 0x31, 0x06, 0xA0
_UTF8, _PRINTABLE, _IA5 = 12, 19, 22
# What ASN.1 allows in a PrintableString: anything else is left to cryptography to judge.
_PRINTABLE_CHARS = re.compile(rb"[A-Za-z0-9 '()+,\-./:=?]*")
# RFC 4514 section 2.4: characters escaped with a backslash anywhere in a value.
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "+": "\\+", ",": "\\,", ";": "\\;",
                          "<": "\\<", ">": "\\>", "\0": "\\00"})


class _Unsupported(Exception):
    """A name (or encoding) this module leaves to cryptography."""


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``."""
    if pos + 2 > end:
        raise _Unsupported
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 3 or pos + count > end:
            raise _Unsupported
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > end:
        raise _Unsupported
    return tag, pos, pos + length


def _escape(value: str) -> str:
    if not value:
        return ""
    value = value.translate(_ESCAPES)
    if value[0] == "#" or (value[0] == " " and len(value) > 1):
        value = "\\" + value
    if value[-1] == " ":
        value = value[:-1] + "\\ "
    return value


def _value(tag: int, raw: bytes) -> str:
    if tag == _UTF8:
        return raw.decode("utf-8")  # UnicodeDecodeError is a ValueError: unsupported
    if tag == _PRINTABLE and _PRINTABLE_CHARS.fullmatch(raw):
        return raw.decode("ascii")
    if tag == _IA5 and raw.isascii():
        return raw.decode("ascii")
    raise _Unsupported


@lru_cache(maxsize=256)
def _name_text(name: bytes) -> str:
    """RFC 4514 text of a DER Name (cached: the issuers of a big directory are few)."""
    parts: list[str] = []
    pos, end = 0, len(name)
    while pos < end:
        tag, start, rdn_end = _tlv(name, pos, end)
        if tag != _SET:
            raise _Unsupported
        tag, attr_start, attr_end = _tlv(name, start, rdn_end)
        if tag != _SEQUENCE or attr_end != rdn_end:  # multi-valued RDN: cryptography's
            raise _Unsupported
        tag, oid_start, oid_end = _tlv(name, attr_start, attr_end)
        short = _SHORT_NAMES.get(name[oid_start:oid_end]) if tag == _OID else None
        if short is None:
            raise _Unsupported
        tag, value_start, value_end = _tlv(name, oid_end, attr_end)
        if value_end != attr_end:
            raise _Unsupported
        parts.append(f"{short}={_escape(_value(tag, name[value_start:value_end]))}")
        pos = rdn_end
    return ",".join(reversed(parts))  # RFC 4514 lists the RDNs last to first


def _names(der: bytes) -> tuple[bytes, bytes]:
    """The DER contents of (subject, issuer) in a DER certificate."""
    _, start, end = _tlv(der, 0, len(der))  # Certificate
    tag, pos, tbs_end = _tlv(der, start, end)  # TBSCertificate
    if tag != _SEQUENCE:
        raise _Unsupported
    tag, _, after = _tlv(der, pos, tbs_end)
    if tag == _CONTEXT_0:  # version
        pos = after
    for _ in range(2):  # serialNumber, signature algorithm
        pos = _tlv(der, pos, tbs_end)[2]
    tag, issuer_start, issuer_end = _tlv(der, pos, tbs_end)
    if tag != _SEQUENCE:
        raise _Unsupported
    pos = _tlv(der, issuer_end, tbs_end)[2]  # validity
    tag, subject_start, subject_end = _tlv(der, pos, tbs_end)
    if tag != _SEQUENCE:
        raise _Unsupported
    return der[subject_start:subject_end], der[issuer_start:issuer_end]


def subject_and_issuer(der: bytes) -> tuple[str, str] | None:
    """RFC 4514 (subject, issuer) of a DER certificate cryptography has already loaded,
    or None when either name is one this module leaves to cryptography."""
    try:
        subject, issuer = _names(der)
        return _name_text.__wrapped__(subject), _name_text(issuer)
    except (_Unsupported, ValueError):
        return None


def clear_cache() -> None:
    _name_text.cache_clear()
