"""What does the serving-port probe cost?

A real TLS server on 127.0.0.1 (in a separate process, like the kubelet) serves a
kubelet-style chain (EC P-256 leaf, RSA-2048 cluster CA); the agent's ``probe_once``
(TCP connect, TLS handshake without a client certificate, read the served chain, parse
it) runs N times. Printed: wall time per probe (p50/p99), the agent's CPU per probe
(``time.process_time``), and beside them the floor (a bare TCP connect + close) and the
daemon's hourly cost at the minimum rate (one probe per 5 minutes) and at one evaluation
per second.

    .venv/bin/python bench/bench_probe.py [--probes 500]
"""

from __future__ import annotations

import argparse
import multiprocessing
import socket
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import pkigen
from agent.model import ProbeOutcome
from agent.sources.probe import probe_once

GOAL_MS = 10.0  # wall per probe on loopback


def _serve(pem: bytes, ready: multiprocessing.Queue[int]) -> None:  # type: ignore[type-arg]
    """The stand-in kubelet, in its own process: its handshake CPU is not the agent's."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from cryptography.x509 import load_pem_x509_certificate

    from tests.tlsservers import TlsServer

    key = load_pem_private_key(pem, None)
    server = TlsServer(pkigen.Issued(cert=load_pem_x509_certificate(pem), key=key))  # type: ignore[arg-type]
    ready.put(server.port)
    time.sleep(3600)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--probes", type=int, default=500)
    args = p.parse_args()
    now = datetime.now(UTC)
    ca = pkigen.cluster_ca(now)
    leaf = pkigen.kubelet_server(ca, "bench-node", now - timedelta(days=1))
    ready: multiprocessing.Queue[int] = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_serve, args=(leaf.cert_pem() + leaf.key_pem(), ready),
                                   daemon=True)
    proc.start()
    port = ready.get(timeout=30)
    try:
        for _ in range(10):  # warm-up (imports, caches)
            probe_once("127.0.0.1", port, now)
        walls, cpus = [], []
        for _ in range(args.probes):
            c0, w0 = time.process_time(), time.perf_counter()
            result = probe_once("127.0.0.1", port, now)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
            assert result.outcome is ProbeOutcome.SERVED, result.detail
        floor = []
        for _ in range(args.probes):
            w0 = time.perf_counter()
            socket.create_connection(("127.0.0.1", port), timeout=3).close()
            floor.append(time.perf_counter() - w0)
    finally:
        proc.terminate()
    walls.sort()
    p50, p99 = walls[len(walls) // 2] * 1e3, walls[int(len(walls) * 0.99) - 1] * 1e3
    cpu = statistics.mean(cpus) * 1e3
    print(f"{args.probes} probes of a TLS server on 127.0.0.1 (EC P-256 leaf):")
    print(f"  wall per probe: p50 {p50:.2f} ms, p99 {p99:.2f} ms (goal <= {GOAL_MS:g} ms); "
          f"floor (TCP connect + close) p50 {sorted(floor)[len(floor) // 2] * 1e3:.2f} ms")
    print(f"  agent CPU per probe: {cpu:.2f} ms; at one probe per 5 min: "
          f"{cpu * 12 / 1e3:.3f} s CPU per hour ({cpu * 12 / 3600 / 10:.5f} % of a core); "
          f"at one evaluation per second: {cpu / 10:.2f} % of a core")
    print("reproduce: .venv/bin/python bench/bench_probe.py")
    return 0 if p50 <= GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
