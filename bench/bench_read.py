"""Benchmark: rows/s loaded from a partitioned data set, beside raw fastavro on the same files.

In one run it collects a data set through the real pipeline (hourly partitions,
one model_inputs file per hour, a 10-column frame per call), then reads it back:

  * raw fastavro: every file decoded to a list of dicts (the ceiling: no DataFrame);
  * raw fastavro + pandas.DataFrame.from_records: the naive way to a frame;
  * load(): the pandas path (listing, parallel reads, dtype restoration, sort);
  * load() of a quarter of the time range (partition pruning);
  * load(engine="dask").compute() on the threaded scheduler.

Each figure is the best of --repeat runs. The last line is the figures as JSON.
Usage: python bench/bench_read.py [--hours 24] [--calls 40] [--rows 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fastavro
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import otel_collector_ext as oce  # noqa: E402 - after the path setup above

START = datetime(2026, 3, 1, tzinfo=UTC)


def collect(root: Path, hours: int, calls: int, rows: int) -> int:
    """Collect `hours` x `calls` frames of `rows` rows; returns the number of rows."""
    oce.configure({"endpoint": "ep", "deployment": "blue", "instance_id": "bench",
                   "exporter": {"type": "avro", "destination": str(root)},
                   "batch": {"max_queue_size": 1_000_000, "max_export_batch_size": 2048}})
    rng = np.random.default_rng(3)
    c = oce.Collector(name="model_inputs")
    frames = [pd.DataFrame({
        "age": rng.integers(18, 90, rows), "income": rng.random(rows) * 1e5,
        "region": rng.choice(["n", "s", "e", "w"], rows), "member": rng.random(rows) > 0.5,
        "score": rng.random(rows), "visits": rng.integers(0, 50, rows),
        "segment": rng.choice(["a", "b", "c"], rows), "ratio": rng.random(rows),
        "tenure": rng.integers(0, 30, rows), "flag": rng.random(rows) > 0.9,
    }) for _ in range(64)]
    for h in range(hours):
        for i in range(calls):
            when = START + timedelta(hours=h, seconds=i * 3600 / calls)
            c.collect(frames[(h * calls + i) % len(frames)],
                      oce.BasicCorrelationContext(timestamp=when.timestamp()))
    assert oce.flush()
    oce.shutdown()
    return hours * calls * rows


def best(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    """(best seconds, rows) of `repeat` runs."""
    times, n = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t)
    return min(times), n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--calls", type=int, default=40, help="collect() calls per hour")
    parser.add_argument("--rows", type=int, default=100, help="rows per call")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        total = collect(root, args.hours, args.calls, args.rows)
        files = sorted(root.rglob("*.avro"))
        size = sum(f.stat().st_size for f in files)
        print(f"data set: {total:,} rows in {len(files)} files ({size / 1e6:.1f} MB), "
              f"{args.hours} hourly partitions; collected in {time.perf_counter() - t:.1f} s")

        def raw() -> int:
            return sum(len(list(fastavro.reader(io.BytesIO(f.read_bytes())))) for f in files)

        def raw_frame() -> int:
            records = [r for f in files for r in fastavro.reader(io.BytesIO(f.read_bytes()))]
            return len(pd.DataFrame.from_records(records))

        kw = {"endpoint": "ep", "deployment": "blue", "collection": "model_inputs"}
        quarter = (START + timedelta(hours=args.hours * 3 // 8),
                   START + timedelta(hours=args.hours * 5 // 8))

        cases: list[tuple[str, Callable[[], int]]] = [
            ("raw fastavro (records)", raw),
            ("raw fastavro + DataFrame", raw_frame),
            ("load() pandas", lambda: len(oce.load(str(root), **kw))),
            ("load() quarter range", lambda: len(oce.load(str(root), start=quarter[0],
                                                         end=quarter[1], **kw))),
            ("load(engine=dask)", lambda: len(oce.load(str(root), engine="dask", **kw).compute())),
        ]
        results = {}
        print(f"{'reader':<28}{'rows':>10}{'seconds':>10}{'rows/s':>14}")
        for name, fn in cases:
            seconds, n = best(fn, args.repeat)
            results[name] = {"rows": n, "seconds": round(seconds, 4), "rows_per_s": round(n / seconds)}
            print(f"{name:<28}{n:>10,}{seconds:>10.3f}{n / seconds:>14,.0f}")
        share = results["load() pandas"]["rows_per_s"] / results["raw fastavro (records)"]["rows_per_s"]
        print(f"load() pandas / raw fastavro rows/s: {share:.0%}")
        print(json.dumps({"rows": total, "files": len(files), "bytes": size, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
