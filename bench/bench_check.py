"""Start-up cost of the one-shot ``check --offline`` on the demo node, against its floor.

The floor is ``python -c "from cryptography import x509"``: an interpreter that can read a
certificate at all. Both run as fresh processes with the bytecode the packages ship (the
agent's sources are compiled with ``compileall`` first, as build-venv.sh does), ``--runs``
times each, interleaved; the medians are printed beside the goal (check <= 1.5x the floor).
``-X importtime`` then shows what ``agent.model`` costs at import and the agent's heaviest
imports beyond the floor's.

    .venv/bin/python bench/bench_check.py [--runs 15]
"""

from __future__ import annotations

import argparse
import compileall
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL_RATIO = 1.5


def wall(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=REPO, capture_output=True, check=False)
    return time.perf_counter() - start


def import_times(argv: list[str], env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """module -> (self, cumulative) microseconds, from ``python -X importtime``."""
    result = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], env=env, cwd=REPO,
                            capture_output=True, text=True, check=False)
    found = {}
    for line in result.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            found[m.group(4)] = (int(m.group(1)), int(m.group(2)))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    compileall.compile_dir(REPO / "agent", quiet=1)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo"
        subprocess.run([sys.executable, "-m", "agent.cli", "demo", str(demo)], env=env,
                       cwd=REPO, check=True, capture_output=True)
        check = [sys.executable, "-m", "agent.cli", "check", "--offline",
                 "--cert-dir", str(demo / "pki"), "--kubelet-config", str(demo / "config.yaml"),
                 "--ca-file", str(demo / "ca.crt"), "--node-name", "demo-node-1"]
        floor = [sys.executable, "-c", "from cryptography import x509"]
        for argv in (check, floor):  # warm the page cache and the bytecode
            wall(argv, env)
        runs: dict[str, list[float]] = {"check": [], "floor": []}
        for _ in range(args.runs):
            runs["check"].append(wall(check, env))
            runs["floor"].append(wall(floor, env))
        ours, base = statistics.median(runs["check"]), statistics.median(runs["floor"])
        agent_imports = import_times(check, env)
        floor_imports = import_times(floor, env)
    print(f"check --offline on the demo node, median of {args.runs} fresh processes:")
    print(f"  check --offline            : {ours * 1000:6.0f} ms")
    print(f"  floor (from cryptography import x509): {base * 1000:6.0f} ms")
    verdict = "OK" if ours <= GOAL_RATIO * base else "ABOVE GOAL"
    print(f"  ratio                      : {ours / base:5.2f}x the floor "
          f"(goal <= {GOAL_RATIO}x): {verdict}")
    model = agent_imports.get("agent.model", (0, 0))
    print(f"  agent.model at import      : {model[0] / 1000:5.1f} ms self, "
          f"{model[1] / 1000:5.1f} ms with what it imports beyond earlier modules")
    extra = sorted(((own, name) for name, (own, _) in agent_imports.items()
                    if name not in floor_imports), reverse=True)[:8]
    print("  heaviest imports beyond the floor (self time): " +
          ", ".join(f"{name} {own / 1000:.1f} ms" for own, name in extra))
    print(f"reproduce: .venv/bin/python bench/bench_check.py --runs {args.runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
