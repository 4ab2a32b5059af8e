"""Pure parsing of kube-apiserver responses about CertificateSigningRequests.

No I/O, no clock. Bodies in, data out: CSR objects -> ``CsrInfo``, list pages, watch
events, Status bodies -> a classified ``Failure`` (with the outcome label counted in
``ApiState.requests_by_outcome``). Shapes that are not what was asked for (a Table, a
PartialObjectMetadataList, a Status where a list was expected) become ``ShapeError``,
which callers report as ``ApiProblem.BAD_RESPONSE``; nothing here raises anything else.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cryptography import x509

from agent.kubelet import SERVING_SIGNER, read_sans
from agent.model import ApiError, ApiProblem, CsrInfo, CsrState

INITIAL_EVENTS_END: Final = "k8s.io/initial-events-end"

# Outcome labels of ApiState.requests_by_outcome (a metric label: stable values).
OK: Final = "ok"
GONE: Final = "gone"


class ShapeError(ValueError):
    """The body parsed but is not the object that was asked for."""


@dataclass(frozen=True)
class ListPage:
    """One page of a CSR list: every CSR on it, of every node (see ``item_from_object``)."""

    items: tuple[CsrInfo, ...]
    resource_version: str
    continue_token: str | None


@dataclass(frozen=True)
class WatchEvent:
    """One line of a watch stream."""

    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK, ERROR
    csr: CsrInfo | None = None  # ADDED/MODIFIED/DELETED
    resource_version: str | None = None
    initial_events_end: bool = False  # a BOOKMARK closing a watch-list's initial events
    status: dict[str, Any] | None = None  # the Status object of an ERROR event


@dataclass(frozen=True)
class Failure:
    """A request that did not give the data: what to report and how to react."""

    outcome: str  # label for requests_by_outcome
    problem: ApiProblem
    detail: str
    status_code: int | None = None
    retry_after: float | None = None  # seconds, from Retry-After on 429/503

    @property
    def gone(self) -> bool:
        """410: the resourceVersion or continue token expired; start the list again."""
        return self.outcome == GONE


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ShapeError(f"timestamp expected, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise ShapeError(f"bad timestamp {value[:40]!r}") from None


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ShapeError(f"{what} is not an object")
    return value


def decode_request(value: Any) -> tuple[dict[str, Any], str | None]:
    """Subject and SANs of ``spec.request`` (base64 PEM CSR), or an error string."""
    if not isinstance(value, str) or not value:
        return {}, "spec.request is empty"
    try:
        pem = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return {}, "spec.request is not valid base64"
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError:
        return {}, "spec.request is not a PEM CERTIFICATE REQUEST"
    fields: dict[str, Any] = {"request_subject": csr.subject.rfc4514_string()}
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return fields, None
    except ValueError:
        return fields, "spec.request has a malformed extension"
    sans = read_sans(san)  # every GeneralName type: a UPN or DirName must not be dropped
    fields.update(request_dns_names=sans.dns, request_ip_addresses=sans.ips,
                  request_other_sans=sans.other)
    return fields, None


def _state(status: dict[str, Any]) -> tuple[CsrState, dict[str, Any] | None]:
    """State from status.conditions; no condition = Pending (certificates.k8s.io/v1)."""
    conditions = status.get("conditions") or []
    if not isinstance(conditions, list):
        raise ShapeError("status.conditions is not a list")
    true = {c.get("type"): c for c in conditions
            if isinstance(c, dict) and str(c.get("status", "True")) == "True"}
    # Denied and Failed are final and win over Approved (a Failed CSR is also Approved).
    for kind, state in (("Denied", CsrState.DENIED), ("Failed", CsrState.FAILED)):
        if kind in true:
            return state, true[kind]
    if "Approved" in true:
        issued = bool(status.get("certificate"))
        return (CsrState.ISSUED if issued else CsrState.APPROVED), true["Approved"]
    return CsrState.PENDING, None


def csr_from_object(obj: Any) -> CsrInfo:
    """A CertificateSigningRequest object as ``CsrInfo``; ShapeError if it is not one."""
    obj = _mapping(obj, "object")
    meta, spec = _mapping(obj.get("metadata"), "metadata"), _mapping(obj.get("spec"), "spec")
    name = meta.get("name")
    if not isinstance(name, str) or not name or spec.get("request") is None:
        raise ShapeError("not a CertificateSigningRequest (no name or spec.request)")
    state, condition = _state(_mapping(obj.get("status"), "status"))
    since = None
    reason = ""
    if condition is not None:
        when = condition.get("lastUpdateTime") or condition.get("lastTransitionTime")
        since = _timestamp(when) if when else None
        reason = ": ".join(str(condition[k]) for k in ("reason", "message") if condition.get(k))
    fields, error = decode_request(spec.get("request"))
    return CsrInfo(name=name, created=_timestamp(meta.get("creationTimestamp")), state=state,
                   username=str(spec.get("username") or ""),
                   signer=str(spec.get("signerName") or ""), state_since=since,
                   reason=reason, request_error=error, **fields)


def item_from_object(obj: Any) -> CsrInfo | None:
    """A list item or watch object as ``CsrInfo``, without letting one bad item fail the
    list or the watch: every item of every node passes here, and only this node's matter.

    A well-formed CSR gives its ``CsrInfo``. A malformed one (wrong types, bad
    timestamps, no spec.request) whose name, creationTimestamp, signerName and username
    can still be read gives a Pending ``CsrInfo`` whose ``request_error`` says what is
    wrong: if it is this node's, the operator sees it (SERVING_CSR_SUSPICIOUS: inspect
    it), and if it is another node's it is filtered out like any other. An item whose
    owner cannot even be read is skipped (None): it cannot be attributed to this node.
    """
    try:
        return csr_from_object(obj)
    except ShapeError as exc:
        problem = str(exc)
    except (ValueError, TypeError) as exc:  # e.g. an unhashable condition type
        problem = type(exc).__name__
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    spec = obj.get("spec") if isinstance(obj, dict) else None
    if not isinstance(meta, dict) or not isinstance(spec, dict):
        return None
    name, signer, user = meta.get("name"), spec.get("signerName"), spec.get("username")
    if not (isinstance(name, str) and name and isinstance(signer, str)
            and isinstance(user, str)):
        return None
    try:
        created = _timestamp(meta.get("creationTimestamp"))
    except ShapeError:
        return None
    return CsrInfo(name=name, created=created, state=CsrState.PENDING, username=user,
                   signer=signer, request_error=f"malformed CSR object ({problem})")


def is_node_serving(csr: CsrInfo, node_name: str) -> bool:
    """A ``kubernetes.io/kubelet-serving`` CSR made by ``system:node:<node_name>``."""
    return csr.signer == SERVING_SIGNER and csr.username == f"system:node:{node_name}"


def load_json(body: bytes) -> dict[str, Any]:
    """A JSON object, or ShapeError."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ShapeError("the response is not valid JSON") from None
    if not isinstance(doc, dict):
        raise ShapeError("the response is not a JSON object")
    return doc


def parse_list(body: bytes) -> ListPage:
    """A CertificateSigningRequestList page; ShapeError for anything else (Table, ...)."""
    doc = load_json(body)
    kind = doc.get("kind")
    if kind != "CertificateSigningRequestList":
        raise ShapeError(f"expected a CertificateSigningRequestList, got {kind or 'no kind'}")
    items = doc.get("items")
    if items is None:
        items = []  # an empty list may omit items
    if not isinstance(items, list):
        raise ShapeError("items is not a list")
    meta = _mapping(doc.get("metadata"), "metadata")
    parsed = (item_from_object(i) for i in items)
    return ListPage(items=tuple(c for c in parsed if c is not None),
                    resource_version=str(meta.get("resourceVersion") or ""),
                    continue_token=meta.get("continue") or None)


def parse_watch_line(line: bytes) -> WatchEvent:
    """One watch event; BOOKMARKs (``spec.request: null``) never become CSRs."""
    doc = load_json(line)
    kind, obj = doc.get("type"), _mapping(doc.get("object"), "object")
    meta = _mapping(obj.get("metadata"), "object.metadata")
    rv = meta.get("resourceVersion")
    if kind == "BOOKMARK":
        annotations = _mapping(meta.get("annotations"), "annotations")
        return WatchEvent(type="BOOKMARK", resource_version=str(rv) if rv else None,
                          initial_events_end=annotations.get(INITIAL_EVENTS_END) == "true")
    if kind == "ERROR":
        return WatchEvent(type="ERROR", status=obj)
    if kind in ("ADDED", "MODIFIED", "DELETED"):
        return WatchEvent(type=kind, csr=item_from_object(obj),
                          resource_version=str(rv) if rv else None)
    raise ShapeError(f"unknown watch event type {str(kind)[:20]!r}")


def parse_identity(body: bytes) -> tuple[str | None, tuple[str, ...]]:
    """Username and groups from a SelfSubjectReview response."""
    doc = load_json(body)
    if doc.get("kind") != "SelfSubjectReview":
        raise ShapeError(f"expected a SelfSubjectReview, got {doc.get('kind') or 'no kind'}")
    info = _mapping(_mapping(doc.get("status"), "status").get("userInfo"), "userInfo")
    groups = info.get("groups") or []
    return (str(info["username"]) if info.get("username") else None,
            tuple(str(g) for g in groups) if isinstance(groups, list) else ())


def _status_message(body: bytes) -> str:
    try:
        message = load_json(body).get("message")
    except ShapeError:
        return ""
    return str(message)[:300] if message else ""


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare from kube-apiserver; fall back to backoff
    return seconds if seconds >= 0 else None


AUTH_DETAIL: Final = ("the API server rejected the credentials (401 Unauthorized): the client "
                      "certificate is expired or issued by another CA, or the token is invalid")
RBAC_HINT: Final = ("the identity needs get, list and watch on certificatesigningrequests "
                    "(certificates.k8s.io); see packaging/kubernetes/rbac.yaml")


def classify_status(code: int, body: bytes, retry_after: str | None = None) -> Failure:
    """The Failure for a non-2xx HTTP status (or an ERROR watch event's Status code)."""
    message = _status_message(body)
    if code == 401:
        return Failure("auth-failed", ApiProblem.AUTH_FAILED, AUTH_DETAIL, code)
    if code == 403:
        said = message or "403 Forbidden"
        return Failure("forbidden", ApiProblem.FORBIDDEN, f"{said}; {RBAC_HINT}", code)
    if code == 410:
        return Failure(GONE, ApiProblem.BAD_RESPONSE,
                       f"resourceVersion or continue token expired (410): {message}", code)
    if code == 429:
        return Failure("rate-limited", ApiProblem.RATE_LIMITED,
                       "the API server is rate limiting requests (429 Too Many Requests)",
                       code, _retry_after(retry_after))
    if code >= 500:
        said = f": {message}" if message else ""
        return Failure("unreachable", ApiProblem.UNREACHABLE,
                       f"the API server answered {code}{said}", code,
                       _retry_after(retry_after) if code == 503 else None)
    said = f": {message}" if message else ""
    return Failure("bad-response", ApiProblem.BAD_RESPONSE,
                   f"unexpected HTTP {code} from the API server{said}", code)


def shape_failure(exc: ShapeError, what: str) -> Failure:
    return Failure("bad-response", ApiProblem.BAD_RESPONSE, f"{what}: {exc}")


def failure_to_error(failure: Failure, previous: ApiError | None, now: datetime) -> ApiError:
    """The ApiError to publish, counting consecutive failures since the first one."""
    count = previous.consecutive_failures + 1 if previous is not None else 1
    since = previous.since if previous is not None and previous.since else now
    return ApiError(problem=failure.problem, detail=failure.detail,
                    status_code=failure.status_code, consecutive_failures=count, since=since)
