"""One X.509 certificate (DER) -> :class:`agent.model.CertInfo`.

Pure, no I/O. Every field is computed once per distinct DER encoding: results are
kept in a small LRU cache keyed by the DER bytes (public data, never key material),
because the daemon rebuilds its snapshot on every change and the certificates
rarely change between two builds.
"""

from __future__ import annotations

import hashlib
import warnings
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from agent.kubelet import read_sans
from agent.model import CertInfo

# cryptography warns on stderr, at every parse, about a negative or zero serial (RFC 5280
# forbids them, real CAs have issued them). The serial is reported as it is ("-3039");
# a warning on a Nagios plugin's stderr reads as a failure. The filter is process-wide
# and set once (warnings.catch_warnings is not thread-safe).
warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive",
                        category=CryptographyDeprecationWarning)

CACHE_SIZE = 2048

_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "any",
}
_KEY_USAGE_FLAGS = (
    "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
    "key_agreement", "key_cert_sign", "crl_sign",
)


class CertificateRejected(ValueError):
    """A certificate cryptography cannot use; the message is ours, never input bytes."""


def key_algorithm(public_key: object) -> str:
    """A short human name: ``EC P-256``, ``RSA 2048``, ``Ed25519``."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "EC " + _CURVES.get(public_key.curve.name, public_key.curve.name)
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448"
    if isinstance(public_key, dsa.DSAPublicKey):
        return f"DSA {public_key.key_size}"
    return type(public_key).__name__


def spki_sha256(public_key: object) -> str:
    """SHA-256 (hex) of the DER SubjectPublicKeyInfo: what key matching compares."""
    encoded = public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(encoded).hexdigest()


def _first(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


def _key_usage(ku: x509.KeyUsage) -> tuple[str, ...]:
    names = [flag for flag in _KEY_USAGE_FLAGS if getattr(ku, flag)]
    if ku.key_agreement:  # encipher_only/decipher_only are defined only with key_agreement
        names += [flag for flag in ("encipher_only", "decipher_only") if getattr(ku, flag)]
    return tuple(names)


def _extension_fields(cert: x509.Certificate) -> dict[str, object]:
    fields: dict[str, object] = {}
    for ext in cert.extensions:  # parsed once, all of them; dispatch on the OID (cheap)
        oid, value = ext.oid, ext.value
        if oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
            sans = read_sans(value)
            fields.update(dns_names=sans.dns, ip_addresses=sans.ips, other_sans=sans.other)
        elif oid == ExtensionOID.KEY_USAGE:
            fields["key_usage"] = _key_usage(value)
        elif oid == ExtensionOID.EXTENDED_KEY_USAGE:
            fields["ext_key_usage"] = tuple(
                _EKU_NAMES.get(eku, eku.dotted_string) for eku in value)
        elif oid == ExtensionOID.BASIC_CONSTRAINTS:
            fields["is_ca"] = value.ca
    return fields


def _signs_itself(cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # wrong signature, unsupported algorithm: not self-signed
        return False
    return True


def _describe(cert: x509.Certificate, data: bytes) -> CertInfo:
    # Each property access builds new Python objects from the Rust side: read once.
    subject, issuer, public_key = cert.subject, cert.issuer, cert.public_key()
    subject_text, issuer_text = subject.rfc4514_string(), issuer.rfc4514_string()
    cns = _first(subject, NameOID.COMMON_NAME)
    return CertInfo(
        subject=subject_text,
        issuer=issuer_text,
        serial=format(cert.serial_number, "x"),
        fingerprint_sha256=hashlib.sha256(data).hexdigest(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        subject_cn=cns[0] if cns else None,
        subject_orgs=tuple(_first(subject, NameOID.ORGANIZATION_NAME)),
        key_algorithm=key_algorithm(public_key),
        spki_sha256=spki_sha256(public_key),
        # Only a certificate naming itself as issuer can be self-signed: the signature
        # check (tens of microseconds) runs for those alone.
        self_issued=subject == issuer and _signs_itself(cert),
        **_extension_fields(cert),  # type: ignore[arg-type]
    )


@lru_cache(maxsize=CACHE_SIZE)
def describe_der(data: bytes) -> tuple[x509.Certificate, CertInfo]:
    """Load a DER certificate and describe it.

    Raises :class:`CertificateRejected` (with a message of ours) when cryptography
    refuses the encoding, an extension or the public key.
    """
    try:
        cert = x509.load_der_x509_certificate(data)
    except Exception:
        raise CertificateRejected("not a valid X.509 certificate") from None
    try:
        return cert, _describe(cert, data)
    except Exception as exc:  # malformed extension, name or unsupported key
        raise CertificateRejected(
            f"certificate has a malformed field ({type(exc).__name__})") from None


@lru_cache(maxsize=64)
def subject_of(cert: x509.Certificate) -> str:
    """A trust anchor's subject (RFC 4514), for the cheap name test before a signature check."""
    return cert.subject.rfc4514_string()


def clear_cache() -> None:
    """Forget every described certificate (benchmarks measure cold parses)."""
    describe_der.cache_clear()
    subject_of.cache_clear()
