"""A scoring process for the end-to-end tests: collects a fixed, deterministic workload.

    python -m tests.support.send_otlp --mode grpc|http|avro --target URL|DIR --deployment NAME --count N

`grpc` and `http` export over OTLP with the released exporters (through the project's
`exporter: {type: otlp}`); `avro` writes in-process, the reference to compare with.
Prints the pipeline's stats as one JSON line; exits non-zero if anything was lost.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

import otel_collector_ext as oce
from otel_collector_ext import BasicCorrelationContext, Collector
from tests.support.helpers_otlp import T0, zoo_frame, zoo_row

COLLECTIONS = ("inputs", "outputs", "features", "arrays", "batches", "notes")


def workload(count: int) -> None:
    inputs, outputs = Collector(name="inputs"), Collector(name="outputs")
    features, arrays = Collector(name="features"), Collector(name="arrays")
    batches, notes = Collector(name="batches"), Collector(name="notes")
    for i in range(count):
        ctx = BasicCorrelationContext(id=f"c-{i:05d}", timestamp=(T0 // 1000 + i * 1013) / 1e6)
        inputs.collect(zoo_frame(i, rows=1 + i % 3), ctx)
        outputs.collect(zoo_row(i), ctx)
        if i % 10 == 0:  # numpy scalars in lists: converted to a frame before sending
            features.collect({"x": [i / 3, None], "n": [np.int32(i), np.int32(-i)]}, ctx)
        if i % 10 == 5:
            arrays.collect(np.arange(6, dtype=np.float32).reshape(2, 3) * i, ctx)
        if i % 13 == 0:
            batches.collect([{"a": i, "b": "x"}, {"a": None, "c": [1, 2]}], ctx)
        if i % 7 == 0:
            notes.collect(f"note {i} é" if i % 2 else bytes([i % 256, 0, 255]), ctx)
        if i % 21 == 0:
            notes.collect({"json": [i, None, {"k": "v"}]}, ctx)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("grpc", "http", "avro"), required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--token")
    parser.add_argument("--batch", type=int, default=512, help="records per export")
    args = parser.parse_args()
    if args.mode == "avro":
        exporter = {"type": "avro", "destination": args.target}
    else:
        exporter = {"type": "otlp", "endpoint": args.target, "timeout": 30,
                    "protocol": "grpc" if args.mode == "grpc" else "http/protobuf",
                    "compression": "gzip" if args.mode == "http" else "none"}
        if args.token:
            exporter["headers"] = {"authorization": f"Bearer {args.token}"}
    oce.configure({"endpoint": "ep", "deployment": args.deployment, "model_version": "7",
                   "instance_id": f"sender-{args.mode}", "exporter": exporter,
                   "batch": {"schedule_delay_millis": 100, "max_export_batch_size": args.batch}})
    workload(args.count)
    flushed = oce.flush(120_000)
    stats = oce.stats()
    oce.shutdown()
    print(json.dumps({"flushed": flushed, **stats}))
    lost = sum(v for k, v in stats.items() if k.startswith("records.dropped"))
    return 0 if flushed and not lost else 1


if __name__ == "__main__":
    sys.exit(main())
