"""Benchmark: collect() latency, scoring-process CPU and throughput to local Avro, beside peers.

In one run, several rounds (medians), for 1-row and 100-row frames of ten columns (eight
float, one int, one string, as a model's inputs often are):
  * ours: collect() p50/p99 measured while the exporter thread is busy converting and
    writing (the realistic case); end-to-end frames/s and rows/s until flush() returns
    with everything on disk; the scoring process's CPU per record over all its threads
    (collect + queue + conversion + encoding + writing); and the same burst with the
    cyclic garbage collector off, which shows what GC costs;
  * raw fastavro writing the same rows (already as dicts) to one file, as the frames'
    columns only and as we store them (envelope fields included): the ceiling, in
    rows/s and CPU per row;
  * azureml-ai-monitoring 1.0.0, the SDK we replace, collecting the same frames to a
    minimal local stand-in for its sidecar (it POSTs each payload to
    127.0.0.1:$AZUREML_MDC_PORT/modeldata/log); end-to-end counts payloads the
    stand-in received. It is installed into a temporary folder for this run only.

Each measurement runs in its own process. Then each goal is printed with its ratio
and whether it is met (bench/goals.py).
Usage: python bench/bench_collect.py [--quick] [--rounds N] [--no-peer] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.goals import Goal, median, print_goals  # noqa: E402

# A pool of 256 distinct frames, cycled: a scoring app builds one frame per request and lets it
# go, so the benchmark must not keep tens of thousands alive (the garbage collector would then
# dominate every figure, ours and the peer's alike).
FRAME_CODE = """
import numpy as np, pandas as pd
def make_frames(n, rows):
    rng = np.random.default_rng(1)
    def one():
        columns = {f"x{k}": rng.random(rows) for k in range(8)}
        columns["age"] = rng.integers(18, 90, rows)
        columns["region"] = rng.choice(["north", "south", "east", "west"], rows)
        return pd.DataFrame(columns)
    pool = [one() for _ in range(min(n, 256))]
    return [pool[i % len(pool)] for i in range(n)]
def percentiles(ns):
    ns = sorted(ns)
    return ns[len(ns) // 2] / 1000, ns[int(len(ns) * 0.99)] / 1000
"""

OURS = FRAME_CODE + """
import gc, json, resource, sys, tempfile, time
import otel_collector_ext as oce
n, rows, collector_gc = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "gc"
frames = make_frames(n, rows)
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
with tempfile.TemporaryDirectory() as d:
    oce.configure({"exporter": {"type": "avro", "destination": d},
                   "batch": {"max_queue_size": n + 10}})
    c = oce.Collector(name="model_inputs")
    c.collect(frames[0]); oce.flush()  # warm-up: imports, first file
    if not collector_gc:
        gc.disable()
    lat = []
    clock = time.perf_counter_ns
    cpu0, start = cpu(), time.perf_counter()
    for f in frames:
        t = clock(); c.collect(f); lat.append(clock() - t)
    oce.flush()
    elapsed, cpu_s = time.perf_counter() - start, cpu() - cpu0
    stats = oce.stats()
    oce.shutdown()
    written = stats.get("exporter.rows.written{collection=model_inputs}", 0) - rows
    p50, p99 = percentiles(lat)
    print(json.dumps({"p50_us": p50, "p99_us": p99, "frames_per_s": n / elapsed,
                      "rows_per_s": n * rows / elapsed, "cpu_us_per_record": cpu_s / n * 1e6,
                      "rows_written": written, "rows_expected": n * rows}))
"""

RAW = FRAME_CODE + """
import json, sys, tempfile, time, fastavro
from exporters.avro.schema import Envelope
from exporters.avro.tabular import convert_frames
n, rows = int(sys.argv[1]), int(sys.argv[2])
frames = make_frames(n, rows)
user_rows = [r for f in frames for r in f.to_dict("records")]
user_schema = fastavro.parse_schema({"type": "record", "name": "r", "fields": [
    {"name": c, "type": ["null", t]} for c, t in
    [(f"x{k}", "double") for k in range(8)] + [("age", "long"), ("region", "string")]]})
# The rows exactly as we store them (envelope fields included), already converted.
envelopes = [Envelope("0b7e8a36-5d0c-4c5e-9a51-1f0f2c3d4e5f", 1_764_000_000_000_000 + i, "1")
             for i in range(n)]
stored = convert_frames(frames, envelopes, "model_inputs")
stored_schema = fastavro.parse_schema(stored.schema)
out = {}
with tempfile.TemporaryDirectory() as d:
    for name, schema, records in (("user", user_schema, user_rows),
                                  ("stored", stored_schema, stored.rows)):
        cpu0, start = time.process_time(), time.perf_counter()
        with open(f"{d}/{name}.avro", "wb") as fo:
            fastavro.writer(fo, schema, records, codec="deflate")
        out[name] = len(records) / (time.perf_counter() - start)
        out[name + "_cpu"] = (time.process_time() - cpu0) / len(records) * 1e6
print(json.dumps({"rows_per_s": out["user"], "stored_rows_per_s": out["stored"],
                  "cpu_us_per_row": out["user_cpu"], "stored_cpu_us_per_row": out["stored_cpu"]}))
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
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                           "--disable-pip-version-check", "--target", str(target),
                           "azureml-ai-monitoring==1.0.0"], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"installing azureml-ai-monitoring failed:\n{done.stderr}")
    return target


def medians(results: list[dict]) -> dict:
    """The median of each figure over rounds (notes: the last round's)."""
    out = dict(results[-1])
    for key, value in results[-1].items():
        if isinstance(value, float):
            out[key] = median([r[key] for r in results])
    return out


def measure(rows: int, n: int, rounds: int, target: Path | None) -> dict[str, dict]:
    """Every system's figures for one frame size: medians over `rounds` rounds, in which
    the systems run one after another, so the machine's noise hits them alike."""
    runs: dict[str, list[dict]] = {"ours": [], "ours_nogc": [], "raw": [], "peer": []}
    for _ in range(rounds):
        runs["ours"].append(run_json(OURS, n, rows, "gc"))
        if rows == 1:
            runs["ours_nogc"].append(run_json(OURS, n, rows, "nogc"))
        runs["raw"].append(run_json(RAW, n, rows))
        if target is not None:
            runs["peer"].append(measure_peer(n, rows, target))
    return {name: medians(results) for name, results in runs.items() if results}


def goals(by_size: dict[int, dict[str, dict]]) -> list[Goal]:
    one, hundred = by_size[1], by_size[100]
    found = []
    if "peer" in one:
        found += [
            Goal("collect() p50, 1-row 10-column frame", one["ours"]["p50_us"],
                 one["peer"]["p50_us"], "azureml-ai-monitoring 1.0.0", "µs", at_most=1.0),
            Goal("collect() p99, 1-row 10-column frame", one["ours"]["p99_us"],
                 one["peer"]["p99_us"], "azureml-ai-monitoring 1.0.0", "µs", at_most=1.0),
        ]
    found += [
        Goal("scoring-process CPU per 1-row record (collect + queue + convert + write, "
             "all threads)", one["ours"]["cpu_us_per_record"],
             one["raw"]["stored_cpu_us_per_row"], "raw fastavro, rows as stored", "µs",
             at_most=3.0),
        Goal("100-row frames, rows/s to local Avro", hundred["ours"]["rows_per_s"],
             hundred["raw"]["stored_rows_per_s"], "raw fastavro, rows as stored", "rows/s",
             at_least=0.9),
        Goal("cyclic GC: 1-row burst, frames/s with GC on", one["ours"]["frames_per_s"],
             one["ours_nogc"]["frames_per_s"], "GC off", "frames/s", at_least=0.95),
    ]
    return [dataclasses.replace(g, source="bench_collect.py") for g in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-peer", action="store_true", help="skip azureml-ai-monitoring")
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")
    args = parser.parse_args()
    sizes = [(1, 5_000 if args.quick else 20_000), (100, 500 if args.quick else 2_000)]
    target = None if args.no_peer else install_peer()
    by_size = {rows: measure(rows, n, args.rounds, target) for rows, n in sizes}
    print(f"{args.rounds} rounds, medians; frames of 10 columns (8 float, 1 int, 1 string)")
    print(f"{'frame':>9} {'system':<26} {'collect p50':>12} {'p99':>9} "
          f"{'frames/s':>10} {'rows/s':>11} {'CPU/record':>11}  note")
    table = []
    for rows, n in sizes:
        r = by_size[rows]
        ours, raw = r["ours"], r["raw"]
        lines = [("otel-collector-ext → Avro", ours,
                  f"{ours['rows_written']}/{ours['rows_expected']} rows on disk")]
        if "ours_nogc" in r:
            lines.append(("  the same, GC off", r["ours_nogc"], "gc.disable() before the burst"))
        lines += [("raw fastavro (ceiling)", raw, "the frames' columns, pre-built dicts, one file"),
                  ("raw fastavro, stored rows", {"rows_per_s": raw["stored_rows_per_s"],
                                                 "cpu_us_per_record": raw["stored_cpu_us_per_row"]
                                                 * rows},
                   "same rows plus our envelope fields, pre-converted")]
        if "peer" in r:
            peer = r["peer"]
            lines.append(("azureml-ai-monitoring 1.0", peer,
                          f"{peer['delivered']} delivered, {peer['dropped']} dropped"))
        for name, fig, note in lines:
            p50 = f"{fig['p50_us']:.1f} µs" if "p50_us" in fig else "-"
            p99 = f"{fig['p99_us']:.0f} µs" if "p99_us" in fig else "-"
            fps = f"{fig['frames_per_s']:,.0f}" if "frames_per_s" in fig else "-"
            cpu = f"{fig['cpu_us_per_record']:.1f} µs" if "cpu_us_per_record" in fig else "-"
            print(f"{rows:>5}-row {name:<26} {p50:>12} {p99:>9} {fps:>10} "
                  f"{fig['rows_per_s']:>11,.0f} {cpu:>11}  {note}")
            table.append({"rows": rows, "frames": n, "system": name.strip(), **fig,
                          "note": note})
    found = goals(by_size)
    print_goals(found)
    if args.json:
        print(json.dumps({"table": table, "goals": [g.as_dict() for g in found]}))


if __name__ == "__main__":
    main()
