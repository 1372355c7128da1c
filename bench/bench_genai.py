"""What capturing a streamed completion costs: time to first byte and server CPU per
request, with the gen_ai collection on (content captured) vs off.

Run: python bench/bench_genai.py [--rounds 5] [--requests 100] [--words 200]

Servers (uvicorn, one worker each) run examples/genai_app.py with no per-token delay,
so the middleware's work is not hidden behind the model's:
  off       ASGIMiddleware installed, every collection disabled
  metadata  gen_ai on, capture_content off (the default: usage, timings, ids)
  content   gen_ai on, capture_content on (prompt and reassembled answer stored)
One client (httpx, sequential, keep-alive) sends streamed chat completions whose
answer is `--words` chunks long (one SSE event per word, then usage and [DONE]).
Each round visits every mode in a shuffled order. Reported per mode: the median over
rounds of the median time to first byte, and of the server CPU per request; the 'on'
rows are read back and counted, so dropped rows cannot flatter the figure.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_middleware import Server  # noqa: E402  (a sibling script)

MODES = ("off", "metadata", "content")
_SERVER = """
import socket, sys, uvicorn
from examples.genai_app import app
sock = socket.socket(fileno=int(sys.argv[1]))
uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])
"""


def config_for(mode: str, destination: Path) -> dict[str, Any]:
    return {
        "endpoint": "bench", "deployment": mode, "instance_id": "bench",
        "exporter": {"type": "avro", "destination": str(destination)},
        "data_collector": {"collections": {
            "gen_ai": {"enabled": mode != "off", "capture_content": mode == "content"},
            "request": {"enabled": False}, "response": {"enabled": False}}},
    }


def one_round(url: str, requests: int, body: dict[str, Any]) -> list[float]:
    """Time to first byte of each streamed request, in seconds."""
    ttfb = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(requests):
            start = time.perf_counter()
            with client.stream("POST", "/v1/chat/completions", json=body) as response:
                chunks = response.iter_raw()
                next(chunks)
                ttfb.append(time.perf_counter() - start)
                for _ in chunks:
                    pass
    return ttfb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--words", type=int, default=200)
    args = parser.parse_args()
    body = {"model": "echo-1", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": " ".join(["word"] * args.words)}]}
    ttfb: dict[str, list[float]] = {m: [] for m in MODES}
    cpu: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {m: Server(m, Path(tmp) / m, config=config_for(m, Path(tmp) / m / "collected"),
                             script=_SERVER, env={"EXAMPLE_TOKEN_DELAY": "0"}) for m in MODES}
        for server in servers.values():
            server.wait_ready()
        for server in servers.values():  # warm up: imports, first files
            one_round(f"http://127.0.0.1:{server.port}", 5, body)
            server.settle()
        for _ in range(args.rounds):
            for mode in random.sample(MODES, len(MODES)):
                server = servers[mode]
                before = server.cpu_seconds()
                times = one_round(f"http://127.0.0.1:{server.port}", args.requests, body)
                server.settle()
                cpu[mode].append((server.cpu_seconds() - before) / args.requests)
                ttfb[mode].append(statistics.median(times))
        for server in servers.values():
            server.stop()
        import otel_collector_ext as oce

        stored = {m: len(oce.load(str(Path(tmp) / m / "collected"), endpoint="bench",
                                  deployment=m, collection="gen_ai")) for m in MODES[1:]}
    sent = args.requests * args.rounds + 5
    print(f"{args.rounds} rounds x {args.requests} streamed completions of {args.words} chunks")
    print(f"{'mode':<10} {'TTFB p50 (ms)':>14} {'CPU/request (ms)':>17} {'rows stored':>12}")
    for mode in MODES:
        rows = f"{stored[mode]:,}/{sent:,}" if mode in stored else "–"
        print(f"{mode:<10} {statistics.median(ttfb[mode]) * 1000:>14.2f} "
              f"{statistics.median(cpu[mode]) * 1000:>17.2f} {rows:>12}")
    print(json.dumps({m: {"ttfb_ms": statistics.median(ttfb[m]) * 1000,
                          "cpu_ms": statistics.median(cpu[m]) * 1000} for m in MODES}))


if __name__ == "__main__":
    main()
