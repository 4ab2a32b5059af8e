"""Benchmark the inventory (sources -> snapshot). A script, not a test: prints figures.

(1) cold ``build_snapshot`` of a kubelet cert dir with 0, 1,000 and 10,000 historical
    generations plus the current client/server pairs and kubelet.crt (goal < 0.2 s, flat
    in history size);
(2) 10,000 distinct certificates in one ``--watch`` directory: total, per file, beside two
    floors measured on the same files in the same run: the lazy floor (read +
    ``x509.load_pem_x509_certificate``, which decodes nothing) and the fair floor (read +
    the same fields the agent computes at read time, straight from cryptography).

"Cold" means the in-process parse caches are cleared before every timed run (the page
cache stays warm); "warm" keeps them, as the daemon does when it rebuilds after a
change. Reproduce with:

    .venv/bin/python bench/bench_inventory.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

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


def timed(fn: Callable[[], object], before: Callable[[], None] = clear_caches,
          repeat: int = REPEAT) -> float:
    """Median of ``repeat`` runs, ``before`` (cache clearing) not timed."""
    runs = []
    for _ in range(repeat):
        before()
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def cpu_medians(fns: list[Callable[[], object]]) -> list[float]:
    """Median CPU time (this process, user + system) of each of ``fns``, run interleaved
    REPEAT times with the parse caches cleared before each: on a shared machine CPU time
    is stable where wall time is not, and interleaving exposes every function to the same
    conditions, so the ratios between them hold."""
    runs: list[list[float]] = [[] for _ in fns]
    for _ in range(REPEAT):
        for fn, out in zip(fns, runs, strict=True):
            clear_caches()
            start = time.process_time()
            fn()
            out.append(time.process_time() - start)
    return [statistics.median(r) for r in runs]


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


def lazy_floor(paths: list[Path]) -> None:
    """Read + parse alone: cryptography decodes names, keys and extensions only on access."""
    for p in paths:
        x509.load_pem_x509_certificate(p.read_bytes())


def fair_floor(paths: list[Path]) -> None:
    """The fields the agent computes at read time, straight from cryptography, no agent code:
    subject and issuer (RFC 4514), serial, SHA-256 fingerprint, validity, self-issued test."""
    sha256 = hashes.SHA256()
    for p in paths:
        cert = x509.load_pem_x509_certificate(p.read_bytes())
        subject_text, issuer_text = cert.subject.rfc4514_string(), cert.issuer.rfc4514_string()
        format(cert.serial_number, "x")
        cert.fingerprint(sha256).hex()
        cert.not_valid_before_utc, cert.not_valid_after_utc  # noqa: B018
        _ = subject_text == issuer_text


def bench_watch(tmp: Path, count: int = 10_000) -> None:
    print(f"(2) {count} certificates under one --watch directory (cold: parse caches cleared; "
          f"CPU time, median of {REPEAT} interleaved runs)")
    paths = distinct_certificates(tmp / "watch", count)
    source = SourceSettings(cert_dir=tmp / "empty", kubelet_config=None,
                            watch_paths=(tmp / "watch",))
    snap = build_snapshot(source, NOW)
    assert sum(1 for c in snap.certs if c.leaf is not None) == count
    ours, lazy, fair, with_details = cpu_medians([
        lambda: build_snapshot(source, NOW), lambda: lazy_floor(paths),
        lambda: fair_floor(paths),
        lambda: [c.leaf.details for c in build_snapshot(source, NOW).certs if c.leaf]])
    first_use = with_details - ours

    def per(seconds: float) -> str:
        return f"{seconds:6.3f} s  {seconds / count * 1e6:6.1f} us/file"

    print(f"    build_snapshot   : {per(ours)}")
    print(f"    lazy floor       : {per(lazy)}  (read + x509.load_pem_x509_certificate)")
    print(f"    fair floor       : {per(fair)}  (read + the same fields from cryptography)")
    print(f"    ratio lazy       : {ours / lazy:5.2f}x the lazy floor (goal <= 2.5x)")
    print(f"    ratio fair       : {ours / fair:5.2f}x the fair floor (goal <= 1.3x)")
    print(f"    details on use   : {per(first_use)}  (SANs, key usages, key, SPKI of every "
          "file, derived from the DER once; only JSON output and kubelet checks ask)")
    warm = timed(lambda: build_snapshot(source, NOW), before=lambda: None)
    print(f"    warm rebuild     : {warm:6.3f} s  (parse cache kept, as in the daemon)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certificates", type=int, default=10_000)
    parser.add_argument("--skip-history", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_history:
            bench_history(Path(tmp))
        bench_watch(Path(tmp), args.certificates)
    print(f"reproduce: {COMMAND}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
