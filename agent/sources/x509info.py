"""One X.509 certificate (DER) -> :class:`agent.model.CertInfo`.

Pure, no I/O. At read time only what the metrics and the expiry/issuer checks need is
computed (names, serial, fingerprint, dates, CA flag, self-issued); SANs, key usages, key
algorithm and SPKI hash are derived from the DER bytes on first use (:func:`details_of`),
which for the thousands of certificates of a ``--watch`` directory or a CA bundle is
usually never. Results are kept in a small LRU cache keyed by the DER bytes (public data,
never key material).
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
from agent.model import CertDetails, CertInfo
from agent.sources.dername import clear_cache as clear_name_cache
from agent.sources.dername import subject_and_issuer

# cryptography warns on stderr, at every parse, about a negative or zero serial (RFC 5280
# forbids them, real CAs have issued them). The serial is reported as it is ("-3039");
# a warning on a Nagios plugin's stderr reads as a failure. The filter is process-wide
# and set once (warnings.catch_warnings is not thread-safe).
warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive",
                        category=CryptographyDeprecationWarning)

# Unchanged files are cached by stat (certfile._PARSED); this only spares parsing the same
# certificate in several files, and each entry holds a cryptography object: keep it small.
CACHE_SIZE = 256

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


def _key_usage(ku: x509.KeyUsage) -> tuple[str, ...]:
    names = [flag for flag in _KEY_USAGE_FLAGS if getattr(ku, flag)]
    if ku.key_agreement:  # encipher_only/decipher_only are defined only with key_agreement
        names += [flag for flag in ("encipher_only", "decipher_only") if getattr(ku, flag)]
    return tuple(names)


def _extension_fields(extensions: x509.Extensions) -> dict[str, object]:
    fields: dict[str, object] = {}
    for ext in extensions:  # dispatch on the OID (cheap)
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


def details_of(cert: x509.Certificate) -> CertDetails:
    """Subject CN and O, CA flag, SANs, key usages, key algorithm and SPKI hash of ``cert``.

    Never raises (it runs on first use, anywhere): what cannot be decoded stays empty and
    ``error`` says why; :func:`agent.sources.parse.parse_bundle` rejects such a certificate
    when it is read eagerly.
    """
    fields: dict[str, object] = {}
    cn, orgs = _subject_fields(cert.subject)
    fields.update(subject_cn=cn, subject_orgs=orgs)
    try:
        fields.update(_extension_fields(cert.extensions))
    except Exception as exc:  # a malformed extension: its message could quote the input
        fields["error"] = f"malformed extension ({type(exc).__name__})"
    try:
        public_key = cert.public_key()
        fields.update(key_algorithm=key_algorithm(public_key),
                      spki_sha256=spki_sha256(public_key))
    except Exception as exc:  # unsupported algorithm or malformed key: nothing to match
        fields["error"] = f"unusable public key ({type(exc).__name__})"
    return CertDetails(**fields)  # type: ignore[arg-type]


class _FromDer:
    """Derives a certificate's :class:`CertDetails` on first use from its DER bytes.

    Holds the public encoding only (never key material) and no cryptography object, so
    ten thousand of them cost their DER bytes and nothing else until someone asks.
    """

    __slots__ = ("_der",)

    def __init__(self, der: bytes) -> None:
        self._der = der

    def __call__(self) -> CertDetails:
        return details_of(x509.load_der_x509_certificate(self._der))


def _signs_itself(cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # wrong signature, unsupported algorithm: not self-signed
        return False
    return True


def _subject_fields(subject: x509.Name) -> tuple[str | None, tuple[str, ...]]:
    """(first CN, every O) in one pass over the subject's attributes."""
    cn: str | None = None
    orgs: list[str] = []
    for attribute in subject:
        oid = attribute.oid
        if oid == NameOID.COMMON_NAME and cn is None:
            cn = str(attribute.value)
        elif oid == NameOID.ORGANIZATION_NAME:
            orgs.append(str(attribute.value))
    return cn, tuple(orgs)


def _describe(cert: x509.Certificate, data: bytes) -> CertInfo:
    """What the metrics and the expiry/issuer checks need; the rest waits (``_FromDer``)."""
    # cert.subject/issuer build a Python object per attribute: read the DER when it can.
    names = subject_and_issuer(data)
    subject_text, issuer_text = names or (cert.subject.rfc4514_string(),
                                          cert.issuer.rfc4514_string())
    return CertInfo(
        subject=subject_text,
        issuer=issuer_text,
        serial=format(cert.serial_number, "x"),
        fingerprint_sha256=hashlib.sha256(data).hexdigest(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        # Only a certificate naming itself as issuer can be self-signed: the signature
        # check (tens of microseconds) runs for those alone.
        self_issued=subject_text == issuer_text and _signs_itself(cert),
        derive=_FromDer(data),
    )


@lru_cache(maxsize=CACHE_SIZE)
def describe_der(data: bytes) -> tuple[x509.Certificate, CertInfo]:
    """Load a DER certificate and describe it.

    Raises :class:`CertificateRejected` (with a message of ours) when cryptography
    refuses the encoding or a name. Extensions and the key are decoded on first use of
    :attr:`CertInfo.details`.
    """
    try:
        cert = x509.load_der_x509_certificate(data)
    except Exception:
        raise CertificateRejected("not a valid X.509 certificate") from None
    try:
        return cert, _describe(cert, data)
    except Exception as exc:  # malformed name or validity
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
    clear_name_cache()
