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
from agent.sources.discovery.discover import Command, Request, effective, find_command, settle

__all__ = ["KubeletTracker", "effective", "settings_changes"]
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


class KubeletTracker:
    """Holds the current discovery; the daemon's thread is the only caller.

    The command line (process scan, unit files) is kept until the process or a unit file
    changes; the config and its drop-ins are read again at every refresh, as the
    certificates are (cheap, and right even when an inotify event was missed).
    """

    def __init__(self, configured: Settings, pids: frozenset[int] | None = None) -> None:
        self._pids = pids  # only these processes count (tests on a shared machine)
        self._request: Request = discovery_request(configured.sources, configured.api)
        self.current: KubeletSettings | None = None
        self._command: Command | None = None
        self._down_pid: int | None = None  # the kubelet that ran, while it is down
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
        return PROCESS_CHECK_SECONDS if self._process() is not None else DOWN_CHECK_SECONDS

    def _process(self) -> procscan.ProcessInfo | None:
        found = self._command.scan.found if self._command is not None else ()
        return found[0] if found else None

    def process_changed(self) -> bool:
        """The kubelet we know stopped or a kubelet appeared (cheap when one runs)."""
        if self._command is None:
            return True
        proc = under(self._request.host_root, "/proc")
        known = self._process()
        if known is not None:
            return not procscan.alive(proc, known)
        return bool(procscan.kubelets(proc, self._pids))

    def refresh(self, changed: Iterable[str] = ()) -> tuple[KubeletSettings, list[Event]]:
        """The discovery to judge with, re-discovering when needed; events to log."""
        inputs_changed = bool(self.inputs() & set(changed))
        events: list[Event] = []
        if self._command is None or self._stale or inputs_changed or self.process_changed():
            events += self._find(inputs_changed)
        assert self._command is not None  # noqa: S101 - _find always sets it
        new = settle(self._request, self._command)
        if self._down_pid is not None:
            new = replace(new, pid=None, other_pids=(), started_at=None, problems=(
                *new.problems,
                f"kubelet pid {self._down_pid} is not running; its settings are kept"))
        old, self.current = self.current, new
        changes = settings_changes(old, new)
        if changes:
            events.append(event("kubelet_settings_changed", changes=changes,
                                old_pid=old.pid if old else None, pid=new.pid))
        return new, events

    def _find(self, inputs_changed: bool) -> list[Event]:
        command = find_command(self._request, self._pids)
        old, self._stale = self._command, False
        ran = old.scan.found[0].pid if old is not None and old.scan.found else self._down_pid
        if ran is not None and not command.scan.found and not inputs_changed:
            # the kubelet went down: judge with the command line it ran with
            if old is not None and old.scan.found:
                self._command = replace(old, scan=replace(old.scan, found=(), started_at=None))
                self._down_pid = ran
                return [event("kubelet_down", "warning", pid=ran)]
            return []
        self._command, self._down_pid = command, None
        return []
