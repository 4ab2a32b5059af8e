"""What does the agent cost on an idle node, and on one with 10,000 certificates?

Writes the demo tree (``kubelet-cert-agent demo``), optionally ``--certificates N``
distinct certificates in one directory given to ``--watch`` (bench_inventory's
generator), starts the real ``run`` on it (inotify, HTTP on 127.0.0.1:0, textfile,
offline), and measures:
- time from process start to the first /metrics answer with certificate series, and to
  the first complete one (``kubelet_cert_agent_inventory_complete 1``; goal <= 3 s);
- /metrics body size, and bytes per certificate (goal <= 400);
- keep-alive scrape latency over ``--scrapes`` requests (goal p99 <= 5 ms, no outlier);
- CPU over an idle period, from /proc/<pid>/stat utime+stime (goal <= 0.05 % of a core);
- resident memory, VmRSS from /proc/<pid>/status (goal <= 50 MB on the demo tree,
  <= 80 MB with 10,000 certificates).

    .venv/bin/python bench/bench_idle.py [--seconds 60] [--certificates 10000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TICKS = os.sysconf("SC_CLK_TCK")
COMPLETE = b"\nkubelet_cert_agent_inventory_complete 1"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def first_metrics(url_box: list[str], proc: subprocess.Popen[str], marker: bytes) -> bytes:
    """The first /metrics body holding ``marker`` (polled every 2 ms)."""
    while proc.poll() is None:
        if url_box:
            try:
                with urllib.request.urlopen(url_box[0] + "/metrics", timeout=10) as r:  # noqa: S310
                    body = r.read()
                    if marker in body:
                        return body
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.002)
    raise SystemExit("the agent exited before answering")


PROMETHEUS_HEADERS = {  # what Prometheus sends on every scrape
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
              "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip"}


def scrape_latencies(url: str, count: int, headers: dict[str, str]) -> list[float]:
    """Milliseconds per GET /metrics over one keep-alive connection, as Prometheus does."""
    split = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname or "", split.port, timeout=30)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        response.read()
        times.append((time.perf_counter() - start) * 1000)
    conn.close()
    return sorted(times)


def evaluations(url: str) -> int:
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:  # noqa: S310
        found = re.search(rb"^kubelet_cert_agent_evaluations_total (\S+)$", r.read(),
                          re.MULTILINE)
    return int(float(found.group(1))) if found else -1


def settled(url: str, quiet: float = 5.0, limit: float = 120.0) -> None:
    """Wait until start-up work is over: evaluations_total unchanged for ``quiet`` s (the
    daemon re-evaluates once after it has set up its watches)."""
    pattern = re.compile(rb"^kubelet_cert_agent_evaluations_total (\S+)$", re.MULTILINE)
    last, since, deadline = b"", time.monotonic(), time.monotonic() + limit
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "/metrics", timeout=30) as r:  # noqa: S310
            found = pattern.search(r.read())
        count = found.group(1) if found else b""
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.5)


def read_events(proc: subprocess.Popen[str], url_box: list[str]) -> None:
    for line in proc.stdout or []:
        record = json.loads(line)
        if record["event"] == "http_listening":
            url_box.append(str(record["url"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--certificates", type=int, default=0,
                        help="distinct certificates in a --watch directory (default: none)")
    parser.add_argument("--scrapes", type=int, default=1000)
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
        if args.certificates:
            from bench.bench_inventory import distinct_certificates

            distinct_certificates(Path(tmp) / "watch", args.certificates)
            argv += ["--watch", str(Path(tmp) / "watch")]
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        url_box: list[str] = []
        threading.Thread(target=read_events, args=(proc, url_box), daemon=True).start()
        try:
            first_metrics(url_box, proc, b"certificate_not_after")
            ready = time.monotonic() - started
            body = first_metrics(url_box, proc, COMPLETE)
            complete = time.monotonic() - started
            settled(url_box[0])  # let start-up work finish before the idle window
            rss_start = rss_mb(proc.pid)
            evals0 = evaluations(url_box[0])
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(args.seconds)
            cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0)
            print(f"  evaluations during the idle window: {evaluations(url_box[0]) - evals0}")
            scrapes = scrape_latencies(url_box[0], args.scrapes, PROMETHEUS_HEADERS)
            plain = scrape_latencies(url_box[0], args.scrapes, {})
            rss = max(rss_start, rss_mb(proc.pid))
            stop_started = time.monotonic()
            proc.terminate()  # SIGTERM, as systemd sends it
            proc.wait(10)
            stop = time.monotonic() - stop_started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    report(args, ready=ready, complete=complete, body=body, scrapes=scrapes, cpu=cpu, rss=rss,
           stop=stop)
    p50, p99 = plain[len(plain) // 2], plain[min(len(plain) - 1, len(plain) * 99 // 100)]
    print(f"  same, text format: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
          f"max {plain[-1]:.2f} ms")


def report(args: argparse.Namespace, *, ready: float, complete: float, body: bytes,
           scrapes: list[float], cpu: float, rss: float, stop: float) -> None:
    certs = body.count(b"kubelet_cert_agent_certificate_info{")
    p50, p99 = scrapes[len(scrapes) // 2], scrapes[min(len(scrapes) - 1, len(scrapes) * 99 // 100)]
    rss_goal = 80 if args.certificates else 50
    print(f"daemon on the demo tree + {args.certificates} watched certificates "
          f"({args.seconds:.0f} s idle window):")
    print(f"  start -> first /metrics: {ready * 1000:.0f} ms; -> complete inventory: "
          f"{complete * 1000:.0f} ms (goal <= 3000 ms)")
    print(f"  /metrics body: {len(body)} bytes, {certs} certificates, "
          f"{len(body) / max(1, certs):.0f} bytes per certificate (goal <= 400)")
    print(f"  keep-alive scrape, Prometheus' Accept (OpenMetrics) x{len(scrapes)}: "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {scrapes[-1]:.2f} ms "
          "(goal p99 <= 5 ms, no multi-second outlier)")
    print(f"  CPU idle: {cpu * 100:.3f} % of one core (goal <= 0.05 %)")
    print(f"  RSS: {rss:.1f} MB (goal <= {rss_goal} MB)")
    print(f"  SIGTERM -> exit: {stop * 1000:.0f} ms (goal <= 1000 ms)")
    print(f"reproduce: .venv/bin/python bench/bench_idle.py --seconds {args.seconds:.0f} "
          f"--certificates {args.certificates} --scrapes {args.scrapes}")


if __name__ == "__main__":
    main()
