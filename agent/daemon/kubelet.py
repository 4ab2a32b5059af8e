"""The daemon's view of the kubelet: discovered once, re-discovered when it changes.

Re-discovery happens when the kubelet process changes (its pid and start time no
longer match: checked with one read of ``/proc/<pid>/stat`` every
:data:`PROCESS_CHECK_SECONDS`), when a unit, drop-in, env or config file discovery read
changes (the watcher sees them), or on reload. While the kubelet is down, the last good
discovery is kept (the settings of the kubelet that ran), unless one of those files
changed. A change of any setting is logged once as ``kubelet_settings_changed`` with
``old -> new`` per setting.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from agent.config import Settings
from agent.model import Event, KubeletSettings, event
from agent.snapshot import discovery_request
from agent.sources.discovery import procscan
from agent.sources.discovery.discover import Request, discover, effective_api
from agent.sources.discovery.hostfs import under

PROCESS_CHECK_SECONDS = 10.0  # how often the loop asks "is it still the same kubelet?"
# With no kubelet running, asking means a scan of every process (about 45 µs each on a
# busy machine): every minute, not every 10 s, so a node with thousands of processes and
# a dead kubelet stays idle. A start by systemd is seen at once anyway: its invocation
# link under /run/systemd/units is a watched discovery input.
DOWN_CHECK_SECONDS = 60.0


def _proc(k: KubeletSettings) -> str:
    return under(k.host_root, "/proc")


def settings_changes(old: KubeletSettings | None, new: KubeletSettings) -> str:
    """``name: old -> new`` for each setting whose value changed, ``; ``-separated."""
    if old is None:
        return ""
    before = {"pid": old.pid, **{n: s.value for n, s in old.settings().items()}}
    after = {"pid": new.pid, **{n: s.value for n, s in new.settings().items()}}
    return "; ".join(f"{n}: {before[n]} -> {after[n]}" for n in after if before[n] != after[n])


def effective(configured: Settings, k: KubeletSettings) -> Settings:
    """The configured settings with the discovered node name and kubeconfig filled in."""
    sources = replace(configured.sources, node_name=k.node_name.value)
    return replace(configured, sources=sources, api=effective_api(configured.api, k))


class KubeletTracker:
    """Holds the current discovery; the daemon's thread is the only caller."""

    def __init__(self, configured: Settings, pids: frozenset[int] | None = None) -> None:
        self._pids = pids  # only these processes count (tests on a shared machine)
        self._request: Request = discovery_request(configured.sources, configured.api)
        self.current: KubeletSettings | None = None
        self._process: procscan.ProcessInfo | None = None
        self._stale = True

    def reconfigure(self, configured: Settings) -> None:
        self._request = discovery_request(configured.sources, configured.api)
        self._stale = True

    def inputs(self) -> frozenset[str]:
        """Local paths whose change means: discover again."""
        k = self.current
        return frozenset() if k is None else frozenset(under(k.host_root, p) for p in k.inputs)

    def check_interval(self) -> float:
        """Seconds between :meth:`process_changed` calls: cheap while a kubelet runs."""
        return PROCESS_CHECK_SECONDS if self._process is not None else DOWN_CHECK_SECONDS

    def process_changed(self) -> bool:
        """The kubelet we know stopped or a kubelet appeared (cheap when one runs)."""
        k = self.current
        if k is None:
            return True
        proc = _proc(k)
        if self._process is not None:
            return not procscan.alive(proc, self._process)
        return bool(procscan.kubelets(proc, self._pids))

    def refresh(self, changed: Iterable[str] = ()) -> tuple[KubeletSettings, list[Event]]:
        """The discovery to judge with, re-discovering when needed; events to log."""
        inputs_changed = bool(self.inputs() & set(changed))
        if self.current is not None and not (self._stale or inputs_changed
                                             or self.process_changed()):
            return self.current, []
        new = discover(self._request, pids=self._pids)
        old, self._stale = self.current, False
        events: list[Event] = []
        if (old is not None and old.pid is not None and new.pid is None
                and not inputs_changed):
            # the kubelet went down: judge with the settings it ran with
            new = replace(old, pid=None, other_pids=(), started_at=None, problems=(
                *old.problems, f"kubelet pid {old.pid} is not running; its settings are kept"))
            events.append(event("kubelet_down", "warning", pid=old.pid))
        self._process = self._info(new)
        changes = settings_changes(old, new)
        if changes:
            events.append(event("kubelet_settings_changed", changes=changes,
                                old_pid=old.pid if old else None, pid=new.pid))
        self.current = new
        return new, events

    def _info(self, k: KubeletSettings) -> procscan.ProcessInfo | None:
        if k.pid is None:
            return None
        found = procscan.kubelets(_proc(k), {k.pid})
        return found[0] if found else None
