"""The agent's own failures, kept apart from problems with the operator's files.

A file that is empty, garbage or unreadable for permission is the operator's problem and
becomes a finding. Running out of file descriptors (EMFILE, ENFILE) or memory (ENOMEM),
or a bug in our code, says nothing about the file being read: it raises
:class:`AgentFault`, which no source turns into a ReadError. The daemon catches it, keeps
the last good verdict (marked stale), counts it in
``kubelet_cert_agent_internal_errors_total{component}`` and logs it once with its
traceback. Pure: no I/O.
"""

from __future__ import annotations

import errno

# errno values that describe the agent's process or the host, never the file asked for.
AGENT_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


class AgentFault(Exception):
    """An evaluation failed for the agent's own reasons (``component`` names where)."""

    def __init__(self, component: str, detail: str) -> None:
        super().__init__(f"{component}: {detail}")
        self.component = component
        self.detail = detail


def is_agent_errno(exc: BaseException) -> bool:
    """True for an OSError that is about the agent's resources, not about the file."""
    return isinstance(exc, OSError) and exc.errno in AGENT_ERRNOS


def raise_if_agent_errno(exc: OSError, component: str) -> None:
    """Re-raise ``exc`` as an :class:`AgentFault` when it is about the agent's resources."""
    if exc.errno in AGENT_ERRNOS:
        reason = errno.errorcode.get(exc.errno or 0, "OSError")
        raise AgentFault(component, f"{reason} ({exc.strerror})") from exc


def component_of(exc: BaseException) -> str:
    """The ``component`` label of an unexpected exception caught by a catch-all."""
    if isinstance(exc, AgentFault):
        return exc.component
    return "evaluation"
