"""A kubeconfig's certificates -> CertFiles: its current user's client certificate
(embedded ``client-certificate-data`` or a referenced file) and its cluster's CA.

Parsing of the kubeconfig itself is :mod:`agent.sources.kubeconfig`'s (one reader for the
API client and the inventory); every failure becomes a ReadError naming the file and the
field, never their contents. Key bytes are only compared with the certificate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from agent.model import CertFile, KeyMatch, ReadError, Role
from agent.sources.certfile import load_cert_file
from agent.sources.kubeconfig import ClientCertRef, KubeconfigError, client_certificate_ref
from agent.sources.parse import parse_bundle, parse_key

CA_DATA_SUFFIX = "#certificate-authority-data"  # the path of an embedded CA, for findings


def load_kubeconfig(role: Role, path: str, anchors: Sequence[x509.Certificate],
                    max_bytes: int) -> CertFile:
    """The client certificate of a kubeconfig's current user, as a CertFile whose path is
    the kubeconfig (target: the referenced file, if any). Never raises."""
    try:
        ref = client_certificate_ref(Path(path))
    except KubeconfigError as exc:
        return CertFile(role=role, path=path, target=path,
                        read_error=ReadError(exc.problem, str(exc)))
    return _client(role, path, ref, anchors, max_bytes)


def _client(role: Role, path: str, ref: ClientCertRef, anchors: Sequence[x509.Certificate],
            max_bytes: int) -> CertFile:
    if ref.cert_file is not None:
        return load_cert_file(role, path, anchors, max_bytes, read_path=str(ref.cert_file),
                              key_path=str(ref.key_file) if ref.key_file else None)
    parsed = parse_bundle(ref.cert_data or b"", anchors, keep_x509=False)
    if parsed.error is not None:
        return CertFile(role=role, path=path, target=path, read_error=ReadError(
            parsed.error.problem, f"{path}: client-certificate-data {parsed.error.detail}"))
    key_match, key_error = KeyMatch.ABSENT, None
    if ref.key_data is not None:
        spki, key_error = parse_key(ref.key_data)
        key_match = (KeyMatch.UNREADABLE if spki is None or parsed.leaf is None
                     else KeyMatch.MATCH if spki == parsed.leaf.spki_sha256
                     else KeyMatch.MISMATCH)
    return CertFile(role=role, path=path, target=path, chain=parsed.certificates,
                    leaf=parsed.leaf, key_match=key_match, key_error=key_error,
                    trusted=parsed.chain_verified_to_anchor, self_signed=parsed.self_signed)


def load_kubeconfig_files(path: str, max_bytes: int) -> list[CertFile]:
    """A ``--watch`` kubeconfig: its client certificate (role ``kubeconfig``) and its
    cluster CA (role ``ca``: a referenced file, or the embedded data under the pseudo
    path ``<kubeconfig>#certificate-authority-data``). Never raises."""
    try:
        ref = client_certificate_ref(Path(path))
    except KubeconfigError as exc:
        return [CertFile(role=Role.KUBECONFIG, path=path, target=path,
                         read_error=ReadError(exc.problem, str(exc)))]
    out = [_client(Role.KUBECONFIG, path, ref, (), max_bytes)]
    if ref.ca_file is not None:
        out.append(load_cert_file(Role.TRUST_ANCHOR, str(ref.ca_file), (), max_bytes))
    elif ref.ca_data is not None:
        ca_path = path + CA_DATA_SUFFIX
        parsed = parse_bundle(ref.ca_data, (), keep_x509=False)
        out.append(CertFile(role=Role.TRUST_ANCHOR, path=ca_path, target=path,
                            chain=parsed.certificates, leaf=parsed.leaf,
                            read_error=None if parsed.error is None else ReadError(
                                parsed.error.problem,
                                f"{path}: certificate-authority-data {parsed.error.detail}")))
    return out
