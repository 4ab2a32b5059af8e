"""Sources -> one immutable :class:`agent.model.Snapshot`.

``build_snapshot`` turns every input failure into data (a LinkProblem, a ReadError); it
raises only :class:`~agent.faults.AgentFault`, a failure of the agent itself.
``merge_stale`` carries the last good certificate over a read failure, marked stale.
``input_paths`` / ``watch_dirs`` tell the watcher which files and directories matter.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from agent.config import DISCOVER, ApiSettings, SourceSettings
from agent.faults import AgentFault, raise_if_agent_errno
from agent.kubelet import ROTATING_ROLES, current_name, updated_name
from agent.model import (
    ApiState,
    CertFile,
    KubeletConfigInfo,
    KubeletSettings,
    ProbeResult,
    ReadError,
    Role,
    Snapshot,
)
from agent.sources.certdir import scan_cert_dir
from agent.sources.certfile import load_anchors, load_cert_file
from agent.sources.discovery.discover import Request, discover
from agent.sources.discovery.hostfs import resolve, to_host, under
from agent.sources.kubeadm import is_control_plane, load_kubeadm
from agent.sources.kubeletkubeconfig import read_kubelet_kubeconfig
from agent.sources.watched import load_watched, walk_dirs

SELF_SIGNED_FILES = ("kubelet.crt", "kubelet.key")


def discovery_request(sources: SourceSettings, api: ApiSettings | None = None) -> Request:
    """What discovery is told by the agent's flags (explicit ones win)."""
    config = sources.kubelet_config
    return Request(
        host_root=str(sources.host_root),
        cert_dir=str(sources.cert_dir) if sources.cert_dir is not None else None,
        config=None if config == DISCOVER else str(config or ""),
        node_name=sources.node_name or None,
        kubeconfig=str(api.kubeconfig) if api is not None and api.kubeconfig else None,
        max_file_bytes=sources.max_file_bytes)


def config_info(k: KubeletSettings) -> KubeletConfigInfo:
    """The effective settings the checks read: flags over drop-ins over config over
    defaults, serverTLSBootstrap vetoed by its feature gate. ``present`` says whether the
    settings are known (a command line or a config file was found)."""
    return KubeletConfigInfo(
        path=k.config.value, present=k.command_known, error=k.config_error,
        server_tls_bootstrap=k.effective_server_tls_bootstrap,
        rotate_certificates=k.rotate_certificates.value,
        tls_cert_file=k.tls_cert_file.value, tls_private_key_file=k.tls_private_key_file.value,
        client_ca_file=k.client_ca_file.value)


def build_snapshot(sources: SourceSettings, now: datetime, api: ApiState | None = None,
                   probe: ProbeResult | None = None,
                   kubelet: KubeletSettings | None = None) -> Snapshot:
    """Inventory every local input at ``now``, for ``kubelet`` (discovered when None).

    ``certs`` order: client, server (always present, possibly MISSING), kubelet.crt
    (when present), tlsCertFile (when configured), ``--watch`` files sorted by path, then
    on a kubeadm control plane its fourteen files in kubeadm's order; then
    the chain the serving port presented (role ``served``) when ``probe`` got one.
    Every kubelet path in the snapshot is a host path.
    """
    if kubelet is None:
        kubelet = discover(discovery_request(sources))
    try:
        return with_probe(_build(sources, kubelet, now, api), probe)
    except AgentFault:
        raise
    except Exception as exc:  # each source turns input errors into data: this is our bug
        # Never a made-up CERT_UNREADABLE about the operator's files (issue 8): the daemon
        # keeps the last good verdict, marked stale, and counts the failure as the agent's.
        raise AgentFault("snapshot", f"inventory failed ({type(exc).__name__})") from exc


def with_probe(snapshot: Snapshot, probe: ProbeResult | None) -> Snapshot:
    """``snapshot`` with the probe's result; its served chain becomes a ``served`` cert."""
    certs = tuple(c for c in snapshot.certs if c.role is not Role.SERVED)
    if probe is not None and probe.served is not None:
        certs += (probe.served,)
    return replace(snapshot, probe=probe, certs=certs)


def _build(sources: SourceSettings, kubelet: KubeletSettings, now: datetime,
           api: ApiState | None) -> Snapshot:
    limit = sources.max_file_bytes
    root = kubelet.host_root
    config = config_info(kubelet)
    anchor_paths = ([resolve(root, config.client_ca_file)] if config.client_ca_file else []) + [
        str(p) for p in sources.ca_files]
    anchor_files, anchors = load_anchors(anchor_paths, limit)
    cert_dir = resolve(root, kubelet.cert_dir.value)
    scan = scan_cert_dir(cert_dir, anchors, limit, host_root=root)
    certs = list(scan.certs)
    if config.tls_cert_file:
        key = config.tls_private_key_file
        certs.append(load_cert_file(Role.TLS_CERT_FILE, resolve(root, config.tls_cert_file),
                                    anchors, limit, key_path=resolve(root, key) if key else None))
    kubeconfig, kubeconfig_certs = read_kubelet_kubeconfig(sources.kubelet, cert_dir, anchors,
                                                           limit)
    certs.extend(kubeconfig_certs)
    # --watch files are judged for expiry and readability only: verifying each against
    # the anchors would double the cost of a 10,000-file directory for a fact no check uses.
    certs.extend(load_watched(sources.watch_paths, (), limit,
                              recursive=sources.watch_recursive))
    kubeadm_dir = kubeadm_root(sources)
    if kubeadm_dir is not None:
        certs.extend(load_kubeadm(kubeadm_dir, limit))
    snapshot = Snapshot(taken_at=now, node_name=kubelet.node_name.value, cert_dir=cert_dir,
                        kubelet_config=config, certs=tuple(certs), anchors=anchor_files,
                        history=scan.history, updated_links=scan.updated_links, api=api,
                        kubelet=kubelet, cert_dir_error=scan.dir_error, kubeconfig=kubeconfig,
                        kubeadm_dir=kubeadm_dir, cert_dir_identity=dir_identity(cert_dir))
    return relocate(snapshot, lambda p: to_host(root, p), root.rstrip("/") + "/")


def _cert_paths(c: CertFile, move: Callable[[str], str], strip: str) -> CertFile:
    def opt(p: str | None) -> str | None:
        return None if p is None else move(p)

    def error(e: ReadError | None) -> ReadError | None:
        return e if e is None or not strip else replace(e, detail=e.detail.replace(strip, "/"))
    link = c.link and replace(c.link, path=move(c.link.path), resolved=opt(c.link.resolved))
    return replace(c, path=move(c.path), target=opt(c.target), key_path=opt(c.key_path),
                   link=link, read_error=error(c.read_error), key_error=error(c.key_error))


def relocate(snapshot: Snapshot, move: Callable[[str], str], strip: str = "") -> Snapshot:
    """The snapshot with every path passed through ``move`` (local <-> host paths), and
    ``strip`` (the host root and a slash) replaced by ``/`` in error details."""
    if snapshot.kubelet is None or snapshot.kubelet.host_root in ("", "/"):
        return snapshot
    return replace(
        snapshot, cert_dir=move(snapshot.cert_dir),
        certs=tuple(_cert_paths(c, move, strip) for c in snapshot.certs),
        anchors=tuple(_cert_paths(c, move, strip) for c in snapshot.anchors),
        history=tuple(replace(h, previous_path=h.previous_path and move(h.previous_path))
                      for h in snapshot.history),
        updated_links=tuple(move(p) for p in snapshot.updated_links),
        kubeadm_dir=snapshot.kubeadm_dir and move(snapshot.kubeadm_dir),
        cert_dir_error=snapshot.cert_dir_error and replace(
            snapshot.cert_dir_error, detail=snapshot.cert_dir_error.detail.replace(strip, "/")
            if strip else snapshot.cert_dir_error.detail))


def kubeadm_root(sources: SourceSettings) -> str | None:
    """The kubeadm dir to inventory: named by the operator, or the default one on a
    control-plane node (``pki/ca.crt`` exists); None otherwise or with --no-kubeadm."""
    if sources.kubeadm_dir is None:
        return None
    root = os.path.abspath(sources.kubeadm_dir)
    return root if sources.kubeadm_explicit or is_control_plane(root) else None


def dir_identity(path: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a directory; None if it is missing or not a directory.

    Compared at each evaluation: a bind mount over the cert dir or a directory replaced
    under the same name is another directory, whose watches must be re-armed.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise_if_agent_errno(exc, "sources")
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _carry(previous: CertFile | None, current: CertFile, now: datetime) -> CertFile:
    """Keep the last good certificate of a file that stopped being readable."""
    if current.leaf is not None or previous is None or previous.leaf is None:
        return current
    broken = current.read_error is not None or (
        current.link is not None and current.link.problem is not None)
    if not broken:
        return current
    return replace(current, chain=previous.chain, leaf=previous.leaf, trusted=previous.trusted,
                   self_signed=previous.self_signed, key_match=previous.key_match,
                   stale_since=previous.stale_since or now)


def _merge_files(previous: tuple[CertFile, ...], current: tuple[CertFile, ...],
                 now: datetime) -> tuple[CertFile, ...]:
    before = {(c.role, c.path): c for c in previous}
    return tuple(_carry(before.get((c.role, c.path)), c, now) for c in current)


def merge_stale(previous: Snapshot | None, current: Snapshot, now: datetime) -> Snapshot:
    """``current`` where each unreadable file keeps its previous leaf and chain.

    The carried file keeps its current ``read_error`` / link problem and gets
    ``stale_since``: the first instant it was found broken (kept across merges).
    """
    if previous is None:
        return current
    return replace(current, certs=_merge_files(previous.certs, current.certs, now),
                   anchors=_merge_files(previous.anchors, current.anchors, now))


def _link_target(c: CertFile) -> str | None:
    if c.link is None or c.link.target is None:
        return None
    return os.path.normpath(os.path.join(os.path.dirname(c.link.path), c.link.target))


def input_paths(snapshot: Snapshot, sources: SourceSettings) -> frozenset[str]:
    """Every file the snapshot depends on, including the expected ones that are missing."""
    root = snapshot.cert_dir
    paths = {os.path.join(root, name(role)) for role in ROTATING_ROLES
             for name in (current_name, updated_name)}
    paths.update(os.path.join(root, n) for n in SELF_SIGNED_FILES)
    paths.update(snapshot.updated_links)
    for c in snapshot.certs + snapshot.anchors:
        if c.role is Role.SERVED:  # seen on the network, not a file
            continue
        if "#" in c.path:  # embedded in a kubeconfig: that file is an input already
            continue
        paths.update(p for p in (c.path, c.target, c.key_path, _link_target(c)) if p)
    paths.update(h.previous_path for h in snapshot.history if h.previous_path)
    if snapshot.kubelet_config.path:
        paths.add(snapshot.kubelet_config.path)
    if snapshot.kubeconfig is not None and snapshot.kubeconfig.path:
        paths.add(os.path.abspath(snapshot.kubeconfig.path))
    paths.update(os.path.abspath(p) for p in
                 sources.ca_files + sources.watch_paths + sources.watch_recursive)
    return frozenset(paths)


def discovery_inputs(snapshot: Snapshot) -> frozenset[str]:
    """Local paths of the unit, drop-in, env and config files discovery read or looked for."""
    k = snapshot.kubelet
    if k is None:
        return frozenset()
    return frozenset(under(k.host_root, p) for p in k.inputs)


def _existing_dir(path: str) -> str:
    """``path`` if it is a directory, else its nearest existing ancestor."""
    while not os.path.isdir(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def watch_plan(snapshot: Snapshot, sources: SourceSettings) -> tuple[
        frozenset[str], frozenset[str], tuple[str, ...]]:
    """(directories to watch, input paths, directories whose every entry matters).

    Computed together so the daemon walks the inputs and stats the ``--watch`` paths
    once per evaluation. Directories to watch: the parent of every input path (link
    targets outside the cert dir included), the cert dir and each ``--watch`` directory;
    one that does not exist yet is replaced by its nearest existing ancestor, so its
    creation is seen. Whole directories: the cert dir (new generations), ``--watch``
    directories and the unit drop-in and ``--config-dir`` directories discovery read (a
    new drop-in changes the kubelet's settings). Paths are local (under the host root).
    """
    local = relocate(snapshot, lambda p: under(snapshot.kubelet.host_root, p)
                     if snapshot.kubelet is not None else p)
    if snapshot.kubelet is not None and snapshot.kubelet_config.path:
        local = replace(local, kubelet_config=replace(
            local.kubelet_config, path=under(snapshot.kubelet.host_root,
                                             snapshot.kubelet_config.path)))
    discovery = discovery_inputs(snapshot)
    paths = input_paths(local, sources) | discovery
    snapshot = local
    watched_dirs = {os.path.abspath(p) for p in sources.watch_paths if os.path.isdir(p)}
    watched_dirs.update(p for p in discovery if os.path.isdir(p))
    for top in sources.watch_recursive:
        if os.path.isdir(top):
            watched_dirs.update(walk_dirs(os.path.abspath(top)))
    wanted = {os.path.dirname(p) for p in paths - watched_dirs}
    wanted.add(snapshot.cert_dir)
    wanted.update(watched_dirs)
    dirs = frozenset(_existing_dir(d) for d in wanted)
    return dirs, paths, (snapshot.cert_dir, *sorted(watched_dirs))


def watch_dirs(snapshot: Snapshot, sources: SourceSettings) -> frozenset[str]:
    """The existing directories to watch so that a change to any input is seen."""
    return watch_plan(snapshot, sources)[0]
