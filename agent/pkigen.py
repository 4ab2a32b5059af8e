"""Make certificates and lay them out exactly as the kubelet does.

Used by ``kubelet-cert-agent demo`` and by the tests (one factory, so the demo and the
tests exercise the same layout). Writes only under the directory it is given and takes
every instant as a parameter.

The kubelet's file store (client-go ``util/certificate/certificate_store.go``):
``kubelet-<role>-<YYYY-MM-DD-HH-MM-SS>.pem`` holds the certificate chain followed by
the EC private key, mode 0600; then the non-atomic swap of ``kubelet-<role>-updated.pem``
and ``kubelet-<role>-current.pem`` (see :func:`kubelet_swap`).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
KeyType = Literal["ec", "rsa"]
Usage = Literal["client", "server", "ca", "both"]
TIMESTAMP_FORMAT = "%Y-%m-%d-%H-%M-%S"


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def key_pem(self, pkcs8: bool = False) -> bytes:
        """PEM private key: ``EC PRIVATE KEY``/``RSA PRIVATE KEY``, or PKCS#8 ``PRIVATE KEY``."""
        fmt = (serialization.PrivateFormat.PKCS8 if pkcs8
               else serialization.PrivateFormat.TraditionalOpenSSL)
        return self.key.private_bytes(serialization.Encoding.PEM, fmt,
                                      serialization.NoEncryption())


def new_key(key_type: KeyType = "ec") -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, orgs: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def issue(
    cn: str,
    *,
    not_before: datetime,
    not_after: datetime,
    orgs: Sequence[str] = (),
    issuer: Issued | None = None,
    usage: Usage = "client",
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    key_type: KeyType = "ec",
    key: PrivateKey | None = None,
    serial: int | None = None,
) -> Issued:
    """Issue a certificate signed by ``issuer`` (self-signed when ``issuer`` is None)."""
    key = key or new_key(key_type)
    subject = _name(cn, orgs)
    signer_name = issuer.cert.subject if issuer else subject
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(signer_name)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=usage == "ca", path_length=None), critical=True)
    )
    if usage == "ca":
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=True, data_encipherment=False, key_agreement=False,
                          key_cert_sign=True, crl_sign=False, encipher_only=False,
                          decipher_only=False),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                        critical=False)
    else:
        ekus = {"client": [ExtendedKeyUsageOID.CLIENT_AUTH],
                "server": [ExtendedKeyUsageOID.SERVER_AUTH],
                "both": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]}[usage]
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                          data_encipherment=False, key_agreement=False, key_cert_sign=False,
                          crl_sign=False, encipher_only=False, decipher_only=False),
            critical=True,
        ).add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(signer_key, hashes.SHA256())
    return Issued(cert=cert, key=key)


def cluster_ca(now: datetime, cn: str = "kubernetes", years: int = 10) -> Issued:
    """A kubeadm-like cluster CA (RSA-2048, 10 years)."""
    return issue(cn, not_before=now - timedelta(days=1),
                 not_after=now + timedelta(days=365 * years), usage="ca", key_type="rsa")


def kubelet_client(ca: Issued, node: str, not_before: datetime,
                   lifetime: timedelta = timedelta(days=365)) -> Issued:
    """A kubelet client certificate as kube-controller-manager signs it."""
    return issue(f"system:node:{node}", orgs=("system:nodes",), issuer=ca, usage="client",
                 not_before=not_before, not_after=not_before + lifetime)


def kubelet_server(ca: Issued, node: str, not_before: datetime,
                   lifetime: timedelta = timedelta(days=365),
                   ip_addresses: Sequence[str] = ("127.0.0.1",)) -> Issued:
    """A kubelet serving certificate (signer kubernetes.io/kubelet-serving)."""
    return issue(f"system:node:{node}", orgs=("system:nodes",), issuer=ca, usage="server",
                 dns_names=(node,), ip_addresses=ip_addresses,
                 not_before=not_before, not_after=not_before + lifetime)


def write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` with mode 0600 and fsync, as the kubelet does."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def write_generation(cert_dir: Path, role: str, issued: Issued, written_at: datetime,
                     chain: Sequence[Issued] = ()) -> Path:
    """Write ``kubelet-<role>-<timestamp>.pem``: certificate (and chain) then key."""
    path = cert_dir / f"kubelet-{role}-{written_at.strftime(TIMESTAMP_FORMAT)}.pem"
    data = issued.cert_pem() + b"".join(c.cert_pem() for c in chain) + issued.key_pem()
    return write_private(path, data)


def kubelet_swap(cert_dir: Path, role: str, new_file: Path, stop_after: int | None = None) -> None:
    """Point ``kubelet-<role>-current.pem`` at ``new_file`` in the kubelet's exact order.

    1. remove a stale ``-updated.pem``; 2. symlink ``-updated.pem`` -> absolute path;
    3. remove ``-current.pem``; 4. rename ``-updated.pem`` -> ``-current.pem``.
    ``stop_after=N`` stops after step N, leaving the intermediate state on disk.
    """
    updated = cert_dir / f"kubelet-{role}-updated.pem"
    current = cert_dir / f"kubelet-{role}-current.pem"
    for number in range(1, 5):
        if number == 1:
            updated.unlink(missing_ok=True)
        elif number == 2:
            updated.symlink_to(new_file.absolute())
        elif number == 3:
            current.unlink(missing_ok=True)
        else:
            os.rename(updated, current)
        if stop_after == number:
            return


def self_signed_fallback(cert_dir: Path, host: str, created: datetime) -> tuple[Path, Path]:
    """Write ``kubelet.crt``/``kubelet.key`` as the kubelet's fallback does.

    RSA-2048 leaf ``CN=<host>@<unix>`` issued by a throw-away CA ``CN=<host>-ca@<unix>``,
    both in ``kubelet.crt`` (leaf first), valid one year from an hour before creation
    (client-go ``cert.GenerateSelfSignedCertKeyWithFixtures``).
    """
    unix = int(created.timestamp())
    start = created - timedelta(hours=1)
    ca = issue(f"{host}-ca@{unix}", usage="ca", key_type="rsa",
               not_before=start, not_after=start + timedelta(days=365))
    leaf = issue(f"{host}@{unix}", issuer=ca, usage="server", key_type="rsa",
                 dns_names=(host,), ip_addresses=("127.0.0.1",),
                 not_before=start, not_after=start + timedelta(days=365))
    crt = cert_dir / "kubelet.crt"
    crt.write_bytes(leaf.cert_pem() + ca.cert_pem())
    os.chmod(crt, 0o644)
    key = write_private(cert_dir / "kubelet.key", leaf.key_pem())
    return crt, key


@dataclass(frozen=True)
class NodePki:
    """What :func:`build_node` wrote."""

    cert_dir: Path
    ca: Issued
    ca_file: Path
    client: Issued
    server: Issued | None
    client_history: tuple[Path, ...]


def build_node(
    root: Path,
    node: str,
    now: datetime,
    *,
    client_generations: int = 3,
    lifetime: timedelta = timedelta(days=365),
    server: bool = True,
    fallback: bool = True,
) -> NodePki:
    """A healthy kubeadm-style node under ``root``: ``pki/`` and ``ca.crt``.

    The client certificate has rotated ``client_generations - 1`` times (each generation
    renewed at 80 % of its predecessor's life); the current one is the newest.
    """
    cert_dir = root / "pki"
    cert_dir.mkdir(parents=True, exist_ok=True)
    ca = cluster_ca(now - timedelta(days=3 * 365))
    ca_file = root / "ca.crt"
    ca_file.write_bytes(ca.cert_pem())
    start = now - lifetime * 0.8 * (client_generations - 1) - lifetime * 0.3
    history: list[Path] = []
    client = None
    for _ in range(client_generations):
        client = kubelet_client(ca, node, start, lifetime)
        path = write_generation(cert_dir, "client", client, start + timedelta(minutes=5))
        kubelet_swap(cert_dir, "client", path)
        history.append(path)
        start += lifetime * 0.8
    assert client is not None  # noqa: S101 - client_generations >= 1 by contract
    served = None
    if server:
        served = kubelet_server(ca, node, now - lifetime * 0.2, lifetime)
        path = write_generation(cert_dir, "server", served, now - lifetime * 0.2)
        kubelet_swap(cert_dir, "server", path)
    if fallback:
        self_signed_fallback(cert_dir, node, now - timedelta(days=200))
    return NodePki(cert_dir=cert_dir, ca=ca, ca_file=ca_file, client=client, server=served,
                   client_history=tuple(history))


def many_certificates(directory: Path, count: int, now: datetime) -> None:
    """``count`` distinct self-signed certificates (one key, many serials) in ``directory``:
    every one must really be parsed (the parse cache is keyed by content)."""
    key = ec.generate_private_key(ec.SECP256R1())
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        name = _name(f"watched-{n}")
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(n + 1)
                .not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=365)).sign(key, hashes.SHA256()))
        (directory / f"{n:05d}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
