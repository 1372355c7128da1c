"""Benchmark: upload throughput to Azure Blob (Azurite) beside the local folder, in one run.

Two levels, same machine, same run:
  * storage: appends of Avro-sized chunks to several partition files through
    LocalStorage, BlobStorage (each append one conditional append_block), and the
    spool in front of Blob (accepted = fsynced locally; uploaded = drained to Blob);
  * end to end: Collector.collect() of 100-row frames, flush(), until every row is
    stored (local folder, or Blob through the spool).

Azurite is the official emulator on loopback: its figures show the client-side cost
(HTTP, conditions, spool) and are an upper bound for a real account, where network
round trips dominate. Needs `npm ci` (Azurite). Usage: python bench/bench_blob.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporters.storage import LocalStorage, Storage  # noqa: E402
from exporters.storage.blob import BlobStorage  # noqa: E402
from exporters.storage.spool import SpooledStorage  # noqa: E402
from tests.support.azurite import Azurite  # noqa: E402


def storage_run(storage: Storage, appends: int, chunk: bytes, files: int) -> tuple[float, list[float]]:
    """Append `appends` chunks round-robin over `files` objects; seconds and per-append latencies."""
    sizes = [0] * files
    latencies = []
    start = time.perf_counter()
    for i in range(appends):
        f = i % files
        t = time.perf_counter()
        sizes[f] = storage.append(f"ep/dep/c/2026/11/24/13/bench.{f:04d}.avro", chunk,
                                  expected_size=sizes[f])
        latencies.append(time.perf_counter() - t)
    storage.flush()
    return time.perf_counter() - start, latencies


def fmt(label: str, seconds: float, appends: int, nbytes: int, latencies: list[float] | None) -> str:
    line = (f"{label:<44} {appends / seconds:>10,.0f} appends/s {nbytes / seconds / 1e6:>8.1f} MB/s")
    if latencies:
        lat = sorted(latencies)
        line += (f"   p50 {statistics.median(lat) * 1e3:6.2f} ms"
                 f"  p99 {lat[int(len(lat) * 0.99)] * 1e3:6.2f} ms")
    return line


def end_to_end(destination: str, storage_options: dict, frames: int, rows: int) -> float:
    """Seconds from the first collect() until every row is stored (shutdown drains the spool)."""
    import numpy as np
    import pandas as pd

    import otel_collector_ext as oce

    rng = np.random.default_rng(1)
    pool = [pd.DataFrame({"age": rng.integers(18, 90, rows), "income": rng.random(rows) * 1e5,
                          "region": rng.choice(["n", "s", "e", "w"], rows),
                          "score": rng.random(rows)}) for _ in range(64)]
    oce.configure({"instance_id": "bench", "batch": {"max_queue_size": frames + 10},
                   "exporter": {"type": "avro", "destination": destination,
                                "storage_options": storage_options}})
    c = oce.Collector(name="model_inputs")
    start = time.perf_counter()
    for i in range(frames):
        c.collect(pool[i % len(pool)])
    assert oce.flush(120_000)
    oce.shutdown()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run")
    args = parser.parse_args()
    appends = 300 if args.quick else 2000
    frames = 500 if args.quick else 3000
    chunk = os.urandom(64 * 1024)  # a deflated batch of a few hundred rows is of this order
    files = 8
    work = Path(tempfile.mkdtemp(prefix="bench-blob-"))
    server = Azurite(work / "azurite")
    server.start()
    conn = server.connection_string
    nbytes = appends * len(chunk)
    try:
        print(f"storage level: {appends} appends of {len(chunk) // 1024} KiB over {files} files\n")
        secs, lat = storage_run(LocalStorage(work / "local"), appends, chunk, files)
        print(fmt("local folder (LocalStorage)", secs, appends, nbytes, lat))
        secs, lat = storage_run(LocalStorage(work / "local-fsync", fsync=True), appends, chunk, files)
        print(fmt("local folder, fsync each append", secs, appends, nbytes, lat))
        for mode in ("append", "roll"):
            blob = BlobStorage(f"az://bench-{mode}/direct", connection_string=conn, mode=mode)
            secs, lat = storage_run(blob, appends, chunk, files)
            print(fmt(f"Azurite, {mode} blobs, no spool", secs, appends, nbytes, lat))
            blob.close()
        spooled = SpooledStorage(BlobStorage("az://bench-spool/s", connection_string=conn),
                                 work / "spool")
        start = time.perf_counter()
        secs, lat = storage_run(spooled, appends, chunk, files)
        print(fmt("Azurite via spool: accepted (fsynced)", secs, appends, nbytes, lat))
        assert spooled.drain(300)
        total = time.perf_counter() - start
        print(fmt("Azurite via spool: uploaded (drained)", total, appends, nbytes, None))
        stats = spooled.stats()
        print(f"{'':<44} {stats['upload_requests']} upload requests "
              f"(appends coalesced per object while the uploader lagged)")
        spooled.close()

        rows = 100
        print(f"\nend to end: {frames} frames x {rows} rows, collect() to stored\n")
        secs = end_to_end(str(work / "e2e-local"), {}, frames, rows)
        print(f"{'local folder':<44} {frames / secs:>10,.0f} frames/s {frames * rows / secs:>10,.0f} rows/s")
        secs = end_to_end("az://bench-e2e/data", {"connection_string": conn,
                                                  "spool_dir": str(work / "e2e-spool")}, frames, rows)
        print(f"{'Azurite (append blobs, spool)':<44} {frames / secs:>10,.0f} frames/s "
              f"{frames * rows / secs:>10,.0f} rows/s")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
