"""agent.sources.dername gives cryptography's RFC 4514 text of every name it formats.

Names are generated (attribute types RFC 4514 names and others, multi-valued RDNs, values
with every character RFC 4514 escapes, non-ASCII text, PrintableString and IA5String
values), put in real certificates signed by cryptography, and the fast reader's text is
compared with ``Certificate.subject/issuer.rfc4514_string()``. A name the reader leaves to
cryptography (``None``) is fine; a different text never is.
"""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import pkigen
from agent.sources.dername import subject_and_issuer
from tests.conftest import NOW

KEY = pkigen.new_key("ec")
SUPPORTED = [NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME,
             NameOID.LOCALITY_NAME, NameOID.STATE_OR_PROVINCE_NAME, NameOID.STREET_ADDRESS,
             NameOID.USER_ID]
OTHERS = [NameOID.EMAIL_ADDRESS, NameOID.GIVEN_NAME, NameOID.TITLE]
SPECIAL = st.sampled_from([*'\\"+,;<># =\0', "é", "ü", "系", " "])
VALUE = st.lists(st.one_of(SPECIAL, st.characters(min_codepoint=32, max_codepoint=126)),
                 min_size=1, max_size=12).map("".join)
ATTRIBUTE = st.one_of(
    st.builds(x509.NameAttribute, st.sampled_from(SUPPORTED + OTHERS), VALUE),
    st.builds(x509.NameAttribute, st.just(NameOID.COUNTRY_NAME),
              st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)),
    st.builds(x509.NameAttribute, st.just(NameOID.DOMAIN_COMPONENT),
              st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)),
)
RDN = st.lists(ATTRIBUTE, min_size=1, max_size=2, unique_by=lambda a: (a.oid, a.value)).map(
    x509.RelativeDistinguishedName)
NAME = st.lists(RDN, min_size=0, max_size=4).map(x509.Name)


def certificate(subject: x509.Name, issuer: x509.Name) -> x509.Certificate:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(KEY.public_key()).serial_number(7)
            .not_valid_before(NOW).not_valid_after(NOW + timedelta(days=1))
            .sign(KEY, hashes.SHA256()))


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(NAME, NAME)
def test_the_text_is_cryptographys_or_none(subject: x509.Name, issuer: x509.Name) -> None:
    """Whatever the names hold, the fast text equals cryptography's or is not given."""
    cert = certificate(subject, issuer)
    found = subject_and_issuer(der(cert))
    if found is not None:
        assert found == (cert.subject.rfc4514_string(), cert.issuer.rfc4514_string())


def test_the_names_certificates_carry_are_read_directly() -> None:
    """Kubelet, kubeadm and CA names (CN, O, OU, C, DC, escaped characters) take the fast path."""
    ca = pkigen.cluster_ca(NOW)
    leaf = pkigen.kubelet_client(ca, "node-1", NOW)
    odd = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
                     x509.NameAttribute(NameOID.ORGANIZATION_NAME, ' #a+b, "c" <d>;\\ '),
                     x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "example"),
                     x509.NameAttribute(NameOID.COMMON_NAME, "système")])
    for cert in (ca.cert, leaf.cert, certificate(odd, odd)):
        assert subject_and_issuer(der(cert)) == (cert.subject.rfc4514_string(),
                                                 cert.issuer.rfc4514_string())


def test_a_name_it_does_not_format_is_left_to_cryptography() -> None:
    """An e-mail attribute or a multi-valued RDN gives None, not a guess."""
    email = x509.Name([x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@example.com")])
    multi = x509.Name([x509.RelativeDistinguishedName([
        x509.NameAttribute(NameOID.COMMON_NAME, "a"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "b")])])
    plain = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "plain")])
    assert subject_and_issuer(der(certificate(email, plain))) is None
    assert subject_and_issuer(der(certificate(plain, multi))) is None


@given(st.binary(max_size=300))
def test_garbage_is_none_never_an_exception(data: bytes) -> None:
    """Truncated or random bytes never raise (cryptography has judged the DER before)."""
    assert subject_and_issuer(data) is None or isinstance(subject_and_issuer(data), tuple)
