"""Benchmark: records/s through `serve` over OTLP gRPC and HTTP, beside the in-process Avro path.

One run, same machine, same workload (one-row frames of ten mixed-dtype columns, as a
model's inputs usually are):

  * body encoding: what one record's body costs the scoring process inside the released
    OTLP encoder, in the naive map form ({column: [value]}, after df.to_dict) and in our
    columnar form, and what decoding it costs the collector;
  * end to end: a scoring process collects N frames as fast as it can and flushes; the
    figure is N / (seconds from the first collect() until every record is stored), with
    the scoring process's own CPU per record beside it. In-process, the scoring process
    converts and writes; over OTLP it only encodes and sends, and `serve` (another
    process) converts and writes.

Usage: python bench/bench_otlp.py [--records N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from opentelemetry._logs import LogRecord  # noqa: E402
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs  # noqa: E402
from opentelemetry.sdk._logs import ReadableLogRecord  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402

from exporters.otlp_body import encode_body  # noqa: E402
from otel_collector_ext import attributes as A  # noqa: E402
from otel_collector_ext.receiver.decode import decode_request, parse_protobuf  # noqa: E402
from tests.conftest import python_env  # noqa: E402
from tests.service_process import ServeProcess  # noqa: E402

FRAME_CODE = """
import numpy as np, pandas as pd
CATS = pd.CategoricalDtype(["low", "mid", "high"])
def frame(i):
    return pd.DataFrame({
        "age": [i % 90], "income": [1000.0 + i], "score": [i / 7], "ratio": [0.5],
        "name": [f"user{i % 100}"], "city": ["Berlin"], "segment": pd.Categorical.from_codes([i % 3], dtype=CATS),
        "seen": [pd.Timestamp(1_767_225_600 + i, unit="s", tz="UTC")], "flag": [i % 2 == 0],
        "count": [i],
    })
"""
exec(FRAME_CODE)  # noqa: S102 - the same frame builder runs in the scoring processes

SENDER = FRAME_CODE + """
import json, resource, sys, time
import otel_collector_ext as oce
mode, target, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "avro":
    exporter = {"type": "avro", "destination": target}
else:
    exporter = {"type": "otlp", "endpoint": target, "timeout": 60,
                "protocol": "grpc" if mode == "grpc" else "http/protobuf"}
oce.configure({"endpoint": "ep", "deployment": mode, "exporter": exporter,
               "batch": {"max_queue_size": 1_000_000, "max_export_batch_size": 1024,
                         "schedule_delay_millis": 200}})
frames = [frame(i) for i in range(count)]
collector = oce.Collector(name="inputs")
cpu0 = resource.getrusage(resource.RUSAGE_SELF)
start = time.time()
for f in frames:
    collector.collect(f)
collected = time.time()
ok = oce.flush(600_000)
done = time.time()
cpu1 = resource.getrusage(resource.RUSAGE_SELF)
stats = oce.stats()
oce.shutdown()
cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
print(json.dumps({"start": start, "collected": collected, "done": done, "ok": ok, "cpu": cpu,
                  "dropped": sum(v for k, v in stats.items() if k.startswith("records.dropped"))}))
"""

RESOURCE = Resource({"service.name": "bench", A.INSTANCE_ID: "bench"})
ATTRS = {A.COLLECTION: "inputs", A.CORRELATION_ID: "0f8b3c1e-5d7a-4b8e-9a61-2c3d4e5f6a7b",
         A.ENDPOINT: "ep", A.DEPLOYMENT: "dep", A.PAYLOAD_KIND: A.KIND_DATAFRAME}


def body_costs(n: int) -> list[tuple[str, float, float, int]]:
    """(form, scoring-side µs per record, collector-side decode µs per record, bytes)."""
    frames = [frame(i) for i in range(n)]  # noqa: F821 - defined by FRAME_CODE
    out = []
    for form, make in (
        ("map form: to_dict + {col: [v]}", lambda f: f.to_dict("list")),
        ("columnar form (encode_body)", lambda f: encode_body(f, A.KIND_DATAFRAME)),
    ):
        start = time.perf_counter()
        records = [ReadableLogRecord(LogRecord(timestamp=1, body=_plain(make(f)), attributes=ATTRS,
                                               event_name="ml.inference.inputs"), RESOURCE)
                   for f in frames]
        data = encode_logs(records).SerializeToString()
        encode_us = (time.perf_counter() - start) / n * 1e6
        start = time.perf_counter()
        decode_request(parse_protobuf(data, max_depth=32), max_depth=32, max_records=n)
        decode_us = (time.perf_counter() - start) / n * 1e6
        out.append((form, encode_us, decode_us, len(data) // n))
    return out


def _plain(body: object) -> object:
    # The map form needs plain values (the released encoder rejects numpy and pandas scalars).
    if isinstance(body, dict) and not body.get("otel_collector_ext.columnar"):
        return {str(k): [v.isoformat() if hasattr(v, "isoformat") else
                         (v.item() if isinstance(v, np.generic) else v) for v in vs]
                for k, vs in body.items()}
    return body


def written(serve: ServeProcess, deployment_total: int) -> bool:
    exporters = serve.health_detail()["exporters"]["avro"]
    return exporters.get("exporter.records.written{collection=inputs}", 0) >= deployment_total


def end_to_end(mode: str, target: str, count: int, serve: ServeProcess | None,
               already: int) -> dict[str, float]:
    run = subprocess.run([sys.executable, "-c", SENDER, mode, target, str(count)], cwd=ROOT,
                         env=python_env(), capture_output=True, text=True, timeout=1200)
    if run.returncode != 0:
        raise SystemExit(f"{mode} sender failed:\n{run.stderr}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    stored = result["done"]
    if serve is not None:  # stored when serve has written them, not when they were sent
        deadline = time.time() + 600
        while not written(serve, already + count):
            if time.time() > deadline:
                raise SystemExit(f"{mode}: serve did not store every record")
            time.sleep(0.02)  # polling a condition, with a deadline
        stored = time.time()
    seconds = stored - result["start"]
    return {"records_per_s": count / seconds, "seconds": seconds,
            "cpu_us": result["cpu"] / count * 1e6,
            "collect_us": (result["collected"] - result["start"]) / count * 1e6,
            "dropped": result["dropped"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="5,000 records")
    args = parser.parse_args()
    count = 5_000 if args.quick else args.records

    print(f"Body encoding, one-row frames of 10 mixed-dtype columns ({min(count, 5000)} records):")
    print(f"  {'form':<36} {'scoring µs/rec':>15} {'collector µs/rec':>17} {'bytes/rec':>10}")
    for form, enc, dec, size in body_costs(min(count, 5000)):
        print(f"  {form:<36} {enc:>15.1f} {dec:>17.1f} {size:>10}")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        results = {"in-process avro": end_to_end("avro", str(workdir / "inproc"), count, None, 0)}
        serve = ServeProcess(workdir, workdir / "served",
                             receiver={"max_records_per_request": 8192},
                             batch={"max_queue_size": 1_000_000, "send_batch_size": 4096,
                                    "timeout": "200ms"})
        try:
            serve.wait_ready()
            results["OTLP gRPC → serve"] = end_to_end(
                "grpc", f"http://127.0.0.1:{serve.grpc[1]}", count, serve, 0)
            results["OTLP HTTP → serve"] = end_to_end(
                "http", f"http://127.0.0.1:{serve.http[1]}", count, serve, count)
        finally:
            serve.stop()
    print(f"\nEnd to end, {count:,} records (one-row frames), first collect() to stored:")
    print(f"  {'path':<22} {'records/s':>10} {'seconds':>8} {'scoring CPU µs/rec':>19} "
          f"{'collect() µs':>13} {'dropped':>8}")
    for path, r in results.items():
        print(f"  {path:<22} {r['records_per_s']:>10,.0f} {r['seconds']:>8.2f} "
              f"{r['cpu_us']:>19.1f} {r['collect_us']:>13.1f} {r['dropped']:>8}")
    print("\nscoring CPU: the scoring process's CPU per record for collect + batching + "
          "conversion or encoding + sending. Over OTLP, conversion and storage run in serve.")


if __name__ == "__main__":
    main()
