"""One SAN model for certificates and CSRs (agent.kubelet.read_sans), end to end.

Real CSRs are built with cryptography, base64-encoded as ``spec.request`` is, decoded by
the API parser and judged by the CSR check: every SAN that is not a DNS name or IP of
this node makes the CSR suspicious, whatever its GeneralName type.
"""

from __future__ import annotations

import base64
import ipaddress
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from agent import codes
from agent.checks import csr as csr_check
from agent.kubelet import read_sans
from agent.model import Policy
from agent.sources.apiparse import decode_request
from tests.snapshots import NOW, api, csr, snapshot, with_api

UPN = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")  # Microsoft UPN otherName


def _request(*extra: x509.GeneralName) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("node1"), x509.IPAddress(ipaddress.ip_address("10.0.0.1")), *extra]
    req = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                                    x509.NameAttribute(NameOID.COMMON_NAME, "system:node:node1")]))
           .add_extension(x509.SubjectAlternativeName(names), critical=False)
           .sign(key, hashes.SHA256()))
    return base64.b64encode(req.public_bytes(serialization.Encoding.PEM)).decode()


FOREIGN = [
    pytest.param(x509.OtherName(UPN, b"\x0c\x10admin@corp.local"),
                 "othername:1.3.6.1.4.1.311.20.2.3", id="otherName-UPN"),
    pytest.param(x509.DirectoryName(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")])),
                 "DirName:CN=admin", id="DirName"),
    pytest.param(x509.UniformResourceIdentifier("spiffe://cluster/ns/kube-system"),
                 "URI:spiffe://cluster/ns/kube-system", id="URI"),
    pytest.param(x509.RFC822Name("admin@example.com"), "email:admin@example.com", id="email"),
    pytest.param(x509.RegisteredID(ObjectIdentifier("1.2.3.4")), "RID:1.2.3.4", id="registeredID"),
]


class TestReadSans:
    @pytest.mark.parametrize(("name", "label"), FOREIGN)
    def test_every_general_name_type_is_kept(self, name: x509.GeneralName, label: str) -> None:
        """No GeneralName is dropped: the foreign ones land in ``other``, labelled."""
        sans = read_sans([x509.DNSName("node1"), name])
        assert sans.dns == ("node1",)
        assert sans.other == (label,)
        assert sans.labels() == ("DNS:node1", label)


class TestServingCsrWithForeignSans:
    @pytest.mark.parametrize(("name", "label"), FOREIGN)
    def test_a_foreign_san_makes_the_csr_suspicious(self, name: x509.GeneralName,
                                                    label: str) -> None:
        """The operator is never told to approve a CSR that asks for more than the node."""
        fields, error = decode_request(_request(name))
        assert error is None
        req = csr("csr-evil", timedelta(minutes=30), **fields)
        found = list(csr_check.check(with_api(api(req), snapshot()), NOW, Policy()))
        suspicious = [f for f in found if f.code == codes.SERVING_CSR_SUSPICIOUS]
        assert len(suspicious) == 1 and label in suspicious[0].message

    def test_a_csr_with_only_the_nodes_names_is_not_suspicious(self) -> None:
        """The control case: DNS and IP of this node only."""
        fields, error = decode_request(_request())
        assert error is None
        req = csr("csr-ok", timedelta(minutes=30), **fields)
        found = list(csr_check.check(with_api(api(req), snapshot()), NOW, Policy()))
        assert codes.SERVING_CSR_SUSPICIOUS not in {f.code for f in found}
