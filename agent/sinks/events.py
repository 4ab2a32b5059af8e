"""Log events: what changed between two published evaluations, never one per evaluation.

:func:`diff` is pure: it compares the previously published evaluation with the new
one and names each change once ("finding raised", "finding cleared", "rotation
observed", "input unreadable", "api unreachable", ...). The daemon adds a few events
of its own (start, reload, watch fallback) with :func:`event`.

An event carries only codes, paths, serials, instants and the one-line messages the
checks and sources already made safe: never file contents, key bytes, tokens or headers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from agent.model import (
    ROTATION_WINDOW_END,
    ROTATION_WINDOW_START,
    ApiError,
    CertFile,
    CertInfo,
    Evaluation,
    Event,
    Finding,
    Role,
    Severity,
    event,
)

# Stable event names: operators grep and alert on them (journald, Loki).
FINDING_RAISED = "finding_raised"
FINDING_CLEARED = "finding_cleared"
FINDING_SEVERITY_CHANGED = "finding_severity_changed"
ROTATION_OBSERVED = "rotation_observed"
INPUT_UNREADABLE = "input_unreadable"
INPUT_READABLE = "input_readable"
API_UNREACHABLE = "api_unreachable"
API_RECOVERED = "api_recovered"

_LEVEL_FOR_SEVERITY = {Severity.INFO: "info", Severity.WARNING: "warning",
                       Severity.CRITICAL: "error"}


FindingKey = tuple[str, str | None]


def _by_key(findings: Iterable[Finding]) -> dict[FindingKey, Finding]:
    """Findings by (code, path); on a duplicate key the worst one wins."""
    out: dict[FindingKey, Finding] = {}
    for f in findings:
        key = (f.code, f.path)
        if key not in out or f.severity > out[key].severity:
            out[key] = f
    return out


def _finding_events(previous: Mapping[FindingKey, Finding],
                    current: Mapping[FindingKey, Finding]) -> list[Event]:
    events: list[Event] = []
    for key, f in current.items():
        old = previous.get(key)
        if old is None:
            events.append(event(FINDING_RAISED, _LEVEL_FOR_SEVERITY[f.severity], code=f.code,
                                severity=f.severity.label, path=f.path, message=f.message))
        elif old.severity != f.severity:
            events.append(event(FINDING_SEVERITY_CHANGED, _LEVEL_FOR_SEVERITY[f.severity],
                                code=f.code, path=f.path, old_severity=old.severity.label,
                                severity=f.severity.label, message=f.message))
    for key, old in previous.items():
        if key not in current:
            events.append(event(FINDING_CLEARED, code=old.code, severity=old.severity.label,
                                path=old.path))
    return events


def rotation_timing(old: CertInfo, at: datetime) -> tuple[float, str]:
    """How far into ``old``'s lifetime a rotation seen at ``at`` came, and where that is.

    Returns the fraction of the lifetime elapsed and one of ``before-window``,
    ``in-window`` (the kubelet's 70 to 90 % window), ``after-window`` or ``after-expiry``.
    """
    lifetime = old.lifetime.total_seconds()
    fraction = (at - old.not_before).total_seconds() / lifetime if lifetime > 0 else 1.0
    if at >= old.not_after:
        place = "after-expiry"
    elif fraction < ROTATION_WINDOW_START:
        place = "before-window"
    elif fraction <= ROTATION_WINDOW_END:
        place = "in-window"
    else:
        place = "after-window"
    return round(fraction, 4), place


def _rotation_events(previous: Evaluation, current: Evaluation) -> list[Event]:
    before = {(c.role, c.path): c.leaf for c in previous.snapshot.certs if c.leaf is not None}
    events: list[Event] = []
    for cert in current.snapshot.certs:
        old = before.get((cert.role, cert.path))
        new = cert.leaf
        if old is None or new is None or old.fingerprint_sha256 == new.fingerprint_sha256:
            continue
        fraction, place = rotation_timing(old, current.now)
        events.append(event(ROTATION_OBSERVED, role=cert.role.value, path=cert.path,
                            old_serial=old.serial, new_serial=new.serial,
                            old_not_after=old.not_after, new_not_after=new.not_after,
                            old_lifetime_fraction=fraction, timing=place,
                            in_window=place == "in-window", target=cert.target))
    return events


def rotated_roles(events: Iterable[Event]) -> list[Role]:
    """The role of every ``rotation_observed`` event, in order."""
    return [Role(str(e.as_dict()["role"])) for e in events if e.kind == ROTATION_OBSERVED]


def _input_errors(ev: Evaluation | None) -> dict[tuple[str, str], CertFile | str]:
    """Unreadable inputs by (role, path): the CertFile, or the kubelet config's problem."""
    if ev is None:
        return {}
    snap = ev.snapshot
    out: dict[tuple[str, str], CertFile | str] = {
        (c.role.value, c.path): c for c in snap.certs + snap.anchors if c.read_error is not None
    }
    cfg = snap.kubelet_config
    if cfg.error is not None and cfg.path is not None:
        out[("kubelet-config", cfg.path)] = cfg.error.problem.value
    return out


def _input_events(previous: Evaluation | None, current: Evaluation) -> list[Event]:
    before, after = _input_errors(previous), _input_errors(current)
    events: list[Event] = []
    for (role, path), item in after.items():
        old = before.get((role, path))
        if isinstance(item, CertFile):
            assert item.read_error is not None  # noqa: S101 - selected above
            problem, detail = item.read_error.problem.value, item.read_error.detail
            stale = item.stale_since
        else:
            cfg_error = current.snapshot.kubelet_config.error
            problem, detail, stale = item, cfg_error.detail if cfg_error else "", None
        old_problem = old if isinstance(old, str) or old is None else (
            old.read_error.problem.value if old.read_error else None)
        if old_problem != problem:
            events.append(event(INPUT_UNREADABLE, "warning", role=role, path=path,
                                problem=problem, detail=detail, stale=stale is not None,
                                stale_since=stale))
    for role, path in before.keys() - after.keys():
        events.append(event(INPUT_READABLE, role=role, path=path))
    return events


def _api_error(ev: Evaluation | None) -> tuple[str | None, ApiError | None]:
    api = ev.snapshot.api if ev is not None else None
    return (api.server, api.error) if api is not None else (None, None)


def _api_events(previous: Evaluation | None, current: Evaluation) -> list[Event]:
    _, old = _api_error(previous)
    server, new = _api_error(current)
    if new is not None and (old is None or old.problem != new.problem):
        return [event(API_UNREACHABLE, "warning", server=server, problem=new.problem.value,
                      status_code=new.status_code, detail=new.detail,
                      consecutive_failures=new.consecutive_failures)]
    if old is not None and new is None and server is not None:
        return [event(API_RECOVERED, server=server)]
    return []


def diff(previous: Evaluation | None, current: Evaluation) -> list[Event]:
    """Events for what changed from ``previous`` to ``current`` (pure, deterministic).

    With no previous evaluation (start-up) every current finding, unreadable input
    and API failure is reported once as raised; nothing is reported as cleared.
    """
    before = _by_key(previous.findings) if previous is not None else {}
    events = _finding_events(before, _by_key(current.findings))
    if previous is not None:
        events += _rotation_events(previous, current)
    events += _input_events(previous, current)
    events += _api_events(previous, current)
    return events
