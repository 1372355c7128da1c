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
    process) converts and writes, acknowledging either once records are in memory or,
    as by default, once they are fsynced in its write-ahead log (durable ack). Beside
    the memory-ack figures: those measured before `serve`'s HTTP side moved from the
    standard library's http.server to uvicorn and decoding to its bounded pool (the
    README's Performance table of that time, when there was no write-ahead log);
  * requests: 1, 8 and 64 clients each sending 64-record requests as fast as they are
    answered, over HTTP and gRPC, to the default `serve`; requests and records per second
    acknowledged, and how many were answered "retry later" (over `max_concurrent_requests`).

Then each goal is printed with its ratio and whether it is met (bench/goals.py): the
scoring process's CPU per record beside raw fastavro writing the same rows as stored
(pre-built dicts), and serve's records/s beside the in-process path's of the same run.

Usage: python bench/bench_otlp.py [--records N] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
from opentelemetry._logs import LogRecord  # noqa: E402
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs  # noqa: E402
from opentelemetry.sdk._logs import ReadableLogRecord  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402

from bench.goals import Goal, print_goals  # noqa: E402
from exporters import contract as A  # noqa: E402
from exporters.avro.schema import Envelope  # noqa: E402
from exporters.avro.tabular import convert_frames  # noqa: E402
from exporters.otlp.codec import encode_body  # noqa: E402
from exporters.otlp.exporter import encode_records  # noqa: E402
from otel_collector_ext.service.receiver.decode import decode_request, parse_protobuf  # noqa: E402
from tests.conftest import python_env  # noqa: E402
from tests.support.helpers_otlp import EXPORT_METHOD  # noqa: E402
from tests.support.service_process import ServeProcess  # noqa: E402

FRAME_CODE = """
import numpy as np, pandas as pd
CATS = pd.CategoricalDtype(["low", "mid", "high"])
def frame(i, rows=1):
    r = [i + k for k in range(rows)]
    return pd.DataFrame({
        "age": [v % 90 for v in r], "income": [1000.0 + v for v in r], "score": [v / 7 for v in r],
        "ratio": [0.5] * rows, "name": [f"user{v % 100}" for v in r], "city": ["Berlin"] * rows,
        "segment": pd.Categorical.from_codes([v % 3 for v in r], dtype=CATS),
        "seen": pd.to_datetime([1_767_225_600 + v for v in r], unit="s", utc=True),
        "flag": [v % 2 == 0 for v in r], "count": r,
    })
"""
exec(FRAME_CODE)  # noqa: S102 - the same frame builder runs in the scoring processes

SENDER = FRAME_CODE + """
import json, resource, sys, time
import otel_collector_ext as oce
mode, target, count, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if mode == "avro":
    exporter = {"type": "avro", "destination": target}
else:
    exporter = {"type": "otlp", "endpoint": target, "timeout": 60,
                "protocol": "grpc" if mode == "grpc" else "http/protobuf"}
oce.configure({"endpoint": "ep", "deployment": mode, "exporter": exporter,
               "batch": {"max_queue_size": 1_000_000, "max_export_batch_size": 1024,
                         "schedule_delay_millis": 200}})
frames = [frame(i, rows) for i in range(count)]
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

    def records(make: Any) -> list[ReadableLogRecord]:
        return [ReadableLogRecord(LogRecord(timestamp=1, body=make(f), attributes=ATTRS,
                                            event_name="ml.inference.inputs"), RESOURCE)
                for f in frames]

    forms = (
        ("map {col: [v]} (after to_dict)", lambda: records(lambda f: _plain(f.to_dict("list")))),
        ("columnar, frame by frame", lambda: records(lambda f: encode_body(f, A.KIND_DATAFRAME))),
        ("columnar, batched (the exporter)", lambda: [
            r for batch in _chunks(records(lambda f: f), 1024) for r in encode_records(batch)
        ]),
    )
    out = []
    for form, make in forms:
        start = time.perf_counter()
        data = [encode_logs(batch).SerializeToString()
                for batch in _chunks(make(), 1024)]
        encode_us = (time.perf_counter() - start) / n * 1e6
        start = time.perf_counter()
        for request in data:
            decode_request(parse_protobuf(request, max_depth=32), max_depth=32, max_records=n)
        decode_us = (time.perf_counter() - start) / n * 1e6
        out.append((form, encode_us, decode_us, sum(map(len, data)) // n))
    return out


def raw_fastavro_cpu_us(n: int, rows: int) -> float:
    """CPU µs per row of raw fastavro writing these frames' rows as we store them (the rows
    converted beforehand, envelope fields included, deflate, one file): the ceiling."""
    import fastavro

    frames = [frame(i, rows) for i in range(n)]  # noqa: F821 - defined by FRAME_CODE
    envelopes = [Envelope("0f8b3c1e-5d7a-4b8e-9a61-2c3d4e5f6a7b", 1_767_225_600_000_000 + i, "1")
                 for i in range(n)]
    stored = convert_frames(frames, envelopes, "inputs")
    schema = fastavro.parse_schema(stored.schema)
    times = []
    for _ in range(3):
        with tempfile.TemporaryFile() as fo:
            start = time.process_time()
            fastavro.writer(fo, schema, stored.rows, codec="deflate")
            times.append(time.process_time() - start)
    return sorted(times)[1] / len(stored.rows) * 1e6


# Before this work, on a quiet run: serve took 2,465 one-row records/s over OTLP while the
# in-process path took 4,548/s. The goal is 4× that serve figure; on a shared machine the
# in-process path of the same run is the yardstick, so the goal is that ratio: ≥ 2.17×.
SERVE_BEFORE, INPROCESS_THEN = 2465, 4548


def goals(results: dict[tuple[int, str], dict[str, float]], raw_us: float) -> list[Goal]:
    raw = "raw fastavro, rows as stored"
    inproc = results[(1, "in-process avro")]
    grpc = results[(1, "OTLP gRPC → serve, durable ack")]
    http = results[(1, "OTLP HTTP → serve, durable ack")]
    serve_goal = 4 * SERVE_BEFORE / INPROCESS_THEN
    found = [
        Goal("scoring-process CPU per 1-row mixed 10-column record, in-process Avro",
             inproc["cpu_us"], raw_us, raw, "µs", at_most=3.0),
        Goal("scoring-process CPU per 1-row mixed 10-column record, over OTLP gRPC",
             grpc["cpu_us"], raw_us, raw, "µs", at_most=3.0),
        Goal("serve, 1-row records/s over OTLP gRPC (durable ack; goal: 4× the 2,465/s "
             "before this work)", grpc["records_per_s"], inproc["records_per_s"],
             "in-process Avro", "records/s", at_least=round(serve_goal, 2)),
        Goal("serve, 1-row records/s over OTLP HTTP (durable ack)", http["records_per_s"],
             inproc["records_per_s"], "in-process Avro", "records/s",
             at_least=round(serve_goal, 2)),
    ]
    return [dataclasses.replace(g, source="bench_otlp.py") for g in found]


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[k:k + size] for k in range(0, len(items), size)]


def _plain(body: object) -> object:
    # The map form needs plain values (the released encoder rejects numpy and pandas scalars).
    if isinstance(body, dict) and not body.get("otel_collector_ext.columnar"):
        return {str(k): [v.isoformat() if hasattr(v, "isoformat") else
                         (v.item() if isinstance(v, np.generic) else v) for v in vs]
                for k, vs in body.items()}
    return body


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def written(serve: ServeProcess, deployment_total: int) -> bool:
    exporters = serve.health_detail()["exporters"]["avro"]
    return exporters.get("exporter.records.written{collection=inputs}", 0) >= deployment_total


def end_to_end(mode: str, target: str, count: int, rows: int, serve: ServeProcess | None,
               already: int) -> dict[str, float]:
    serve_cpu = _cpu(serve.process.pid) if serve is not None else 0.0
    run = subprocess.run([sys.executable, "-c", SENDER, mode, target, str(count), str(rows)],
                         cwd=ROOT,
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
        serve_cpu = _cpu(serve.process.pid) - serve_cpu
    seconds = stored - result["start"]
    return {"records_per_s": count / seconds, "seconds": seconds,
            "cpu_us": result["cpu"] / count * 1e6, "serve_cpu_us": serve_cpu / count * 1e6,
            "collect_us": (result["collected"] - result["start"]) / count * 1e6,
            "dropped": result["dropped"]}


# Records/s end to end before the server change (README, Performance): (rows, path) → figure.
BEFORE = {(1, "OTLP gRPC → serve, memory ack"): 2443, (1, "OTLP HTTP → serve, memory ack"): 2031,
          (100, "OTLP gRPC → serve, memory ack"): 505,
          (100, "OTLP HTTP → serve, memory ack"): 504}
REQUEST_RECORDS = 64


def sample_request() -> bytes:
    """One request as the scoring side's exporter sends it: 64 one-row frame records."""
    records = [ReadableLogRecord(LogRecord(timestamp=1, body=frame(i), attributes=ATTRS,  # noqa: F821
                                           event_name="ml.inference.inputs"), RESOURCE)
               for i in range(REQUEST_RECORDS)]
    return encode_logs(encode_records(records)).SerializeToString()


def _http_sender(address: tuple[str, int], data: bytes, stop: threading.Event,
                 out: Counter[str]) -> None:
    conn = http.client.HTTPConnection(*address, timeout=60)
    while not stop.is_set():
        try:
            conn.request("POST", "/v1/logs", body=data,
                         headers={"Content-Type": "application/x-protobuf"})
            response = conn.getresponse()
            response.read()
        except OSError:
            out["error"] += 1
            conn.close()
            conn = http.client.HTTPConnection(*address, timeout=60)
            continue
        out["ok" if response.status == 200 else "retry" if response.status == 503 else
            str(response.status)] += 1
    conn.close()


def _grpc_sender(address: tuple[str, int], data: bytes, stop: threading.Event,
                 out: Counter[str]) -> None:
    with grpc.insecure_channel(f"{address[0]}:{address[1]}") as channel:
        call = channel.unary_unary(EXPORT_METHOD)
        while not stop.is_set():
            try:
                call(data, timeout=60)
            except grpc.RpcError as e:
                out["retry" if e.code() is grpc.StatusCode.UNAVAILABLE else e.code().name] += 1
                continue
            out["ok"] += 1


def request_rates(serve: ServeProcess, clients: int, seconds: float = 4.0
                  ) -> dict[str, dict[str, float]]:
    data = sample_request()
    rates = {}
    for transport, target, address in (("HTTP", _http_sender, serve.http),
                                       ("gRPC", _grpc_sender, serve.grpc)):
        stop, out = threading.Event(), Counter[str]()
        threads = [threading.Thread(target=target, args=(address, data, stop, out))
                   for _ in range(clients)]
        for thread in threads:
            thread.start()
        time.sleep(seconds)  # a fixed measuring window
        stop.set()
        for thread in threads:
            thread.join(120)
        total = sum(out.values())
        rates[transport] = {"requests_per_s": out["ok"] / seconds,
                            "records_per_s": out["ok"] * REQUEST_RECORDS / seconds,
                            "retry_share": out["retry"] / total if total else 0.0,
                            "other": total - out["ok"] - out["retry"]}
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="5,000 records")
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")
    args = parser.parse_args()
    count = 5_000 if args.quick else args.records

    print(f"Body encoding, one-row frames of 10 mixed-dtype columns ({min(count, 5000)} records):")
    print(f"  {'form':<36} {'scoring µs/rec':>15} {'collector µs/rec':>17} {'bytes/rec':>10}")
    body_costs(500)  # warm-up: imports, caches, first-call costs
    for form, enc, dec, size in body_costs(min(count, 5000)):
        print(f"  {form:<36} {enc:>15.1f} {dec:>17.1f} {size:>10}")
    print("  (scoring: body conversion + the released encoder + serialising, per record;")
    print("   collector: parsing + decoding into SDK records with DataFrame bodies)")

    shapes = ((1, count), (100, max(count // 20, 100)))
    results: dict[tuple[int, str], dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for rows, n in shapes:
            results[(rows, "in-process avro")] = end_to_end(
                "avro", str(workdir / f"inproc{rows}"), n, rows, None, 0)
        # serve acknowledging once records are in memory (the write-ahead log off) beside
        # serve acknowledging once they are fsynced in its write-ahead log (the default).
        serves = {}
        for ack, wal in (("memory", {"enabled": False}),
                         ("durable", {"directory": str(workdir / "wal")})):
            (workdir / ack).mkdir()
            serves[ack] = ServeProcess(workdir / ack, workdir / ack / "served",
                                       receiver={"max_records_per_request": 8192},
                                       batch={"max_queue_size": 1_000_000,
                                              "send_batch_size": 4096, "timeout": "200ms"},
                                       wal=wal)
        try:
            for serve in serves.values():
                serve.wait_ready()
            default = serves["durable"]
            rates = {clients: request_rates(default, clients) for clients in (1, 8, 64)}
            deadline = time.time() + 600
            while default.health_detail()["exporters"]["avro"]["queued"]:  # drained first
                if time.time() > deadline:
                    raise SystemExit("serve did not drain the request benchmark")
                time.sleep(0.1)  # polling a condition, with a deadline
            already = dict.fromkeys(serves, 0)
            already["durable"] = default.health_detail()["exporters"]["avro"].get(
                "exporter.records.written{collection=inputs}", 0)
            for rows, n in shapes:
                for mode in ("grpc", "http"):
                    for ack, serve in serves.items():  # alternate: the machine's noise hits both
                        port = serve.grpc[1] if mode == "grpc" else serve.http[1]
                        label = f"OTLP {mode.upper() if mode == 'http' else 'gRPC'} → serve, {ack} ack"
                        results[(rows, label)] = end_to_end(
                            mode, f"http://127.0.0.1:{port}", n, rows, serve, already[ack])
                        already[ack] += n
        finally:
            for serve in serves.values():
                serve.stop()
    for rows, n in shapes:
        print(f"\nEnd to end, {n:,} records of {rows}-row frames, first collect() to stored:")
        print(f"  {'path':<36} {'records/s':>10} {'before':>7} {'seconds':>8} "
              f"{'scoring CPU µs/rec':>19} {'serve CPU µs/rec':>17} {'collect() µs':>13} "
              f"{'dropped':>8}")
        for (shape, path), r in results.items():
            if shape != rows:
                continue
            serve_cpu = f"{r['serve_cpu_us']:>17.1f}" if r["serve_cpu_us"] else f"{'-':>17}"
            before = BEFORE.get((shape, path))
            print(f"  {path:<36} {r['records_per_s']:>10,.0f} "
                  f"{before if before else '-':>7} {r['seconds']:>8.2f} "
                  f"{r['cpu_us']:>19.1f} {serve_cpu} {r['collect_us']:>13.1f} "
                  f"{r['dropped']:>8}")
    print(f"\nRequests of {REQUEST_RECORDS} one-row frames, clients sending as fast as answered "
          "(default limits: max_concurrent_requests 16, two decoding threads):")
    print(f"  {'clients':>7} {'transport':<9} {'requests/s':>11} {'records/s':>10} "
          f"{'retry later':>12} {'other':>6}")
    for clients, by_transport in rates.items():
        for transport, r in by_transport.items():
            print(f"  {clients:>7} {transport:<9} {r['requests_per_s']:>11,.0f} "
                  f"{r['records_per_s']:>10,.0f} {r['retry_share']:>11.0%} {r['other']:>6.0f}")
    print("\nscoring CPU: the scoring process's CPU per record for collect + batching + "
          "conversion or encoding + sending. Over OTLP, conversion and storage run in serve.")
    print("memory ack: serve answers once records are queued in memory (service.wal.enabled: "
          "false); durable ack: once they are fsynced in its write-ahead log (the default).")
    for rows, _ in shapes:
        for mode in ("gRPC", "HTTP"):
            memory = results[(rows, f"OTLP {mode} → serve, memory ack")]["records_per_s"]
            durable = results[(rows, f"OTLP {mode} → serve, durable ack")]["records_per_s"]
            print(f"  {rows}-row frames over {mode}: durable ack at {durable / memory:.0%} of "
                  "memory ack")
    raw_us = raw_fastavro_cpu_us(min(count, 5000), 1)
    print(f"\nraw fastavro writing these 1-row frames' rows as stored: {raw_us:.1f} µs CPU per row")
    found = goals(results, raw_us)
    print_goals(found)
    if args.json:
        print(json.dumps({
            "end_to_end": [{"rows": rows, "path": path, **r} for (rows, path), r in results.items()],
            "raw_fastavro_cpu_us": raw_us, "goals": [g.as_dict() for g in found]}))


if __name__ == "__main__":
    main()
