"""What does the agent cost on an idle node?

Writes the demo tree (``kubelet-cert-agent demo``), starts the real ``run`` on it
(inotify, HTTP on 127.0.0.1:0, textfile, offline), and measures:
- time from process start to the first /metrics answer with certificate series;
- CPU over an idle period, from /proc/<pid>/stat utime+stime (goal <= 0.5 % of a core);
- resident memory, VmRSS from /proc/<pid>/status (goal <= 50 MB).

    .venv/bin/python bench/bench_idle.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def first_metrics(url_box: list[str], proc: subprocess.Popen[str]) -> None:
    while proc.poll() is None:
        if url_box:
            try:
                with urllib.request.urlopen(url_box[0] + "/metrics", timeout=2) as r:  # noqa: S310
                    if b"certificate_not_after" in r.read():
                        return
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.002)


def read_events(proc: subprocess.Popen[str], url_box: list[str]) -> None:
    for line in proc.stdout or []:
        record = json.loads(line)
        if record["event"] == "http_listening":
            url_box.append(str(record["url"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryDirectory() as tmp:
        demo, textfile = Path(tmp) / "demo", Path(tmp) / "textfile"
        textfile.mkdir()
        subprocess.run([sys.executable, "-m", "agent.cli", "demo", str(demo)], check=True,
                       capture_output=True, env=env, cwd=REPO)
        argv = [sys.executable, "-m", "agent.cli", "run", "--offline",
                "--listen", "127.0.0.1:0", "--textfile-dir", str(textfile),
                "--cert-dir", str(demo / "pki"), "--kubelet-config", str(demo / "config.yaml"),
                "--ca-file", str(demo / "ca.crt"), "--node-name", "demo-node-1"]
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        url_box: list[str] = []
        threading.Thread(target=read_events, args=(proc, url_box), daemon=True).start()
        try:
            first_metrics(url_box, proc)
            ready = time.monotonic() - started
            time.sleep(1.0)  # let start-up work finish before the idle window
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(args.seconds)
            cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
            rss = rss_mb(proc.pid)
            stop_started = time.monotonic()
            proc.terminate()  # SIGTERM, as systemd sends it
            proc.wait(10)
            stop = time.monotonic() - stop_started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    print(f"idle daemon on the demo tree ({args.seconds:.0f} s idle window):")
    print(f"  start -> first /metrics: {ready * 1000:.0f} ms")
    print(f"  CPU: {cpu * 100:.3f} % of one core (goal <= 0.5 %)")
    print(f"  RSS: {rss:.1f} MB (goal <= 50 MB)")
    print(f"  SIGTERM -> exit: {stop * 1000:.0f} ms (goal <= 1000 ms)")
    print(f"reproduce: .venv/bin/python bench/bench_idle.py --seconds {args.seconds:.0f}")


if __name__ == "__main__":
    main()
