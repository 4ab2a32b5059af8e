"""The kubeconfig the kubelet authenticates with after its next start (``--kubeconfig``).

kubeadm's current kubelet.conf points ``client-certificate``/``client-key`` at
``kubelet-client-current.pem``: rotation keeps it fresh and nothing new is judged. Older
kubeadm releases and hand-made kubeconfigs embed ``client-certificate-data`` or name
another file, which rotation never rewrites: that certificate (role
``kubeconfig-client``) is judged like the kubelet's own. The CA
(``certificate-authority(-data)``, role ``kubeconfig-ca``) is judged for expiry, and
whether the client certificate the kubeconfig names chains to it.

Never raises: an unreadable or malformed kubeconfig is ``KubeconfigInfo.error``. Key
bytes (embedded or in a file) are reduced to the SHA-256 of their public key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography import x509

from agent.config import DEFAULT_KUBECONFIGS, KubeletAccess
from agent.kubelet import current_name
from agent.model import (
    CertFile,
    KeyMatch,
    KubeconfigCertSource,
    KubeconfigInfo,
    ReadError,
    ReadProblem,
    Role,
)
from agent.sources.certfile import load_anchors, load_cert_file
from agent.sources.discovery import hostfs
from agent.sources.files import read_file
from agent.sources.kubeconfig import KubeconfigError, b64_field, current_entries, load_yaml
from agent.sources.kubeconfig import resolve as _resolve_local
from agent.sources.parse import parse_bundle, parse_key

MAX_LINKS = 40  # as the kernel's ELOOP limit


def kubelet_kubeconfig(kubelet: KubeletAccess,
                       candidates: tuple[str, ...] = DEFAULT_KUBECONFIGS) -> Path | None:
    """The configured one (even if missing), else the first existing default."""
    if kubelet.kubeconfig is not None:
        return kubelet.kubeconfig
    return next((Path(c) for c in candidates if os.path.lexists(c)), None)


def _is_current(path: Path, current: str) -> bool:
    """``path`` is a ``kubelet-client-current.pem`` (this cert dir's or, with another
    --cert-dir, the kubelet's: rotation keeps either fresh), or symlinks through one."""
    try:
        wanted: tuple[int, int] | None = (os.lstat(current).st_dev, os.lstat(current).st_ino)
    except OSError:
        wanted = None
    step = os.path.abspath(path)
    for _ in range(MAX_LINKS):
        if os.path.basename(step) == os.path.basename(current):
            return True
        try:
            st = os.lstat(step)
        except OSError:
            return False
        if (st.st_dev, st.st_ino) == wanted:
            return True
        if not os.path.islink(step):
            return False
        step = os.path.normpath(os.path.join(os.path.dirname(step), os.readlink(step)))
    return False


def _spki_match(leaf_spki: str | None, key: bytes | None) -> KeyMatch:
    if key is None:
        return KeyMatch.ABSENT
    spki, error = parse_key(key)
    if error is not None or spki is None or leaf_spki is None:
        return KeyMatch.UNREADABLE
    return KeyMatch.MATCH if spki == leaf_spki else KeyMatch.MISMATCH


def _from_bytes(role: Role, label: str, data: bytes, anchors: tuple[x509.Certificate, ...],
                key: bytes | None = None) -> tuple[CertFile, tuple[x509.Certificate, ...]]:
    """An embedded ``*-data`` value as a CertFile named ``<kubeconfig>#<field>``."""
    parsed = parse_bundle(data, anchors, keep_x509=role is Role.KUBECONFIG_CA)
    if parsed.error is not None:
        return CertFile(role=role, path=label, size=len(data), read_error=parsed.error), ()
    match = _spki_match(parsed.leaf.spki_sha256 if parsed.leaf else None, key)
    return CertFile(role=role, path=label, size=len(data), chain=parsed.certificates,
                    leaf=parsed.leaf, key_match=match, trusted=parsed.chain_verified_to_anchor,
                    self_signed=parsed.self_signed), parsed.x509_certificates


_HOST_ROOT = ["/"]  # the host root of the read in progress (set by read_kubelet_kubeconfig)


def resolve_path(base: Path, value: str) -> Path:
    """A path named in the kubeconfig: a host path, read under the host root."""
    local = str(_resolve_local(base, value))
    root = _HOST_ROOT[0]
    if root in ("", "/"):
        return Path(local)
    host = hostfs.to_host(root, local)  # the last component is not followed: it may be
    return Path(os.path.join(hostfs.resolve(root, os.path.dirname(host)),  # -current.pem
                             os.path.basename(host)))


def _ca(cluster: dict[str, Any], path: Path, limit: int
        ) -> tuple[CertFile | None, tuple[x509.Certificate, ...]]:
    if cluster.get("certificate-authority-data"):
        data = b64_field(cluster["certificate-authority-data"], "certificate-authority-data",
                         path)
        return _from_bytes(Role.KUBECONFIG_CA, f"{path}#certificate-authority-data", data, ())
    if cluster.get("certificate-authority"):
        ca_path = resolve_path(path.parent, cluster["certificate-authority"])
        files, certs = load_anchors([str(ca_path)], limit)
        return replace(files[0], role=Role.KUBECONFIG_CA), certs
    return None, ()


@dataclass(frozen=True)
class _Client:
    info: KubeconfigInfo
    cert: CertFile | None  # a certificate to judge (not -current.pem)
    trusted: bool | None  # the certificate in use chains to the kubeconfig's CA


def _embedded(user: dict[str, Any], path: Path, info: KubeconfigInfo, *,
              anchors: tuple[x509.Certificate, ...], ca: tuple[x509.Certificate, ...],
              key_file: Path | None, limit: int) -> _Client:
    data = b64_field(user["client-certificate-data"], "client-certificate-data", path)
    key = (b64_field(user["client-key-data"], "client-key-data", path)
           if user.get("client-key-data") else None)
    if key is None and key_file is not None:
        key = read_file(str(key_file), limit).data
    cf, _ = _from_bytes(Role.KUBECONFIG_CLIENT, f"{path}#client-certificate-data", data,
                        anchors, key)
    trusted = parse_bundle(data, ca, keep_x509=False).chain_verified_to_anchor if ca else None
    return _Client(replace(info, cert_source=KubeconfigCertSource.EMBEDDED,
                           key_embedded=user.get("client-key-data") is not None), cf, trusted)


def _client(user: dict[str, Any], path: Path, current: str, *,
            anchors: tuple[x509.Certificate, ...], ca: tuple[x509.Certificate, ...],
            limit: int) -> _Client:
    key_file = resolve_path(path.parent, user["client-key"]) if user.get("client-key") else None
    info = KubeconfigInfo(path=str(path), present=True,
                          key_ref=str(key_file) if key_file else None)
    if user.get("client-certificate-data"):
        return _embedded(user, path, info, anchors=anchors, ca=ca, key_file=key_file,
                         limit=limit)
    if not user.get("client-certificate"):
        return _Client(info, None, None)
    cert_path = resolve_path(path.parent, user["client-certificate"])
    info = replace(info, cert_ref=str(cert_path))
    trusted = load_cert_file(Role.KUBECONFIG_CLIENT, str(cert_path), ca, limit).trusted \
        if ca else None
    if _is_current(cert_path, current):
        return _Client(replace(info, cert_source=KubeconfigCertSource.CURRENT), None, trusted)
    key = str(key_file) if key_file is not None and key_file != cert_path else None
    cf = load_cert_file(Role.KUBECONFIG_CLIENT, str(cert_path), anchors, limit, key_path=key)
    return _Client(replace(info, cert_source=KubeconfigCertSource.FILE), cf, trusted)


def read_kubelet_kubeconfig(kubelet: KubeletAccess, cert_dir: str,
                            anchors: tuple[x509.Certificate, ...], limit: int
                            ) -> tuple[KubeconfigInfo | None, tuple[CertFile, ...]]:
    """(what the kubeconfig says, the certificates it adds to judge). Never raises.

    ``anchors`` (clientCAFile, --ca-file) judge a named client certificate as the
    cert-dir ones are; the kubeconfig's own CA judges ``client_trusted``.
    """
    path = kubelet_kubeconfig(kubelet)
    if path is None:
        return None, ()
    _HOST_ROOT[0] = kubelet.host_root
    current = os.path.join(cert_dir, current_name(Role.CLIENT))
    try:
        doc = load_yaml(path)
        cluster, user = current_entries(doc, path)
        ca, ca_certs = _ca(cluster, path, limit)
        client = _client(user, path, current, anchors=anchors, ca=ca_certs, limit=limit)
    except KubeconfigError as exc:
        present = os.path.lexists(path)
        problem = ReadProblem.GARBAGE if present else ReadProblem.NOT_FOUND
        return KubeconfigInfo(path=str(path), present=present,
                              error=ReadError(problem, str(exc))), ()
    except Exception as exc:  # the contract: errors are data
        return KubeconfigInfo(path=str(path), present=True, error=ReadError(
            ReadProblem.IO_ERROR, f"kubeconfig {path} could not be judged "
            f"({type(exc).__name__})")), ()
    info = replace(client.info, client_trusted=client.trusted)
    return info, tuple(c for c in (client.cert, ca) if c is not None)
