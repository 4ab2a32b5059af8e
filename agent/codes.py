"""Finding codes: a stable contract.

They appear as the ``code`` label of ``kubelet_cert_agent_finding`` and in the JSON
status, so alert rules and dashboards depend on them. Never rename one; add new ones.
``DESCRIPTIONS`` is the one-line meaning used by the README and ``--help``.
"""

from __future__ import annotations

from typing import Final

# Certificate files (issue: inventory and checks)
CERT_EXPIRED: Final = "CERT_EXPIRED"
CERT_NOT_YET_VALID: Final = "CERT_NOT_YET_VALID"
CERT_VALIDITY_INVERTED: Final = "CERT_VALIDITY_INVERTED"
CERT_EXPIRING_SOON: Final = "CERT_EXPIRING_SOON"
ROTATION_OVERDUE: Final = "ROTATION_OVERDUE"
ROTATION_DISABLED: Final = "ROTATION_DISABLED"
SERVER_CERT_SELF_SIGNED: Final = "SERVER_CERT_SELF_SIGNED"
SERVER_CERT_MISSING: Final = "SERVER_CERT_MISSING"
CLIENT_CERT_MISSING: Final = "CLIENT_CERT_MISSING"
SYMLINK_BROKEN: Final = "SYMLINK_BROKEN"
CURRENT_NOT_SYMLINK: Final = "CURRENT_NOT_SYMLINK"
CERT_UNREADABLE: Final = "CERT_UNREADABLE"
KEY_MISMATCH: Final = "KEY_MISMATCH"
IDENTITY_MISMATCH: Final = "IDENTITY_MISMATCH"
UNTRUSTED_ISSUER: Final = "UNTRUSTED_ISSUER"
KUBELET_CONFIG_UNREADABLE: Final = "KUBELET_CONFIG_UNREADABLE"
CA_ROTATION_IN_PROGRESS: Final = "CA_ROTATION_IN_PROGRESS"

# kubeadm control plane (issue 11)
KUBEADM_CERT_MISSING: Final = "KUBEADM_CERT_MISSING"

# Kubelet discovery (issue: the kubelet as it really runs)
KUBELET_NOT_FOUND: Final = "KUBELET_NOT_FOUND"
SWAP_INTERRUPTED: Final = "SWAP_INTERRUPTED"

# API server (issue: serving CSRs and API server acceptance)
SERVING_CSR_PENDING: Final = "SERVING_CSR_PENDING"
SERVING_CSR_SUSPICIOUS: Final = "SERVING_CSR_SUSPICIOUS"
SERVING_CSR_DENIED: Final = "SERVING_CSR_DENIED"
SERVING_CSR_FAILED: Final = "SERVING_CSR_FAILED"
SERVING_CSR_NOT_ISSUED: Final = "SERVING_CSR_NOT_ISSUED"
APISERVER_AUTH_FAILED: Final = "APISERVER_AUTH_FAILED"
APISERVER_FORBIDDEN: Final = "APISERVER_FORBIDDEN"
APISERVER_UNREACHABLE: Final = "APISERVER_UNREACHABLE"
APISERVER_IDENTITY_MISMATCH: Final = "APISERVER_IDENTITY_MISMATCH"
APISERVER_NOT_CONFIGURED: Final = "APISERVER_NOT_CONFIGURED"

# What the kubelet really serves and will authenticate with (issue 15)
SERVED_CERT_MISMATCH: Final = "SERVED_CERT_MISMATCH"
KUBELET_NOT_SERVING: Final = "KUBELET_NOT_SERVING"
KUBECONFIG_CERT_NOT_ROTATING: Final = "KUBECONFIG_CERT_NOT_ROTATING"
KUBECONFIG_UNREADABLE: Final = "KUBECONFIG_UNREADABLE"
KUBECONFIG_CA_MISMATCH: Final = "KUBECONFIG_CA_MISMATCH"
CLIENT_CSR_PENDING: Final = "CLIENT_CSR_PENDING"
CLIENT_CSR_DENIED: Final = "CLIENT_CSR_DENIED"
CLIENT_CSR_NOT_ISSUED: Final = "CLIENT_CSR_NOT_ISSUED"
CLIENT_RENEWAL_NOT_AUTHORIZED: Final = "CLIENT_RENEWAL_NOT_AUTHORIZED"
BOOTSTRAP_KUBECONFIG_ABSENT: Final = "BOOTSTRAP_KUBECONFIG_ABSENT"
BOOTSTRAP_CREDENTIALS_INVALID: Final = "BOOTSTRAP_CREDENTIALS_INVALID"
SERVING_CERT_SANS_INCOMPLETE: Final = "SERVING_CERT_SANS_INCOMPLETE"

DESCRIPTIONS: Final[dict[str, str]] = {
    CERT_EXPIRED: "a live certificate is past notAfter",
    CERT_NOT_YET_VALID: "a live certificate's notBefore is in the future (clock skew)",
    CERT_VALIDITY_INVERTED: "a live certificate's notBefore is after its notAfter: never valid",
    CERT_EXPIRING_SOON: "little lifetime left (warning/critical thresholds are flags)",
    ROTATION_OVERDUE: "past 90 % of the lifetime and the kubelet still uses the same certificate",
    ROTATION_DISABLED: "rotateCertificates is false: the client certificate will not be renewed",
    SERVER_CERT_SELF_SIGNED: (
        "the kubelet serves its self-signed fallback the API server cannot verify"
    ),
    SERVER_CERT_MISSING: "serverTLSBootstrap is on but there is no serving certificate",
    CLIENT_CERT_MISSING: "no kubelet client certificate",
    SYMLINK_BROKEN: "a -current.pem link is dangling, loops or points at a non-regular file",
    CURRENT_NOT_SYMLINK: "a -current.pem is a regular file: the kubelet refuses to rotate it",
    CERT_UNREADABLE: "a certificate file is empty, truncated, garbage, too large or not readable",
    KEY_MISMATCH: "the private key does not belong to the certificate",
    IDENTITY_MISMATCH: "subject or SANs do not name this node",
    UNTRUSTED_ISSUER: "the certificate does not chain to a known trust anchor",
    KUBELET_CONFIG_UNREADABLE: (
        "the kubelet config (or a --config-dir drop-in) cannot be read or is not a "
        "KubeletConfiguration"
    ),
    KUBELET_NOT_FOUND: "no kubelet process, unit or files at the default paths: nothing to judge",
    SWAP_INTERRUPTED: (
        "-current.pem is missing, -updated.pem holds the live certificate: the kubelet "
        "renames it at its next start"
    ),
    CA_ROTATION_IN_PROGRESS: (
        "a CA bundle holds an expired or not-yet-valid CA beside a valid one (info)"
    ),
    KUBEADM_CERT_MISSING: (
        "a file `kubeadm certs check-expiration` lists is absent, e.g. external etcd (info)"
    ),
    SERVING_CSR_PENDING: "this node's serving CSR waits for approval",
    SERVING_CSR_SUSPICIOUS: "a serving CSR's subject or SANs do not match this node",
    SERVING_CSR_DENIED: "this node's newest serving CSR was denied",
    SERVING_CSR_FAILED: "the signer refused this node's serving CSR",
    SERVING_CSR_NOT_ISSUED: "approved serving CSR without a certificate: no signer is running",
    APISERVER_AUTH_FAILED: "the API server rejects the node's credentials (401)",
    APISERVER_FORBIDDEN: "the API server forbids reading CSRs (403)",
    APISERVER_UNREACHABLE: "the API server cannot be reached; CSR data is stale",
    APISERVER_IDENTITY_MISMATCH: "the API server does not see this node as system:node:<node>",
    APISERVER_NOT_CONFIGURED: "no kubeconfig or token found for the API server checks",
    SERVED_CERT_MISMATCH: "the kubelet serves another certificate than the file: restart it",
    KUBELET_NOT_SERVING: "(info) the kubelet's serving port refused, timed out or is not TLS",
    KUBECONFIG_CERT_NOT_ROTATING: (
        "the kubelet's kubeconfig names a client certificate rotation never rewrites"
    ),
    KUBECONFIG_UNREADABLE: "the kubelet's kubeconfig cannot be read or parsed",
    KUBECONFIG_CA_MISMATCH: "the client certificate does not chain to the kubeconfig's CA",
    CLIENT_CSR_PENDING: "this node's client-certificate renewal CSR waits for approval",
    CLIENT_CSR_DENIED: "this node's newest client-certificate renewal CSR was denied",
    CLIENT_CSR_NOT_ISSUED: "approved client CSR without a certificate: no signer is running",
    CLIENT_RENEWAL_NOT_AUTHORIZED: (
        "the node may not create selfnodeclient CSRs: renewals will never be auto-approved"
    ),
    BOOTSTRAP_KUBECONFIG_ABSENT: "(info) no bootstrap kubeconfig: the node cannot rejoin alone",
    BOOTSTRAP_CREDENTIALS_INVALID: "the bootstrap token is rejected (401): no rejoin possible",
    SERVING_CERT_SANS_INCOMPLETE: "a Node status address is not a SAN of the serving certificate",
}

ALL: Final[frozenset[str]] = frozenset(DESCRIPTIONS)

# How the table's STATE column words a finding about one file. The table renders these
# from the findings (it never re-judges a certificate); a code not listed is shown as
# its name in lower case.
STATE_WORDS: Final[dict[str, str]] = {
    CERT_EXPIRED: "expired",
    CERT_NOT_YET_VALID: "not yet valid",
    CERT_VALIDITY_INVERTED: "never valid (notBefore after notAfter)",
    CERT_EXPIRING_SOON: "expiring soon",
    ROTATION_OVERDUE: "rotation overdue",
    ROTATION_DISABLED: "rotation disabled",
    SERVER_CERT_SELF_SIGNED: "self-signed",
    SERVER_CERT_MISSING: "missing",
    CLIENT_CERT_MISSING: "missing",
    SYMLINK_BROKEN: "link broken",
    CURRENT_NOT_SYMLINK: "not a symlink",
    CERT_UNREADABLE: "unreadable",
    KEY_MISMATCH: "key mismatch",
    IDENTITY_MISMATCH: "identity mismatch",
    UNTRUSTED_ISSUER: "untrusted",
    SWAP_INTERRUPTED: "swap interrupted",
    CA_ROTATION_IN_PROGRESS: "CA rotation in progress",
    KUBEADM_CERT_MISSING: "missing",
}


def state_word(code: str) -> str:
    """The table's word for a finding code."""
    return STATE_WORDS.get(code, code.lower().replace("_", " "))
