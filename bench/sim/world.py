"""Virtual time and the description of one scenario.

Instants are Unix seconds (floats) on the simulation's virtual clock; the year starts at
:data:`EPOCH`. A :class:`Scenario` is plain data: what the cluster and the node do and
when faults happen. Windows are ``(start, end)`` offsets from :data:`EPOCH` in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

EPOCH = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
YEAR = 365 * DAY

Window = tuple[float, float]


def at(offset: float) -> float:
    """The virtual instant ``offset`` seconds after the start of the year."""
    return EPOCH + offset


def to_datetime(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def inside(t: float, windows: tuple[Window, ...]) -> bool:
    return any(EPOCH + a <= t < EPOCH + b for a, b in windows)


@dataclass(frozen=True)
class Scenario:
    """One simulated year of one node (``nodes`` > 1: a fleet sharing the cluster)."""

    name: str
    description: str
    span: float = YEAR
    signer_duration: float = YEAR  # kube-controller-manager --cluster-signing-duration
    seed: int = 1
    # the node as installed: age of the current client / serving certificate at t=0
    client_age: float = 100 * DAY
    server_age: float | None = 100 * DAY  # None: no serving certificate yet (fresh install)
    server_tls_bootstrap: bool = True
    rotate_certificates: bool = True
    self_signed_created: float | None = None  # offset of kubelet.crt creation
    watched: tuple[tuple[float, float], ...] = ()  # (notBefore, notAfter) offsets
    # the cluster
    serving_approval_delay: float | None = 5 * MINUTE  # None: nobody approves
    client_rbac_removed: float | None = None  # selfnodeclient binding removed at
    signer_down: tuple[Window, ...] = ()
    signer_down_around: Window | None = None  # offsets from the client rotation deadline
    api_down: tuple[Window, ...] = ()  # API server unreachable from the node
    # the node
    kubelet_down: tuple[Window, ...] = ()
    kubelet_down_around: Window | None = None  # offsets from the client rotation deadline
    kill_kubelet_mid_swap: float | None = None  # first swap after this dies after step 3
    agent_down: tuple[Window, ...] = ()
    # the agent restarts between the kubelet's swap steps 3 and 4 of the first client
    # rotation after this offset; the kubelet completes the swap milliseconds later
    agent_restart_mid_swap: float | None = None
    textfile_full: tuple[Window, ...] = ()  # the textfile write fails (ENOSPC)
    retired_ca_expires: float | None = None  # an old CA beside the current one in ca.crt
    clock_skew: float = 0.0  # the node's clock minus true time, seconds
    collection: str = "scrape"  # "scrape" (/metrics) or "textfile" (node_exporter)
    expect: str = ""  # what the table should show, for the reader
    nodes: int = 1
    tags: frozenset[str] = field(default_factory=frozenset)
    node_prefix: str = "node"
    # a fleet: groups of nodes, each its own variant (faults per node); see :class:`Group`
    fleet: tuple[Group, ...] = ()


@dataclass(frozen=True)
class Group:
    """``count`` nodes of a fleet share the fault ``variant``; ``played`` of them are
    simulated (the others behave the same: sampling keeps the runtime in budget)."""

    name: str
    count: int
    played: int
    variant: Scenario
