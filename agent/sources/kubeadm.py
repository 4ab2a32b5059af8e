"""The kubeadm dir -> the fourteen CertFiles ``kubeadm certs check-expiration`` lists.

Only the files kubeadm lists are opened (keys only to compare them with their
certificate, never to keep them); ``sa.key``, manifests and anything else in the dir are
never read. The CAs are read first: each leaf is verified against every certificate in
its own CA's file (a CA file in the middle of a rotation holds two), so ``trusted`` says
"signed by the right kubeadm CA". A CA is externally managed when its key file does not
exist (kubeadm's rule); its leaves inherit that.
"""

from __future__ import annotations

import errno
import os
from dataclasses import replace

from cryptography import x509

from agent import kubeadm
from agent.model import CertFile, ReadProblem, Role
from agent.sources.certfile import load_authority, load_cert_file
from agent.sources.kubeconfigcert import load_kubeconfig


def is_control_plane(directory: str) -> bool:
    """kubeadm set this node up as a control plane: ``DIR/pki/ca.crt`` and the API
    server's certificate or static pod manifest exist (a worker has only the CA)."""
    return os.path.lexists(os.path.join(directory, kubeadm.CA_FILE)) and any(
        os.path.lexists(os.path.join(directory, m)) for m in kubeadm.CONTROL_PLANE_MARKERS)


def _key_absent(path: str) -> bool:
    try:
        os.lstat(path)
    except OSError as exc:
        return exc.errno in (errno.ENOENT, errno.ENOTDIR)
    return False


def load_kubeadm(directory: str, max_bytes: int) -> tuple[CertFile, ...]:
    """The eleven leaves in kubeadm's order, then the three CAs. Never raises."""
    root = os.path.abspath(directory)
    cas: dict[str, CertFile] = {}
    anchors: dict[str, tuple[x509.Certificate, ...]] = {}
    for ca in kubeadm.CAS:
        key_path = os.path.join(root, ca.key)
        cert_file, held = load_authority(Role.KUBEADM_CA, os.path.join(root, ca.cert),
                                         max_bytes, key_path=key_path)
        external = _key_absent(key_path) and not _missing(cert_file)
        cas[ca.name] = replace(cert_file, name=ca.name, externally_managed=external,
                               # a CA's key is judged by kubeadm's rule alone: absent
                               # means external, not a finding
                               key_error=None if external else cert_file.key_error)
        anchors[ca.name] = held
    leaves = []
    for leaf in kubeadm.LEAVES:
        path = os.path.join(root, leaf.file)
        if leaf.kind == "kubeconfig":
            cert_file = load_kubeconfig(Role.KUBEADM, path, anchors[leaf.ca], max_bytes)
        else:
            key = os.path.join(root, leaf.key) if leaf.key else None
            cert_file = load_cert_file(Role.KUBEADM, path, anchors[leaf.ca], max_bytes,
                                       key_path=key)
        leaves.append(replace(cert_file, name=leaf.name,
                              externally_managed=cas[leaf.ca].externally_managed))
    return (*leaves, *cas.values())


def _missing(cf: CertFile) -> bool:
    return cf.read_error is not None and cf.read_error.problem is ReadProblem.NOT_FOUND

