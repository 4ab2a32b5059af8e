"""Benchmark ``check`` on a kubeadm control-plane node beside ``openssl x509 -enddate``.

The node: a kubelet cert dir (client with history, server, kubelet.crt, CA) and the
fourteen files ``kubeadm certs check-expiration`` lists, RSA-2048 as kubeadm makes them.
In one run:

(1) ``kubelet-cert-agent check --offline --kubeadm-dir ...``, the whole process (wall);
(2) the floor an operator's script pays for the dates alone: one ``openssl x509 -enddate``
    per certificate file, and for each kubeconfig ``grep | base64 -d | openssl`` (openssl
    cannot read a kubeconfig), run one after the other;
(3) in-process ``build_snapshot`` + ``judge`` of the same node, cold (parse caches
    cleared) and warm (as the daemon rebuilds after a change).

(1b) the same ``check`` with ``--no-kubeadm``: what the kubeadm mode adds.

Goals: the whole ``check`` no slower than the openssl loop (which judges nothing: no
chain, no key, no CA, no thresholds), and the kubeadm mode adding at most 100 ms to a
``check``. Reproduce with:

    .venv/bin/python bench/bench_kubeadm.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent import kubeadm, pkigen
from agent.checks import judge
from agent.config import SourceSettings
from agent.model import Policy
from agent.pkigen_kubeadm import build_control_plane
from agent.snapshot import build_snapshot
from bench.bench_inventory import clear_caches
from bench.bench_inventory import timed as inventory_timed

NOW = datetime.now(UTC)
COMMAND = ".venv/bin/python bench/bench_kubeadm.py"
REPEAT = 7
GOAL_RATIO = 1.0
GOAL_ADDED_SECONDS = 0.1


def timed(fn: Callable[[], object], before: Callable[[], None] = lambda: None) -> float:
    """bench_inventory's median timer with this bench's repeat count and no cache clearing
    unless asked."""
    return inventory_timed(fn, before, repeat=REPEAT)


def interleaved(first: Callable[[], object], second: Callable[[], object],
                rounds: int = 3 * REPEAT) -> tuple[float, float]:
    """Medians of ``first`` and ``second`` run alternately, so a busy machine's drift
    weighs on both alike."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        for fn, runs in ((first, a), (second, b)):
            start = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


def control_plane_node(root: Path) -> tuple[SourceSettings, list[str]]:
    """The node, its settings and the files an openssl script would read."""
    node = pkigen.build_node(root / "kubelet", "cp1", NOW)
    plane = build_control_plane(root / "etc" / "kubernetes", "cp1", NOW - timedelta(days=100))
    sources = SourceSettings(cert_dir=node.cert_dir, kubelet_config=None,
                             ca_files=(node.ca_file,), node_name="cp1",
                             kubeadm_dir=plane.root, kubeadm_explicit=True)
    files = [str(node.cert_dir / "kubelet-client-current.pem"),
             str(node.cert_dir / "kubelet-server-current.pem"),
             str(node.cert_dir / "kubelet.crt"), str(node.ca_file)]
    files += [str(plane.path(name)) for name in kubeadm.NAMES]
    return sources, files


def openssl_loop(openssl: str, files: list[str]) -> None:
    for path in files:
        if path.endswith(".conf"):
            script = (f"grep client-certificate-data {path} | awk '{{print $2}}' | "
                      f"base64 -d | {openssl} x509 -enddate -noout")
            subprocess.run(["bash", "-c", script], check=True, capture_output=True)
        else:
            subprocess.run([openssl, "x509", "-enddate", "-noout", "-in", path], check=True,
                           capture_output=True)


def check_process(sources: SourceSettings, *extra: str) -> None:
    script = Path(sys.executable).parent / "kubelet-cert-agent"
    argv = [str(script) if script.exists() else sys.executable, *(
        [] if script.exists() else ["-m", "agent.cli"]),
        "check", "--offline", "--cert-dir", str(sources.cert_dir), "--kubelet-config", "",
        "--ca-file", str(sources.ca_files[0]), "--node-name", "cp1",
        "--kubeadm-dir", str(sources.kubeadm_dir), *extra]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0 or ("CONTROL PLANE" in done.stdout) == bool(extra):
        raise SystemExit(f"check failed ({done.returncode}): {done.stdout}{done.stderr}")


def main() -> int:
    openssl = shutil.which("openssl")
    if openssl is None:
        print("openssl is not installed")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        sources, files = control_plane_node(Path(tmp))
        evaluation = judge(build_snapshot(sources, NOW), NOW, Policy())
        listed = sum(1 for c in evaluation.snapshot.certs if c.name)
        print(f"control-plane node: kubelet (client, server, kubelet.crt, CA) + {listed} "
              f"kubeadm files; {len(files)} files for openssl; status {evaluation.status.name}")
        ours, plain = interleaved(lambda: check_process(sources),
                                  lambda: check_process(sources, "--no-kubeadm"))
        floor = timed(lambda: openssl_loop(openssl, files))
        cold = timed(lambda: judge(build_snapshot(sources, NOW), NOW), before=clear_caches)
        warm = timed(lambda: judge(build_snapshot(sources, NOW), NOW))
    added = ours - plain
    met = ours <= GOAL_RATIO * floor and added <= GOAL_ADDED_SECONDS
    print(f"(1) check --offline --kubeadm-dir, whole process : {ours * 1000:7.1f} ms "
          f"(goal <= {GOAL_RATIO:.0f}x the floor)")
    print(f"(1b) same with --no-kubeadm                      : {plain * 1000:7.1f} ms "
          f"(kubeadm mode adds {added * 1000:.1f} ms; goal <= {GOAL_ADDED_SECONDS * 1000:.0f} ms)")
    print(f"(2) floor: openssl x509 -enddate per file        : {floor * 1000:7.1f} ms "
          f"({floor / len(files) * 1000:.1f} ms a file, dates only)")
    print(f"    ratio                                        : {ours / floor:7.2f}x the floor "
          f"({'met' if met else 'NOT met'})")
    print(f"(3) in process, build_snapshot + judge, cold     : {cold * 1000:7.1f} ms")
    print(f"    warm (daemon rebuild)                        : {warm * 1000:7.1f} ms")
    print(f"(1) and (1b): medians of {3 * REPEAT} alternated runs; others median of {REPEAT}; "
          f"reproduce: {COMMAND}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
