"""The kubelet's own semantics, pure: every layer imports this, it imports only the model.

What lives here is what the kubelet (and client-go's ``util/certificate``) decides, not
what the agent decides: the names of the files in ``--cert-dir`` and how they are
swapped, which roles the kubelet rotates and when, which certificate it serves under
which settings, what identity a node has, how SANs are read, and how instants and spans
are worded for an operator. No I/O, no clock.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from cryptography import x509

from agent.model import (
    ROTATION_WINDOW_END,
    ROTATION_WINDOW_START,
    CertFile,
    LinkProblem,
    ProbeOutcome,
    ReadProblem,
    Role,
    Sans,
    Snapshot,
)

__all__ = [
    "GENERATION",
    "KUBELET_ROLES",
    "ROLE_NAMES",
    "ROTATING_ROLES",
    "ROTATION_WINDOW_END",
    "ROTATION_WINDOW_START",
    "SELF_SIGNED_CERT",
    "SELF_SIGNED_KEY",
    "SERVING_ROLES",
    "SERVING_SIGNER",
    "Sans",
    "current_name",
    "duration",
    "generation_name",
    "is_ip",
    "is_missing",
    "iso",
    "names_node",
    "node_user",
    "read_sans",
    "residual",
    "rotation_managed",
    "served_role",
    "serving_choice",
    "updated_name",
]

# The signer of the kubelet's serving CSRs (never auto-approved by kube-controller-manager).
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"

# --- the file store -----------------------------------------------------------------------

# The roles the kubelet's certificate manager rotates and swaps by symlink.
ROTATING_ROLES: tuple[Role, ...] = (Role.CLIENT, Role.SERVER)
# A generation the kubelet wrote: ``kubelet-<role>-<YYYY-MM-DD-HH-MM-SS>.pem`` (local time).
GENERATION = re.compile(r"kubelet-(client|server)-(\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)\.pem\Z")
# The self-signed fallback the kubelet writes once when it has no serving certificate.
SELF_SIGNED_CERT = "kubelet.crt"
SELF_SIGNED_KEY = "kubelet.key"


def current_name(role: Role) -> str:
    """``kubelet-<role>-current.pem``: the link the kubelet reads at start."""
    return f"kubelet-{role.value}-current.pem"


def updated_name(role: Role) -> str:
    """``kubelet-<role>-updated.pem``: the link that exists only during a swap."""
    return f"kubelet-{role.value}-updated.pem"


def generation_name(role: Role, stamp: str) -> str:
    """The history file for one generation (``stamp`` as GENERATION matches it)."""
    return f"kubelet-{role.value}-{stamp}.pem"


# --- roles ---------------------------------------------------------------------------------

ROLE_NAMES: dict[Role, str] = {
    Role.CLIENT: "kubelet client certificate",
    Role.SERVER: "kubelet serving certificate",
    Role.SELF_SIGNED: "kubelet self-signed serving certificate",
    Role.TLS_CERT_FILE: "kubelet tlsCertFile",
    Role.TRUST_ANCHOR: "trust anchor",
    Role.WATCHED: "watched certificate",
    Role.SERVED: "certificate served by the kubelet on",
    Role.KUBECONFIG_CLIENT: "client certificate of the kubelet's kubeconfig",
    Role.KUBECONFIG_CA: "CA of the kubelet's kubeconfig",
    Role.KUBECONFIG: "client certificate of the kubeconfig",
    Role.KUBEADM: "kubeadm certificate",
    Role.KUBEADM_CA: "kubeadm CA",
}
KUBELET_ROLES = frozenset({Role.CLIENT, Role.SERVER, Role.SELF_SIGNED, Role.TLS_CERT_FILE,
                           Role.KUBECONFIG_CLIENT})
SERVING_ROLES = frozenset({Role.SERVER, Role.SELF_SIGNED, Role.TLS_CERT_FILE})


def serving_choice(server_tls_bootstrap: bool | None, tls_cert_file: str | None, *,
                config_known: bool, server_cert_present: bool) -> Role:
    """The certificate the kubelet serves on its port.

    serverTLSBootstrap true -> the rotated ``kubelet-server-current.pem``; false (also when
    a config that was read cleanly leaves it out: the kubelet's default) -> tlsCertFile if
    set, else the self-signed ``kubelet.crt``. When the settings are unknown, a present
    ``kubelet-server-current.pem`` means bootstrap is in use.
    """
    if server_tls_bootstrap is True:
        return Role.SERVER
    if server_tls_bootstrap is None and not config_known and server_cert_present:
        return Role.SERVER
    return Role.TLS_CERT_FILE if tls_cert_file else Role.SELF_SIGNED


def is_missing(cf: CertFile) -> bool:
    """No entry at all: a MISSING link, or a plain path that does not exist."""
    if cf.link is not None:
        return cf.link.problem is LinkProblem.MISSING
    # A kubeconfig whose referenced certificate is gone is broken, not missing.
    return cf.leaf is None and cf.read_error is not None and (
        cf.read_error.problem is ReadProblem.NOT_FOUND) and cf.target in (None, cf.path)


def served_role(snapshot: Snapshot) -> Role:
    """The certificate this snapshot's kubelet serves (:func:`serving_choice`). A serving
    port that answers with ``internal_error`` counts as a present serving certificate:
    only a bootstrapping kubelet (serverTLSBootstrap, no certificate yet) answers so."""
    cfg = snapshot.kubelet_config
    server = snapshot.cert(Role.SERVER)
    bootstrapping = snapshot.probe is not None and (
        snapshot.probe.outcome is ProbeOutcome.INTERNAL_ERROR)
    return serving_choice(cfg.server_tls_bootstrap, cfg.tls_cert_file,
                          config_known=cfg.present and cfg.error is None,
                          server_cert_present=bootstrapping or (
                              server is not None and not is_missing(server)))


def rotation_managed(role: Role, rotate_certificates: bool | None,
                     server_tls_bootstrap: bool | None) -> bool:
    """The kubelet itself renews this role in its 70-90 % window.

    The client certificate rotates unless rotateCertificates is false; the serving one
    only under serverTLSBootstrap. ``None`` (setting unknown) counts as rotating for the
    client, so an unreadable config never hides an overdue rotation.
    """
    if role is Role.CLIENT:
        return rotate_certificates is not False
    if role is Role.SERVER:
        return server_tls_bootstrap is True
    return False


# --- client renewal approval (kube-controller-manager's csrapproving) -----------------------

# What kubeadm binds so that nodes' client renewals are auto-approved (domain notes).
RENEWAL_BINDING = "kubeadm:node-autoapprove-certificate-rotation"
RENEWAL_ROLE = "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"


# --- identity and SANs ---------------------------------------------------------------------


def node_user(node: str) -> str:
    """The API user (and client certificate CN) of a node: ``system:node:<node>``."""
    return f"system:node:{node}"


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def names_node(node: str, dns_names: tuple[str, ...], ip_addresses: tuple[str, ...]) -> bool:
    """True when the node name is among the DNS SANs (or, for an IP node name, the IP SANs)."""
    if is_ip(node):
        wanted = ipaddress.ip_address(node)
        return any(is_ip(a) and ipaddress.ip_address(a) == wanted for a in ip_addresses)
    return node.lower().rstrip(".") in {n.lower().rstrip(".") for n in dns_names}


_SAN_PREFIX: dict[type, str] = {x509.RFC822Name: "email", x509.UniformResourceIdentifier: "URI"}


def _other_label(gn: x509.GeneralName) -> str:
    if type(gn) in _SAN_PREFIX:
        return f"{_SAN_PREFIX[type(gn)]}:{gn.value}"
    if isinstance(gn, x509.DirectoryName):
        return f"DirName:{gn.value.rfc4514_string()}"
    if isinstance(gn, x509.RegisteredID):
        return f"RID:{gn.value.dotted_string}"
    if isinstance(gn, x509.OtherName):
        return f"othername:{gn.type_id.dotted_string}"
    return f"{type(gn).__name__}:?"


def read_sans(names: Iterable[x509.GeneralName]) -> Sans:
    """Every GeneralName of a certificate's or a CSR's SAN extension, none dropped."""
    dns: list[str] = []
    ips: list[str] = []
    other: list[str] = []
    for gn in names:
        kind = type(gn)  # exact classes first: cheaper than isinstance on every name
        if kind is x509.DNSName:
            dns.append(gn.value)
        elif kind is x509.IPAddress:
            ips.append(str(gn.value))
        else:
            other.append(_other_label(gn))
    return Sans(tuple(dns), tuple(ips), tuple(other))


# --- wording instants and spans ------------------------------------------------------------


def iso(at: datetime) -> str:
    """``2025-01-02T03:04:05Z``: an instant in UTC, to the second, always four-digit years."""
    at = at.astimezone(UTC)
    return (f"{at.year:04d}-{at.month:02d}-{at.day:02d}T"
            f"{at.hour:02d}:{at.minute:02d}:{at.second:02d}Z")


def duration(span: timedelta) -> str:
    """A human span with its two largest units: ``3d 4h``, ``4h 12m``, ``12m 5s``, ``42s``."""
    seconds = max(0, int(abs(span.total_seconds())))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def residual(span: timedelta) -> str:
    """kubeadm's compact RESIDUAL TIME: ``364d``, ``3d4h``, ``5h12m``, ``expired 2d ago``.

    The same two-largest-units rule as :func:`duration`, written without spaces the way
    ``kubeadm certs check-expiration`` prints it; ten days and more show days only.
    """
    if span < timedelta(0):
        return f"expired {residual(-span)} ago"
    seconds = int(span.total_seconds())
    if seconds >= 10 * 86400:
        return f"{seconds // 86400}d"
    words = duration(span).split()
    if len(words) == 2 and (words[1].startswith("0") or words[0].endswith("m")):
        words = words[:1]  # "3d 0h" -> "3d"; under an hour minutes are precise enough
    return "".join(words)
