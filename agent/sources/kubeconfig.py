"""Credentials for the API server, from a kubeconfig and the command-line overrides.

Reads the kubelet's own kubeconfig (``--kubeconfig``, else the first existing of
``config.DEFAULT_KUBECONFIGS``): current-context -> cluster (server, CA, insecure flag)
and user (client certificate and key, possibly the same file such as
``kubelet-client-current.pem``; or a token / tokenFile). Relative paths are relative to
the kubeconfig's directory, as kubectl resolves them. ``--server``, ``--token-file`` and
``--api-ca-file`` override the kubeconfig.

The result is a ready ``ssl.SSLContext``: embedded ``*-data`` CA bundles stay in memory;
an embedded client certificate/key (``ssl`` can only load those from a file) is written
to a private directory (0700, files 0600) just long enough to load it, then removed.
Every failure is returned as an ``ApiError(NOT_CONFIGURED)`` naming the file and field,
never the contents of a key or token.
"""

from __future__ import annotations

import base64
import binascii
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from agent.config import DEFAULT_KUBECONFIGS, MAX_FILE_BYTES, ApiSettings
from agent.model import ApiCredential, ApiError, ApiProblem, CredentialKind, ReadProblem
from agent.sources.files import read_file

NO_CREDENTIAL: Final = ApiCredential(CredentialKind.NONE, "")


@dataclass(frozen=True)
class Credentials:
    """How to talk to the API server. ``repr`` never shows the token."""

    server: str  # https://host:port, no trailing slash
    ssl_context: ssl.SSLContext = field(repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = ""  # where the settings came from (kubeconfig path or "flags")
    auth: str = "none"  # e.g. "client certificate /var/lib/kubelet/pki/kubelet-client-current.pem"
    credential: ApiCredential = NO_CREDENTIAL
    token_file: Path | None = None  # re-read on credentials_changed()


class KubeconfigError(Exception):
    """A kubeconfig problem; the message names the file and field, never a secret.

    ``problem`` says what kind of input failure it is, for the inventory's findings."""

    def __init__(self, message: str, problem: ReadProblem = ReadProblem.GARBAGE) -> None:
        super().__init__(message)
        self.problem = problem


# kubectl and kubeadm never write YAML aliases; a handful is tolerated, a "billion
# laughs" document is refused before it is expanded by anything that walks it.
MAX_ALIASES = 64


class _AliasBomb(yaml.YAMLError):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a document with more than MAX_ALIASES aliases."""

    aliases_seen = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases_seen += 1
            if self.aliases_seen > MAX_ALIASES:
                raise _AliasBomb("too many aliases")
        return super().compose_node(parent, index)


def _fail(detail: str) -> ApiError:
    return ApiError(problem=ApiProblem.NOT_CONFIGURED, detail=detail)


def find_kubeconfig(api: ApiSettings, candidates: tuple[str, ...] = DEFAULT_KUBECONFIGS
                    ) -> Path | None:
    """``--kubeconfig`` if given (even when missing: that error is reported), else the
    first existing default."""
    if api.kubeconfig is not None:
        return api.kubeconfig
    for candidate in candidates:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def _read_small(path: Path, what: str) -> bytes:
    """The bytes of ``path`` read as every input is (bounded, never blocks on a FIFO)."""
    read = read_file(str(path), MAX_FILE_BYTES)
    error = read.error
    if error is None:
        return read.data or b""
    if error.problem is ReadProblem.NOT_FOUND:
        raise KubeconfigError(f"{what} {path} not found", error.problem)
    if error.problem is ReadProblem.PERMISSION_DENIED:
        raise KubeconfigError(f"{what} {path}: permission denied (run as root?)", error.problem)
    if error.problem is ReadProblem.TOO_LARGE:
        raise KubeconfigError(f"{what} {path} is larger than {MAX_FILE_BYTES} bytes",
                              error.problem)
    raise KubeconfigError(f"{what} {error.detail}", error.problem)


# libyaml when present: the pure-Python scanner spends ~50 ms on one kubeconfig's long
# base64 lines, libyaml well under 1 ms (bench/bench_kubeadm.py).
_FAST: Any = getattr(yaml, "CSafeLoader", None)


def _parse_yaml(data: bytes) -> Any:
    """``safe_load`` that refuses more than MAX_ALIASES aliases before building anything."""
    if _FAST is None:
        return yaml.load(data, Loader=_BoundedLoader)  # noqa: S506 - a SafeLoader
    aliases = 0
    for event in yaml.parse(data, Loader=_FAST):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise _AliasBomb("too many aliases")
    return yaml.load(data, Loader=_FAST)  # noqa: S506 - CSafeLoader is the safe loader


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = _parse_yaml(_read_small(path, "kubeconfig"))
    except _AliasBomb:
        raise KubeconfigError(f"kubeconfig {path} has more than {MAX_ALIASES} YAML aliases "
                              "(a YAML bomb?); refused") from None
    except RecursionError:
        raise KubeconfigError(f"kubeconfig {path} is nested too deeply; refused") from None
    except yaml.YAMLError as exc:
        if "nesting depth" in str(getattr(exc, "problem", "")):  # libyaml's own limit
            raise KubeconfigError(f"kubeconfig {path} is nested too deeply; refused") from None
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML{where}") from None
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path} is not a YAML mapping")
    return doc


def _named(doc: dict[str, Any], section: str, name: str, key: str, path: Path) -> dict[str, Any]:
    """The ``key`` mapping of the entry called ``name`` in the list ``section``."""
    entries = doc.get(section)
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(key)
            if isinstance(body, dict):
                return body
            raise KubeconfigError(f"kubeconfig {path}: {section} entry {name!r} has no {key}")
    raise KubeconfigError(f"kubeconfig {path}: {section[:-1]} {name!r} not found")


def _current(doc: dict[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cluster and user mappings of the current context."""
    name = doc.get("current-context")
    if not isinstance(name, str) or not name:
        raise KubeconfigError(f"kubeconfig {path} has no current-context")
    context = _named(doc, "contexts", name, "context", path)
    cluster_name, user_name = context.get("cluster"), context.get("user")
    if not isinstance(cluster_name, str) or not isinstance(user_name, str):
        raise KubeconfigError(f"kubeconfig {path}: context {name!r} lacks cluster or user")
    cluster = _named(doc, "clusters", cluster_name, "cluster", path)
    user = _named(doc, "users", user_name, "user", path) if user_name else {}
    return cluster, user


def _b64(value: Any, what: str, path: Path) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise KubeconfigError(f"kubeconfig {path}: {what} is not valid base64") from None


def _resolve(base: Path, value: Any) -> Path:
    p = Path(str(value)).expanduser()
    return p if p.is_absolute() else base / p


# Shared with agent.sources.kubeletkubeconfig, which judges the kubelet's kubeconfig.
load_yaml, current_entries, b64_field, resolve = _load_yaml, _current, _b64, _resolve


@dataclass
class _Parts:
    """What the kubeconfig and the flags say, before loading anything into ``ssl``."""

    server: str | None = None
    source: str = "flags"
    base: Path = Path()
    ca_file: Path | None = None
    ca_data: bytes | None = None
    insecure: bool = False
    cert_file: Path | None = None
    cert_data: bytes | None = None
    key_file: Path | None = None
    key_data: bytes | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None


def _parts_from_kubeconfig(path: Path) -> _Parts:
    doc = _load_yaml(path)
    cluster, user = _current(doc, path)
    parts = _Parts(source=str(path), base=path.parent)
    parts.server = cluster.get("server") or None
    parts.insecure = cluster.get("insecure-skip-tls-verify") is True
    if cluster.get("certificate-authority-data"):
        parts.ca_data = _b64(cluster["certificate-authority-data"],
                             "certificate-authority-data", path)
    elif cluster.get("certificate-authority"):
        parts.ca_file = _resolve(parts.base, cluster["certificate-authority"])
    if user.get("client-certificate-data"):
        parts.cert_data = _b64(user["client-certificate-data"], "client-certificate-data", path)
    elif user.get("client-certificate"):
        parts.cert_file = _resolve(parts.base, user["client-certificate"])
    if user.get("client-key-data"):
        parts.key_data = _b64(user["client-key-data"], "client-key-data", path)
    elif user.get("client-key"):
        parts.key_file = _resolve(parts.base, user["client-key"])
    if user.get("token"):
        parts.token = str(user["token"]).strip()
    elif user.get("tokenFile"):
        parts.token_file = _resolve(parts.base, user["tokenFile"])
    if not (parts.cert_data or parts.cert_file or parts.token or parts.token_file) and (
            user.get("exec") or user.get("auth-provider")):
        raise KubeconfigError(f"kubeconfig {path}: exec/auth-provider credential plugins "
                              "are not supported; use a client certificate or a token")
    return parts


@dataclass(frozen=True)
class ClientCertRef:
    """Where a kubeconfig's current user keeps its client certificate and key, and the
    cluster's CA. Key bytes live only as long as this object; ``repr`` hides them."""

    cert_data: bytes | None = None
    cert_file: Path | None = None
    key_data: bytes | None = field(default=None, repr=False)
    key_file: Path | None = None
    ca_data: bytes | None = None
    ca_file: Path | None = None


def client_certificate_ref(path: Path) -> ClientCertRef:
    """The current user's client certificate in the kubeconfig ``path`` (embedded data
    or a referenced file, relative to the kubeconfig's directory). Raises
    KubeconfigError (with a ReadProblem) for a bad file or a user without one."""
    parts = _parts_from_kubeconfig(path)
    if parts.cert_data is None and parts.cert_file is None:
        raise KubeconfigError(f"kubeconfig {path}: the current user has no client "
                              "certificate", ReadProblem.NO_CERTIFICATE)
    return ClientCertRef(cert_data=parts.cert_data, cert_file=parts.cert_file,
                         key_data=parts.key_data, key_file=parts.key_file,
                         ca_data=parts.ca_data, ca_file=parts.ca_file)


def _apply_flags(parts: _Parts, api: ApiSettings) -> None:
    if api.server:
        parts.server = api.server
    if api.token_file is not None:
        parts.token, parts.token_file = None, api.token_file
    if api.api_ca_file is not None:
        parts.ca_file, parts.ca_data, parts.insecure = api.api_ca_file, None, False
    if parts.insecure and not api.insecure:
        raise KubeconfigError(f"{parts.source}: insecure-skip-tls-verify is set; refused "
                              "(the API server would not be authenticated); pass --insecure "
                              "to allow it")


def read_token(path: Path) -> str:
    """The bearer token in ``path`` (stripped); raises KubeconfigError without its value."""
    token = _read_small(path, "token file").decode("utf-8", "replace").strip()
    if not token:
        raise KubeconfigError(f"token file {path} is empty")
    return token


def _ssl_context(parts: _Parts, scratch_dir: Path | None) -> ssl.SSLContext:
    try:
        if parts.insecure:  # --insecure allowed it: nothing to verify the server with
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif parts.ca_data is not None:
            ctx = ssl.create_default_context(cadata=parts.ca_data.decode("ascii", "replace"))
        elif parts.ca_file is not None:
            _read_small(parts.ca_file, "certificate-authority")  # a clear error if missing
            ctx = ssl.create_default_context(cafile=str(parts.ca_file))
        else:
            ctx = ssl.create_default_context()
    except (ssl.SSLError, ValueError) as exc:
        raise KubeconfigError(f"{parts.source}: the API server CA bundle could not be loaded "
                              f"({_ssl_reason(exc)})") from None
    if parts.cert_file or parts.cert_data:
        _load_client_cert(ctx, parts, scratch_dir)
    elif parts.key_file or parts.key_data:
        raise KubeconfigError(f"{parts.source}: client-key given without client-certificate")
    return ctx


def _ssl_reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or type(exc).__name__)


def _load_client_cert(ctx: ssl.SSLContext, parts: _Parts, scratch_dir: Path | None) -> None:
    """Load the client certificate and key; embedded data goes through a private temp dir."""
    if scratch_dir is not None:
        scratch_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kca-", dir=scratch_dir) as tmp:
        Path(tmp).chmod(0o700)  # mkdtemp already does; be explicit for reviewers
        cert = parts.cert_file or _private_file(Path(tmp) / "client.crt", parts.cert_data)
        key = parts.key_file or (
            _private_file(Path(tmp) / "client.key", parts.key_data) if parts.key_data else None)
        for p, what in ((cert, "client-certificate"), (key, "client-key")):
            if p is not None:
                _read_small(p, what)  # a clear not-found / permission error
        try:
            # password: an encrypted key fails here instead of OpenSSL asking on the tty
            ctx.load_cert_chain(certfile=str(cert), keyfile=str(key) if key else None,
                                password=b"")
        except (ssl.SSLError, ValueError) as exc:
            names = f"{cert}" + (f" / {key}" if key else "")
            label = "embedded client-certificate-data" if parts.cert_data else names
            raise KubeconfigError(f"{parts.source}: client certificate and key {label} could "
                                  f"not be loaded ({_ssl_reason(exc)})") from None


def _private_file(path: Path, data: bytes | None) -> Path:
    path.touch(mode=0o600)
    path.write_bytes(data or b"")
    return path


def _credential(parts: _Parts) -> ApiCredential:
    """The credential the API server authenticates (the client certificate first, as
    kube-apiserver's authenticators do)."""
    if parts.cert_file:
        return ApiCredential(CredentialKind.CERT_FILE, str(parts.cert_file))
    if parts.cert_data:
        return ApiCredential(CredentialKind.CERT_DATA, parts.source)
    if parts.token_file:
        return ApiCredential(CredentialKind.TOKEN_FILE, str(parts.token_file))
    if parts.token:
        return ApiCredential(CredentialKind.TOKEN, parts.source)
    return ApiCredential(CredentialKind.NONE, "")


def _describe_auth(credential: ApiCredential) -> str:
    return {CredentialKind.CERT_FILE: f"client certificate {credential.where}",
            CredentialKind.CERT_DATA: f"client certificate embedded in {credential.where}",
            CredentialKind.TOKEN_FILE: f"token from {credential.where}",
            CredentialKind.TOKEN: f"token embedded in {credential.where}",
            CredentialKind.NONE: "none"}[credential.kind]


def load_credentials(api: ApiSettings, *, scratch_dir: Path | None = None,
                     candidates: tuple[str, ...] = DEFAULT_KUBECONFIGS
                     ) -> Credentials | ApiError:
    """Credentials from the kubeconfig and flags, or ``ApiError(NOT_CONFIGURED)``."""
    path = find_kubeconfig(api, candidates)
    try:
        parts = _parts_from_kubeconfig(path) if path is not None else _Parts()
        _apply_flags(parts, api)
        if not parts.server:
            if path is None:
                return _fail("no kubeconfig found (tried " + ", ".join(candidates)
                             + "); give --kubeconfig, or --server with --token-file")
            raise KubeconfigError(f"kubeconfig {path}: the current cluster has no server")
        if not parts.server.startswith("https://"):
            raise KubeconfigError(f"{parts.source}: server {parts.server!r} is not https://")
        token = parts.token
        if parts.token_file is not None:
            token = read_token(parts.token_file)
        ctx = _ssl_context(parts, scratch_dir)
    except KubeconfigError as exc:
        return _fail(str(exc))
    credential = _credential(parts)
    return Credentials(server=parts.server.rstrip("/"), ssl_context=ctx, token=token,
                       source=parts.source, auth=_describe_auth(credential),
                       credential=credential, token_file=parts.token_file)
