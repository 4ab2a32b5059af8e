"""Bytes -> certificates, key fingerprint and chain facts. Pure: no I/O; raises only
:class:`~agent.faults.AgentFault` (a bug of ours, never a problem with the input).

Accepts what the kubelet and operators actually write: PEM bundles holding one or more
certificates and at most one private key in any order (``EC PRIVATE KEY``,
``RSA PRIVATE KEY``, PKCS#8 ``PRIVATE KEY``), and single DER certificates. A private
key is reduced at once to the SHA-256 of its public key; its bytes are never kept and
never reach an error message (every message here is written by us, not echoed).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.faults import AgentFault
from agent.model import CertInfo, ReadError, ReadProblem
from agent.sources.x509info import CertificateRejected, describe_der, spki_sha256, subject_of

_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,64})-----")
_KEY_LABELS = frozenset({b"EC PRIVATE KEY", b"RSA PRIVATE KEY", b"PRIVATE KEY",
                         b"ENCRYPTED PRIVATE KEY"})
_ASN1_SEQUENCE = 0x30


@dataclass(frozen=True)
class ParsedBundle:
    """What one file's bytes hold. ``error`` set means no certificate is usable."""

    certificates: tuple[CertInfo, ...] = ()  # file order
    leaf: CertInfo | None = None
    key_present: bool = False
    key_spki_sha256: str | None = None
    key_error: ReadError | None = None
    error: ReadError | None = None
    format: Literal["pem", "der"] = "pem"
    chain_verified_to_anchor: bool | None = None  # None: no anchors given
    self_signed: bool = False  # in the kubelet's sense (see the domain notes)
    x509_certificates: tuple[x509.Certificate, ...] = field(
        default=(), compare=False, repr=False)  # for use as trust anchors


@dataclass(frozen=True)
class _Block:
    label: bytes
    number: int  # 1-based position among the file's PEM blocks, for messages
    body: bytes  # the text between BEGIN and END lines


def _error(problem: ReadProblem, detail: str) -> ParsedBundle:
    return ParsedBundle(error=ReadError(problem, detail))


def _kind(label: bytes) -> str:
    """A block's kind for messages; key labels are never echoed (outputs are scanned for them)."""
    return "a private-key block" if b"PRIVATE KEY" in label else label.decode("ascii").lower()


def _pem_blocks(data: bytes) -> list[_Block] | ReadError:
    """Every BEGIN/END frame, or TRUNCATED for a BEGIN whose END never comes."""
    blocks: list[_Block] = []
    pos = 0
    while (m := _BEGIN.search(data, pos)) is not None:
        label = m.group(1)
        end_marker = b"-----END " + label + b"-----"
        end = data.find(end_marker, m.end())
        next_begin = data.find(b"-----BEGIN ", m.end())
        if end < 0 or 0 <= next_begin < end:
            return ReadError(ReadProblem.TRUNCATED,
                             f"PEM block #{len(blocks) + 1} ({_kind(label)}) has no END line")
        blocks.append(_Block(label, len(blocks) + 1, data[m.end():end]))
        pos = end + len(end_marker)
    return blocks


def _b64(body: bytes) -> bytes:
    return base64.b64decode(b"".join(body.split()), validate=True)


def parse_key(data: bytes) -> tuple[str | None, ReadError | None]:
    """A separate key file (kubelet.key, tlsPrivateKeyFile) -> (public SPKI SHA-256, error)."""
    try:
        if not data.strip():
            return None, ReadError(ReadProblem.EMPTY, "key file is empty")
        if b"-----BEGIN " not in data:
            return _der_key(data)
        blocks = _pem_blocks(data)
        if isinstance(blocks, ReadError):
            return None, blocks
        for block in blocks:
            if block.label in _KEY_LABELS:
                return _pem_key(block)
        return None, ReadError(ReadProblem.NO_CERTIFICATE, "file holds no private key")
    except Exception as exc:  # every input problem is handled above: this is our bug
        raise AgentFault("parse", f"key parser failed ({type(exc).__name__})") from exc


def _pem_key(block: _Block) -> tuple[str | None, ReadError | None]:
    if block.label == b"ENCRYPTED PRIVATE KEY" or b"ENCRYPTED" in block.body[:200]:
        return None, ReadError(ReadProblem.GARBAGE,
                               "private key is encrypted; cannot check it against the certificate")
    label = block.label
    pem = b"-----BEGIN " + label + b"-----" + block.body + b"-----END " + label + b"-----\n"
    try:
        key = serialization.load_pem_private_key(pem, password=None,
                                                 unsafe_skip_rsa_key_validation=True)
    except Exception:  # its message could quote the input: write our own
        return None, ReadError(ReadProblem.GARBAGE,
                               f"{_kind(block.label)} (PEM block #{block.number}) is not a "
                               "valid key")
    return spki_sha256(key.public_key()), None


def _der_key(data: bytes) -> tuple[str | None, ReadError | None]:
    try:
        key = serialization.load_der_private_key(data, password=None,
                                                 unsafe_skip_rsa_key_validation=True)
    except Exception:
        return None, ReadError(ReadProblem.GARBAGE, "neither a PEM nor a DER private key")
    return spki_sha256(key.public_key()), None


def parse_bundle(data: bytes, anchors: Sequence[x509.Certificate] = (), *,
                 keep_x509: bool = True, eager: bool = True) -> ParsedBundle:
    """Parse a certificate file's bytes; every failure is a specific ReadError.

    ``keep_x509=False`` leaves ``x509_certificates`` empty (only trust anchors need
    cryptography's objects; the inventory caches everything else without them).
    ``eager=False`` leaves each certificate's details (SANs, key usages, key) to be
    derived on first use, and does not reject a certificate for a malformed extension:
    for the thousands of ``--watch`` and CA certificates only names and dates matter.
    """
    try:
        return _parse(data, anchors, keep_x509, eager)
    except Exception as exc:  # every input problem is a ReadError above: this is our bug
        # Not a finding about the operator's file (issue 8): the daemon keeps the last good
        # verdict, counts internal_errors_total{component="parse"} and logs the traceback.
        raise AgentFault("parse", f"certificate parser failed ({type(exc).__name__})") from exc


def _parse(data: bytes, anchors: Sequence[x509.Certificate], keep_x509: bool,
           eager: bool) -> ParsedBundle:
    if not data.strip():
        return _error(ReadProblem.EMPTY, "file is empty" if not data else "file holds only blanks")
    if b"-----BEGIN " not in data:
        return _parse_der(data, anchors, keep_x509, eager)
    blocks = _pem_blocks(data)
    if isinstance(blocks, ReadError):
        return ParsedBundle(error=blocks)
    if not blocks:
        return _error(ReadProblem.GARBAGE, "malformed PEM BEGIN line")
    return _parse_blocks(blocks, anchors, keep_x509, eager)


def _described(der: bytes, eager: bool) -> tuple[x509.Certificate, CertInfo]:
    """describe_der, and with ``eager`` the details now, rejecting what they cannot decode."""
    found = describe_der(der)
    if eager and (error := found[1].details.error) is not None:
        raise CertificateRejected(f"certificate has a {error}")
    return found


def _parse_blocks(blocks: list[_Block], anchors: Sequence[x509.Certificate],
                  keep_x509: bool, eager: bool) -> ParsedBundle:
    """Certificates in file order and the first private key; other blocks are ignored."""
    certs: list[tuple[x509.Certificate, CertInfo]] = []
    key: tuple[str | None, ReadError | None] | None = None
    for block in blocks:
        if block.label == b"CERTIFICATE":
            try:
                certs.append(_described(_b64(block.body), eager))
            except (binascii.Error, ValueError) as exc:
                why = str(exc) if isinstance(exc, CertificateRejected) else "not valid base64"
                return _error(ReadProblem.BAD_CERTIFICATE,
                              f"CERTIFICATE block #{block.number}: {why}")
        elif block.label in _KEY_LABELS and key is None:
            key = _pem_key(block)
    if not certs:
        return _error(ReadProblem.NO_CERTIFICATE, _no_certificate(blocks, key is not None))
    return _assemble(certs, key, "pem", anchors, keep_x509)


def _no_certificate(blocks: list[_Block], has_key: bool) -> str:
    if has_key:
        return "holds a private key but no certificate"
    labels = ", ".join(sorted({_kind(b.label) if b"PRIVATE KEY" in b.label
                               else b.label.decode("ascii") for b in blocks}))
    return f"PEM holds {labels} but no certificate"


def _parse_der(data: bytes, anchors: Sequence[x509.Certificate],
               keep_x509: bool, eager: bool) -> ParsedBundle:
    if data[0] != _ASN1_SEQUENCE:
        return _error(ReadProblem.GARBAGE, "neither PEM nor DER (no BEGIN line, no ASN.1 header)")
    try:
        cert = _described(data, eager)
    except CertificateRejected:
        if _der_key(data)[0] is not None:
            return _error(ReadProblem.NO_CERTIFICATE,
                          "holds a private key (DER) but no certificate")
        return _error(ReadProblem.GARBAGE, "DER data is not a certificate")
    return _assemble([cert], None, "der", anchors, keep_x509)


def _assemble(certs: list[tuple[x509.Certificate, CertInfo]],
              key: tuple[str | None, ReadError | None] | None,
              fmt: Literal["pem", "der"], anchors: Sequence[x509.Certificate],
              keep_x509: bool) -> ParsedBundle:
    # The CA flag is a detail (derived on first use): a single certificate is the leaf.
    leaf_at = 0 if len(certs) == 1 else next(
        (i for i, (_, info) in enumerate(certs) if not info.is_ca), 0)
    if len(certs) == 1 and not anchors:  # nothing to walk: self-signed iff self-issued
        trusted, self_signed = None, certs[0][1].self_issued
    else:
        trusted, self_signed = _chain_facts(certs, leaf_at, anchors)
    return ParsedBundle(
        certificates=tuple(info for _, info in certs),
        leaf=certs[leaf_at][1],
        key_present=key is not None,
        key_spki_sha256=key[0] if key else None,
        key_error=key[1] if key else None,
        format=fmt,
        chain_verified_to_anchor=trusted,
        self_signed=self_signed,
        x509_certificates=tuple(cert for cert, _ in certs) if keep_x509 else (),
    )


def _issued_by(child: x509.Certificate, child_issuer: str, parent: x509.Certificate,
               parent_subject: str) -> bool:
    """``parent`` signed ``child``. The names (strings, already known) are compared first:
    building cryptography's Name objects costs more than the whole parse."""
    if child_issuer != parent_subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except Exception:  # bad signature, unsupported algorithm, ...
        return False
    return True


def _chain_facts(certs: list[tuple[x509.Certificate, CertInfo]], leaf_at: int,
                 anchors: Sequence[x509.Certificate]) -> tuple[bool | None, bool]:
    """(chains to an anchor, self-signed in the kubelet's sense).

    Walk issuers inside the file from the leaf; at each step ask whether the current
    certificate is an anchor or is directly issued by one. The kubelet's fallback is a
    leaf that is self-signed, or whose in-file chain ends at a self-issued CA that is
    not a trust anchor.
    """
    anchor_set = frozenset(anchors)  # x509.Certificate hashes and compares by DER
    cert, info = certs[leaf_at]
    seen = {leaf_at}
    while True:
        if anchors and (cert in anchor_set or any(
                _issued_by(cert, info.issuer, a, subject_of(a)) for a in anchors)):
            return True, False
        if info.self_issued:
            return (False if anchors else None), True
        parent = next((i for i, (c, p) in enumerate(certs)
                       if i not in seen and _issued_by(cert, info.issuer, c, p.subject)), None)
        if parent is None:
            return (False if anchors else None), False
        seen.add(parent)
        cert, info = certs[parent]
