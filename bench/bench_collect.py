"""Benchmark: collect() latency and end-to-end throughput to local Avro, beside its peers.

In one run, for 1-row and 100-row frames:
  * ours: collect() p50/p99 measured while the exporter thread is busy converting and
    writing (the realistic case), and end-to-end frames/s and rows/s until flush()
    returns with everything on disk;
  * raw fastavro writing the same rows (already as dicts) to one file: the ceiling;
  * azureml-ai-monitoring 1.0.0, the SDK we replace, collecting the same frames to a
    minimal local stand-in for its sidecar (it POSTs each payload to
    127.0.0.1:$AZUREML_MDC_PORT/modeldata/log); end-to-end counts payloads the
    stand-in received. It is installed into a temporary folder for this run only.

Each measurement runs in its own process. Usage: python bench/bench_collect.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A pool of 256 distinct frames, cycled: a scoring app builds one frame per request and lets it
# go, so the benchmark must not keep tens of thousands alive (the garbage collector would then
# dominate every figure, ours and the peer's alike).
FRAME_CODE = """
import numpy as np, pandas as pd
def make_frames(n, rows):
    rng = np.random.default_rng(1)
    pool = [pd.DataFrame({
        "age": rng.integers(18, 90, rows), "income": rng.random(rows) * 1e5,
        "region": rng.choice(["n", "s", "e", "w"], rows), "member": rng.random(rows) > 0.5,
        "score": rng.random(rows)}) for _ in range(min(n, 256))]
    return [pool[i % len(pool)] for i in range(n)]
def percentiles(ns):
    ns = sorted(ns)
    return ns[len(ns) // 2] / 1000, ns[int(len(ns) * 0.99)] / 1000
"""

OURS = FRAME_CODE + """
import json, sys, tempfile, time
import otel_collector_ext as oce
n, rows = int(sys.argv[1]), int(sys.argv[2])
frames = make_frames(n, rows)
with tempfile.TemporaryDirectory() as d:
    oce.configure({"exporter": {"type": "avro", "destination": d},
                   "batch": {"max_queue_size": n + 10}})
    c = oce.Collector(name="model_inputs")
    c.collect(frames[0]); oce.flush()  # warm-up: imports, first file
    lat = []
    clock = time.perf_counter_ns
    start = time.perf_counter()
    for f in frames:
        t = clock(); c.collect(f); lat.append(clock() - t)
    oce.flush()
    elapsed = time.perf_counter() - start
    stats = oce.stats()
    oce.shutdown()
    written = stats.get("exporter.rows.written{collection=model_inputs}", 0) - rows
    p50, p99 = percentiles(lat)
    print(json.dumps({"p50_us": p50, "p99_us": p99, "frames_per_s": n / elapsed,
                      "rows_per_s": n * rows / elapsed, "rows_written": written,
                      "rows_expected": n * rows}))
"""

RAW = FRAME_CODE + """
import json, sys, tempfile, time, fastavro
from exporters.avro.schema import Envelope
from exporters.avro.tabular import convert_frames
n, rows = int(sys.argv[1]), int(sys.argv[2])
frames = make_frames(n, rows)
user_rows = [r for f in frames for r in f.to_dict("records")]
user_schema = fastavro.parse_schema({"type": "record", "name": "r", "fields": [
    {"name": "age", "type": ["null", "long"]}, {"name": "income", "type": ["null", "double"]},
    {"name": "region", "type": ["null", "string"]}, {"name": "member", "type": ["null", "boolean"]},
    {"name": "score", "type": ["null", "double"]}]})
# The rows exactly as we store them (envelope fields included), already converted.
envelopes = [Envelope("0b7e8a36-5d0c-4c5e-9a51-1f0f2c3d4e5f", 1_764_000_000_000_000 + i, "1")
             for i in range(n)]
stored = convert_frames(frames, envelopes, "model_inputs")
stored_schema = fastavro.parse_schema(stored.schema)
out = {}
with tempfile.TemporaryDirectory() as d:
    for name, schema, records in (("user", user_schema, user_rows),
                                  ("stored", stored_schema, stored.rows)):
        start = time.perf_counter()
        with open(f"{d}/{name}.avro", "wb") as fo:
            fastavro.writer(fo, schema, records, codec="deflate")
        out[name] = len(records) / (time.perf_counter() - start)
print(json.dumps({"rows_per_s": out["user"], "stored_rows_per_s": out["stored"]}))
"""

PEER = FRAME_CODE + """
import json, sys, time
from azureml.ai.monitoring import Collector
n, rows = int(sys.argv[1]), int(sys.argv[2])
frames = make_frames(n, rows)
errors = []
c = Collector(name="model_inputs", on_error=errors.append)
c.collect(frames[0])
lat = []
clock = time.perf_counter_ns
start = time.perf_counter()
for f in frames:
    t = clock(); c.collect(f); lat.append(clock() - t)
p50, p99 = percentiles(lat)
print(json.dumps({"p50_us": p50, "p99_us": p99, "start": start, "errors": len(errors)}),
      flush=True)
sys.stdin.readline()  # the bench tells us when the stand-in has seen everything
"""


class Sidecar(ThreadingHTTPServer):
    """A stand-in for Azure ML's data-collection sidecar: counts payloads, stores nothing."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received = 0
        self.last = 0.0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("content-length", 0)))
        server: Sidecar = self.server  # type: ignore[assignment]
        with server.lock:
            server.received += 1
            server.last = time.perf_counter()
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def run_json(code: str, *args: object, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_peer(n: int, rows: int, target: Path) -> dict:
    import os

    sidecar = Sidecar()
    threading.Thread(target=sidecar.serve_forever, daemon=True).start()
    env = dict(os.environ, PYTHONPATH=str(target), AZUREML_MDC_ENABLED="true",
               AZUREML_MDC_PORT=str(sidecar.server_address[1]))
    proc = subprocess.Popen([sys.executable, "-c", PEER, str(n), str(rows)], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    result: dict = {}
    while "p50_us" not in result:  # the SDK logs to stdout too; our line is the JSON one
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("azureml-ai-monitoring peer exited early")
        if line.startswith("{"):
            result = json.loads(line)
    # Wait until the stand-in has received every payload the SDK kept, or it stops arriving.
    expected, deadline = n + 1, time.perf_counter() + 600
    while time.perf_counter() < deadline:
        with sidecar.lock:
            received, last = sidecar.received, sidecar.last
        if received >= expected or (received and time.perf_counter() - last > 5):
            break
        time.sleep(0.05)  # polling a counter, not synchronisation
    proc.stdin.write("\n")
    proc.stdin.close()
    proc.wait(60)
    sidecar.shutdown()
    delivered = max(received - 1, 0)
    elapsed = last - result["start"]
    result.update(frames_per_s=delivered / elapsed, rows_per_s=delivered * rows / elapsed,
                  delivered=delivered, dropped=n - delivered)
    return result


def install_peer() -> Path:
    target = Path(tempfile.mkdtemp(prefix="azureml-ai-monitoring-"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--target", str(target),
                    "azureml-ai-monitoring==1.0.0"], check=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames")
    parser.add_argument("--no-peer", action="store_true", help="skip azureml-ai-monitoring")
    args = parser.parse_args()
    sizes = [(1, 5_000 if args.quick else 30_000), (100, 500 if args.quick else 3_000)]
    target = None if args.no_peer else install_peer()
    print(f"{'frame':>9} {'system':<26} {'collect p50':>12} {'p99':>9} "
          f"{'frames/s':>10} {'rows/s':>11}  note")
    for rows, n in sizes:
        ours = run_json(OURS, n, rows)
        raw = run_json(RAW, n, rows)
        lines = [("otel-collector-ext → Avro", ours,
                  f"{ours['rows_written']}/{ours['rows_expected']} rows on disk"),
                 ("raw fastavro (ceiling)", raw, "the frames' columns, pre-built dicts, one file"),
                 ("raw fastavro, stored rows", {"rows_per_s": raw["stored_rows_per_s"]},
                  "same rows plus our envelope fields, pre-converted")]
        if target is not None:
            peer = measure_peer(n, rows, target)
            lines.append(("azureml-ai-monitoring 1.0", peer,
                          f"{peer['delivered']} delivered, {peer['dropped']} dropped"))
        for name, r, note in lines:
            p50 = f"{r['p50_us']:.1f} µs" if "p50_us" in r else "-"
            p99 = f"{r['p99_us']:.0f} µs" if "p99_us" in r else "-"
            fps = f"{r['frames_per_s']:,.0f}" if "frames_per_s" in r else "-"
            print(f"{rows:>5}-row {name:<26} {p50:>12} {p99:>9} {fps:>10} "
                  f"{r['rows_per_s']:>11,.0f}  {note}")
        print(f"          ours / raw fastavro rows/s: {ours['rows_per_s'] / raw['rows_per_s']:.0%} "
              f"(of the stored-rows figure: "
              f"{ours['rows_per_s'] / raw['stored_rows_per_s']:.0%})")


if __name__ == "__main__":
    main()
