"""Scan text for private-key material (shared by the CLI, metrics and daemon tests).

Usage::

    markers = key_markers(key_a, key_b)          # cryptography private keys
    assert_no_key_material(stdout + stderr, markers)

A marker is something that could only appear if key bytes leaked: the PEM type line
("PRIVATE KEY"), each long base64 body line of the key in every PEM encoding the
agent could read (traditional and PKCS#8), and the private scalars (EC private value,
RSA d/p/q) in decimal, hex and openssl's colon-separated hex.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
MIN_LINE = 20  # shorter base64 lines (the last line of a block) could occur by chance
ALWAYS = ("PRIVATE KEY",)


@dataclass(frozen=True)
class Marker:
    what: str  # e.g. "PKCS#8 base64 line 3", for the assertion message
    text: str


def _pem_lines(key: PrivateKey) -> Iterable[Marker]:
    formats = {"traditional": serialization.PrivateFormat.TraditionalOpenSSL,
               "PKCS#8": serialization.PrivateFormat.PKCS8}
    for name, fmt in formats.items():
        pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
        body = [line for line in pem.decode().splitlines() if not line.startswith("-----")]
        for n, line in enumerate(body, 1):
            if len(line) >= MIN_LINE:
                yield Marker(f"{name} PEM base64 line {n}", line)


def _scalars(key: PrivateKey) -> Iterable[tuple[str, int]]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        yield "EC private value", key.private_numbers().private_value
    else:
        numbers = key.private_numbers()
        yield from (("RSA d", numbers.d), ("RSA p", numbers.p), ("RSA q", numbers.q))


def _number_forms(value: int) -> Iterable[tuple[str, str]]:
    hex_digits = f"{value:x}"
    padded = hex_digits if len(hex_digits) % 2 == 0 else "0" + hex_digits
    yield "decimal", str(value)[:40]
    yield "hex", hex_digits[:40]
    yield "HEX", hex_digits[:40].upper()
    yield "colon hex", ":".join(padded[i:i + 2] for i in range(0, min(len(padded), 40), 2))


def key_markers(*keys: PrivateKey, pem_label: bool = True) -> tuple[Marker, ...]:
    """Every marker of the given keys, plus (unless ``pem_label`` is false) the PEM
    type line, which can only appear if a PEM block or its label was echoed."""
    markers = [Marker("PEM type line", text) for text in ALWAYS] if pem_label else []
    for i, key in enumerate(keys):
        markers += [Marker(f"key {i}: {m.what}", m.text) for m in _pem_lines(key)]
        for name, value in _scalars(key):
            markers += [Marker(f"key {i}: {name} as {form}", text)
                        for form, text in _number_forms(value)]
    return tuple(markers)


def find_key_material(text: str, markers: Iterable[Marker]) -> list[str]:
    """What the markers found in ``text`` are (hex is matched in both cases)."""
    return [m.what for m in markers if m.text in text]


def assert_no_key_material(text: str, markers: Iterable[Marker]) -> None:
    """Fail, naming what leaked (never printing it), if any marker occurs in ``text``."""
    leaked = find_key_material(text, markers)
    assert not leaked, f"key material in output: {', '.join(leaked)}"
