"""Requests/s of the example FastAPI app with payload + custom logging on vs off.

Run: python bench/bench_middleware.py [--rounds 5] [--seconds 3] [--concurrency 8]

Three uvicorn servers (one worker each) run examples/fastapi_app.py on loopback:
  bare  the app without ASGIMiddleware, every collection disabled
  off   the app as shipped (ASGIMiddleware installed), every collection disabled
  on    the app as shipped, request, response, model_inputs and model_outputs all
        enabled at 100% sampling, headers captured, Avro files written to a temp dir
A load generator in another process (raw HTTP/1.1 keep-alive, asyncio, so the client
is not the bottleneck) drives one server at a time with POST /score (JSON → DataFrame
→ model → JSON), in rounds bounded in time and in count; each round visits every mode
in a shuffled order, and waits for a server to go idle (its exporter done) before the
next one starts. Reported: the median requests/s per mode, the median of the
per-round on/off and on/bare ratios, and the server's CPU time per request. The 'on'
records are read back and counted, so dropped records cannot flatter the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.goals import Goal, print_goals  # noqa: E402

MODES = ("bare", "off", "on")
BODY = json.dumps({"columns": ["age", "income", "debt"],
                   "data": [[35, 52000.0, 1200.0], [51, 87000.0, 300.0]]}).encode()
COLLECTIONS = ("request", "response", "model_inputs", "model_outputs")

_SERVER = """
import socket, sys, uvicorn
from examples.fastapi_app import app
if sys.argv[2] == "bare":
    app.user_middleware.clear()  # before the first request builds the middleware stack
sock = socket.socket(fileno=int(sys.argv[1]))
uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
"""


ENABLED = {"on": set(COLLECTIONS), "payload": {"request", "response"},
           "custom": {"model_inputs", "model_outputs"}}


def config_for(mode: str, destination: Path) -> dict[str, Any]:
    enabled = ENABLED.get(mode, set())
    return {
        "endpoint": "bench",
        "deployment": mode,
        "instance_id": "bench",
        "exporter": {"type": "avro", "destination": str(destination)},
        "data_collector": {
            "sampling_rate": 1.0,
            "collections": {c: {"enabled": c in enabled} for c in COLLECTIONS},
            "request_logging": {"capture_headers": ["content-type", "user-agent",
                                                    "x-request-id"]},
        },
    }


class Server:
    """A uvicorn child process serving `script` (default: the example FastAPI app) with
    `config` (default: `config_for(mode)`); bench_genai.py reuses it."""

    def __init__(self, mode: str, work: Path, *, config: dict[str, Any] | None = None,
                 script: str = _SERVER, env: dict[str, str] | None = None) -> None:
        self.mode = mode
        work.mkdir(parents=True, exist_ok=True)
        self.destination = work / "collected"
        config_path = work / f"{mode}.json"
        config_path.write_text(json.dumps(config or config_for(mode, self.destination)))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        self.port = sock.getsockname()[1]
        env = dict(os.environ, **(env or {}), OTEL_COLLECTOR_EXT_CONFIG=str(config_path),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                            os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, str(sock.fileno()), mode], cwd=ROOT, env=env,
            pass_fds=[sock.fileno()], stderr=subprocess.PIPE, text=True)
        sock.close()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.mode} server died: {self.process.communicate()[1]}")
            try:
                if asyncio.run(_one_request(self.port, b"GET", "/health", b"")) == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.mode} server did not start")
            time.sleep(0.05)  # polling interval

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (Linux; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until the server is idle (its exporter done), so it does not slow the next."""
        deadline = time.monotonic() + timeout
        last, quiet = self.cpu_seconds(), 0
        while quiet < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling interval
            now = self.cpu_seconds()
            quiet = quiet + 1 if now == last else 0
            last = now

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=60)
        return stderr


def _request_bytes(method: bytes, path: str, body: bytes) -> bytes:
    return (method + f" {path} HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _one_request(port: int, method: bytes, path: str, body: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_request_bytes(method, path, body))
        return await _read_response(reader)
    finally:
        writer.close()


async def _load(port: int, seconds: float, max_requests: int, concurrency: int
                ) -> tuple[int, float]:
    request = _request_bytes(b"POST", "/score", BODY)
    done = 0
    failures = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop_at and done < max_requests:
                writer.write(request)
                if await _read_response(reader) != 200:
                    failures += 1
                done += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit(f"{failures} requests failed")
    return done, elapsed


def _generate(port: int, seconds: float, max_requests: int, concurrency: int) -> tuple[int, float]:
    """One load round, run in a separate process so the client has its own core."""
    code = (f"import asyncio, json, sys; sys.path.insert(0, {str(ROOT)!r}); "
            f"from bench.bench_middleware import _load; "
            f"print(json.dumps(asyncio.run(_load({port}, {seconds}, {max_requests}, "
            f"{concurrency}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=seconds + 60, check=True)
    done, elapsed = json.loads(out.stdout)
    return done, elapsed


def count_records(destination: Path, mode: str) -> dict[str, int]:
    from otel_collector_ext.reading.readback import load

    counts = {}
    for collection in COLLECTIONS:
        frame = load(str(destination), endpoint="bench", deployment=mode, collection=collection)
        counts[collection] = frame["_correlation_id"].nunique() if len(frame) else 0
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--diagnose", action="store_true",
                        help="also run 'payload' (request/response only) and 'custom' "
                             "(model_inputs/model_outputs only)")
    parser.add_argument("--modes", nargs="+", choices=(*MODES, "payload", "custom"),
                        help="run only these modes (ratios need bare, off and on)")
    args = parser.parse_args()
    modes = tuple(args.modes or MODES + (("payload", "custom") if args.diagnose else ()))

    with tempfile.TemporaryDirectory(prefix="bench-middleware-") as tmp:
        servers = {mode: Server(mode, Path(tmp) / mode) for mode in modes}
        for server in servers.values():
            server.wait_ready()
        rates: dict[str, list[float]] = {mode: [] for mode in modes}
        sent: dict[str, int] = dict.fromkeys(modes, 0)
        cpu: dict[str, float] = dict.fromkeys(modes, 0.0)
        try:
            order = list(modes)
            for round_number in range(args.rounds):
                random.Random(round_number).shuffle(order)  # no mode always follows another
                for mode in order:
                    server = servers[mode]
                    before = server.cpu_seconds()
                    done, elapsed = _generate(server.port, args.seconds, args.max_requests,
                                              args.concurrency)
                    server.settle()
                    cpu[mode] += server.cpu_seconds() - before
                    rates[mode].append(done / elapsed)
                    sent[mode] += done
        finally:
            errors = {mode: server.stop() for mode, server in servers.items()}
        records = count_records(servers["on"].destination, "on") if "on" in servers else {}

    result = {mode: round(statistics.median(r), 1) for mode, r in rates.items()}
    # Rounds are paired: the ratio of each round, then the median, resists drifting load.
    def ratio(a: str, b: str) -> float:
        if a not in rates or b not in rates:
            return float("nan")
        return statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True))

    on_vs_off, on_vs_bare = ratio("on", "off"), ratio("on", "bare")
    # +1: the readiness poll of the 'on' server is a request too
    expected = sent.get("on", 0) + 1
    summary = {
        "requests_per_second": result,
        "rounds": rates,
        "on_vs_off": round(on_vs_off, 3),
        "on_vs_bare": round(on_vs_bare, 3),
        "server_cpu_us_per_request": {m: round(cpu[m] / sent[m] * 1e6) for m in modes},
        "requests_sent_on": sent.get("on", 0),
        "records_written_on": records,
        "cpus": os.cpu_count(),
    }
    found = []
    if "on" in result and "off" in result:
        found.append(Goal("example FastAPI app, request + response + inputs + outputs "
                          "recorded at 100 %", result["on"], result["off"],
                          "the same app, collection off", "requests/s", at_least=0.95,
                          source="bench_middleware.py"))
    summary["goals"] = [g.as_dict() for g in found]
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"example app POST /score, {args.concurrency} connections, "
              f"{args.rounds} rounds x {args.seconds:g} s, {os.cpu_count()} CPUs")
        for mode in modes:
            spread = ", ".join(f"{r:.0f}" for r in rates[mode])
            per_request = cpu[mode] / sent[mode] * 1e6
            print(f"  {mode:7s} {result[mode]:6.0f} req/s   server CPU {per_request:5.0f} µs/request"
                  f"   (rounds: {spread})")
        print(f"  on/off  {on_vs_off:6.1%}   on/bare {on_vs_bare:6.1%}   (median of per-round "
              "ratios)")
        print(f"  'on' records read back: {records} for {expected} requests")
        print_goals(found)
    missing = {c: n for c, n in records.items()
               if n < (sent.get("on", 0) if c.startswith("model") else expected)}
    if missing:
        print(f"WARNING: records missing in 'on' mode: {missing}", file=sys.stderr)
        for mode, stderr in errors.items():
            if stderr.strip():
                print(f"--- {mode} server stderr:\n{stderr}", file=sys.stderr)


if __name__ == "__main__":
    main()
