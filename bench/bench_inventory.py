"""Benchmark the inventory (sources -> snapshot). A script, not a test: prints figures.

(1) cold ``build_snapshot`` of a kubelet cert dir with 0, 1,000 and 10,000 historical
    generations plus the current client/server pairs and kubelet.crt (goal < 0.2 s, flat
    in history size);
(2) 10,000 distinct certificates in one ``--watch`` directory: total, per file, and the
    floor (read + ``x509.load_pem_x509_certificate`` of the same files in the same run).

"Cold" means the in-process parse caches are cleared before every timed run (the page
cache stays warm); "warm" keeps them, as the daemon does when it rebuilds after a
change. Reproduce with:

    .venv/bin/python bench/bench_inventory.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent import pkigen
from agent.config import SourceSettings
from agent.snapshot import build_snapshot
from agent.sources import certdir, certfile, x509info

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
COMMAND = ".venv/bin/python bench/bench_inventory.py"
REPEAT = 5


def clear_caches() -> None:
    certdir.clear_cache()
    certfile.clear_cache()
    x509info.clear_cache()


def timed(fn: Callable[[], object], before: Callable[[], None] = clear_caches) -> float:
    """Median of REPEAT runs, ``before`` (cache clearing) not timed."""
    runs = []
    for _ in range(REPEAT):
        before()
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def node_with_history(root: Path, history: int) -> SourceSettings:
    pki = pkigen.build_node(root, "node1", NOW)
    junk = pki.client.cert_pem() + pki.client.key_pem()  # realistic size, never parsed
    start = NOW - timedelta(days=5 * 365)
    for i in range(history):
        name = (start + timedelta(minutes=i)).strftime(pkigen.TIMESTAMP_FORMAT)
        (pki.cert_dir / f"kubelet-client-{name}.pem").write_bytes(junk)
    return SourceSettings(cert_dir=pki.cert_dir, kubelet_config=None,
                          ca_files=(pki.ca_file,), node_name="node1")


def bench_history(tmp: Path) -> None:
    print("(1) cold build_snapshot of a cert dir (client+server+kubelet.crt, CA anchor)")
    for history in (0, 1_000, 10_000):
        source = node_with_history(tmp / f"h{history}", history)
        cold = timed(lambda s=source: build_snapshot(s, NOW))  # type: ignore[misc]
        warm = timed(lambda s=source: build_snapshot(s, NOW), before=lambda: None)  # type: ignore[misc]
        print(f"    history files {history:>6}: cold {cold * 1000:6.1f} ms, "
              f"warm {warm * 1000:6.1f} ms  (median of {REPEAT})")


def distinct_certificates(directory: Path, count: int) -> list[Path]:
    """``count`` different certificates (one reused key, distinct serials and names)."""
    directory.mkdir()
    ca = pkigen.cluster_ca(NOW)
    key = pkigen.new_key("ec")
    paths = []
    for i in range(count):
        issued = pkigen.issue(f"watched-{i}", issuer=ca, key=key, usage="server",
                              dns_names=(f"host-{i}.example",), not_before=NOW,
                              not_after=NOW + timedelta(days=90), serial=i + 1)
        path = directory / f"cert-{i:05d}.crt"
        path.write_bytes(issued.cert_pem())
        paths.append(path)
    return paths


def bench_watch(tmp: Path, count: int = 10_000) -> None:
    print(f"(2) {count} certificates under one --watch directory")
    paths = distinct_certificates(tmp / "watch", count)
    source = SourceSettings(cert_dir=tmp / "empty", kubelet_config=None,
                            watch_paths=(tmp / "watch",))
    snap = build_snapshot(source, NOW)
    assert sum(1 for c in snap.certs if c.leaf is not None) == count

    def floor() -> None:
        for p in paths:
            x509.load_pem_x509_certificate(p.read_bytes())

    ours = timed(lambda: build_snapshot(source, NOW))
    base = timed(floor)
    print(f"    build_snapshot : {ours:6.3f} s  {ours / count * 1e6:6.1f} us/file")
    print(f"    floor          : {base:6.3f} s  {base / count * 1e6:6.1f} us/file "
          "(read + x509.load_pem_x509_certificate)")
    print(f"    ratio          : {ours / base:5.2f}x the floor (goal <= 1.5x)")
    warm = timed(lambda: build_snapshot(source, NOW), before=lambda: None)
    print(f"    warm rebuild   : {warm:6.3f} s  (parse cache kept, as in the daemon)")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        bench_history(Path(tmp))
        bench_watch(Path(tmp))
    print(f"reproduce: {COMMAND}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
