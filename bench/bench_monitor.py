"""Benchmark: `monitor` over a 24-hour data set, from rows and from the ingest profiles.

In one run it writes a data set with the real Avro exporter (hourly partitions,
a few million rows of 8 feature columns, the last quarter of the hours drifted on
two of them; profiles are written beside the files as at ingest, and the ingest
rate is measured with and without them, in turns on 4 hours), then runs `monitor` against a reference
frame of the undrifted distribution, several rounds each:

  * rows: `monitor(...)` reads every row of the window (`load`);
  * profiles: `monitor(..., summaries=ProfileSummaries(...))` merges one profile
    per file and reads rows only for what profiles cannot answer.

It prints the median (and min/max) seconds of each, the speed-up, and how far
the two runs' metric values are apart and whether their verdicts agree. The last
line is the figures as JSON.
Usage: python bench/bench_monitor.py [--hours 24] [--rows-per-hour 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from opentelemetry._logs import LogRecord  # noqa: E402
from opentelemetry.sdk._logs import ReadableLogRecord  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402

from exporters import contract as A  # noqa: E402
from exporters.avro_exporter import AvroLogExporter  # noqa: E402
from otel_collector_ext.monitoring import monitor  # noqa: E402
from otel_collector_ext.monitoring.profiles_source import ProfileSummaries  # noqa: E402

START = datetime(2026, 3, 1, tzinfo=UTC)
CALLS_PER_HOUR = 20


def features(rng: np.random.Generator, n: int, drifted: bool) -> pd.DataFrame:
    return pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "income": rng.lognormal(10.5 + (0.3 if drifted else 0.0), 0.5, n),
        "score": rng.normal(0, 1, n),
        "ratio": rng.beta(4, 2, n) if drifted else rng.random(n),
        "visits": rng.poisson(5, n),
        "tenure": rng.integers(0, 30, n),
        "region": rng.choice(["n", "s", "e", "w"], n),
        "segment": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
    })


def records(frames: list[pd.DataFrame], hour: int) -> list[ReadableLogRecord]:
    resource = Resource.create({A.INSTANCE_ID: "bench"})
    base = int((START + timedelta(hours=hour)).timestamp() * 1e9)
    step = 3600 * 10**9 // len(frames)
    return [ReadableLogRecord(LogRecord(
        timestamp=base + i * step, body=frame,
        attributes={A.COLLECTION: "model_inputs", A.ENDPOINT: "ep", A.DEPLOYMENT: "blue",
                    A.CORRELATION_ID: f"h{hour}-{i}", A.PAYLOAD_KIND: A.KIND_DATAFRAME}),
        resource=resource) for i, frame in enumerate(frames)]


def write(root: Path, hours: int, rows_per_hour: int, profiles: bool) -> float:
    """Write the data set; returns rows per second of export (conversion, profiles, files)."""
    rng = np.random.default_rng(1)
    exporter = AvroLogExporter(str(root), instance_id="bench", profiles=profiles)
    per_call = rows_per_hour // CALLS_PER_HOUR
    busy = 0.0
    for hour in range(hours):
        drifted = hour >= hours * 3 // 4
        frames = [features(rng, per_call, drifted) for _ in range(CALLS_PER_HOUR)]
        batch = records(frames, hour)
        started = time.perf_counter()
        exporter.export(batch)
        busy += time.perf_counter() - started
    started = time.perf_counter()
    exporter.shutdown()
    busy += time.perf_counter() - started
    return hours * per_call * CALLS_PER_HOUR / busy


def timed(fn):  # noqa: ANN001, ANN201 - bench helper
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--rows-per-hour", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        # The ingest cost of profiles: the same 4 hours written with and without, in turns.
        rates: dict[bool, list[float]] = {True: [], False: []}
        for turn in range(2 * args.rounds):
            with_profiles = turn % 2 == 1
            rates[with_profiles].append(write(Path(tmp) / f"ingest-{turn}", min(args.hours, 4),
                                              args.rows_per_hour, profiles=with_profiles))
        rate, rate_plain = max(rates[True]), max(rates[False])
        write(data, args.hours, args.rows_per_hour, profiles=True)
        rows = args.hours * (args.rows_per_hour // CALLS_PER_HOUR) * CALLS_PER_HOUR
        files = list(data.rglob("*.avro"))
        avro = sum(p.stat().st_size for p in files)
        profile_bytes = sum(p.stat().st_size for p in data.rglob("*.profile.json"))
        reference = features(np.random.default_rng(2), 50_000, drifted=False)
        window = {"start": START, "end": START + timedelta(hours=args.hours)}
        common = {"endpoint": "ep", "deployment": "blue", "collections": ["model_inputs"],
                  "reference": {"model_inputs": reference}, **window}
        from_rows, from_profiles = [], []
        for _ in range(args.rounds):
            t, by_rows = timed(lambda: monitor(str(data), **common))
            from_rows.append(t)
            source = ProfileSummaries(str(data), "ep", "blue")
            t, by_profiles = timed(lambda s=source: monitor(str(data), summaries=s, **common))
            from_profiles.append(t)
            used = source.stats()
            source.close()
    pairs = {(s.signal, s.feature, s.metric): s for s in by_rows.signals}
    gaps = [abs(s.value - pairs[k].value) for s in by_profiles.signals
            if (k := (s.signal, s.feature, s.metric)) in pairs
            and s.value is not None and pairs[k].value is not None]
    agree = all(pairs[(s.signal, s.feature, s.metric)].status == s.status
                for s in by_profiles.signals if (s.signal, s.feature, s.metric) in pairs)
    figures = {
        "rows": rows, "hours": args.hours, "files": len(files),
        "avro_bytes": avro, "profile_bytes": profile_bytes,
        "ingest_rows_per_s": round(rate), "ingest_rows_per_s_without_profiles": round(rate_plain),
        "monitor_from_rows_s": [round(t, 2) for t in from_rows],
        "monitor_from_profiles_s": [round(t, 2) for t in from_profiles],
        "median_rows_s": round(statistics.median(from_rows), 2),
        "median_profiles_s": round(statistics.median(from_profiles), 2),
        "speedup": round(statistics.median(from_rows) / statistics.median(from_profiles), 1),
        "max_metric_gap": round(max(gaps, default=0.0), 4), "verdicts_agree": agree,
        "verdict_rows": by_rows.verdict(), "verdict_profiles": by_profiles.verdict(),
        "profile_use": used,
    }
    print(f"{rows:,} rows over {args.hours} h: {avro / 1e6:.0f} MB of Avro, "
          f"{profile_bytes / 1e3:.0f} kB of profiles")
    print(f"ingest (best of {args.rounds}): {rate:,.0f} rows/s with profiles, "
          f"{rate_plain:,.0f} without ({rate / rate_plain:.0%})")
    print(f"monitor from rows:     median {figures['median_rows_s']} s "
          f"(min {min(from_rows):.2f}, max {max(from_rows):.2f})")
    print(f"monitor from profiles: median {figures['median_profiles_s']} s "
          f"(min {min(from_profiles):.2f}, max {max(from_profiles):.2f}); "
          f"{figures['speedup']}x faster")
    for s in by_profiles.signals:
        r = pairs.get((s.signal, s.feature, s.metric))
        if r is not None and (r.status != s.status or (r.value is not None and s.value is not None
                                                        and abs(r.value - s.value) > 0.01)):
            print(f"  {s.feature} {s.metric}: rows {r.value} {r.status}, profiles {s.value} "
                  f"{s.status}")
    print(f"largest metric difference {figures['max_metric_gap']}; verdicts agree: {agree}")
    print(json.dumps(figures, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
