"""A client for the crash tests: sends records with unique ids and writes down which were acknowledged.

    python -m tests.support.send_ids --mode http|grpc --port N --prefix P --out FILE --stop FILE

Each request holds 1-40 one-row records with correlation ids `P-<n>`, never sent twice:
a request that fails (refused, 503, UNAVAILABLE, cut by a crash) is written down as
not acknowledged and its ids are dropped, so a stored id was sent exactly once and
"acknowledged, stored twice" or "acknowledged, not stored" are the service's doing.
Runs until the stop file appears; `A <id>` / `N <id>` lines go to the output file.
"""

from __future__ import annotations

import argparse
import http.client
import random
import sys
import time
from pathlib import Path

import grpc

from exporters import contract as A
from tests.support.helpers_otlp import EXPORT_METHOD, T0, record, request


def body(prefix: str, first: int, count: int) -> bytes:
    return request([
        record({"n": n}, A.KIND_ROW, collection="ids", correlation_id=f"{prefix}-{n}",
               deployment="crash", time_ns=T0 + n)
        for n in range(first, first + count)
    ]).SerializeToString()


def send_http(port: int, data: bytes) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/logs", body=data,
                     headers={"Content-Type": "application/x-protobuf"})
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


class GrpcSender:
    def __init__(self, port: int) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.call = self.channel.unary_unary(EXPORT_METHOD)

    def __call__(self, data: bytes) -> bool:
        try:
            self.call(data, timeout=10)
            return True
        except grpc.RpcError:
            return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("http", "grpc"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stop", type=Path, required=True)
    args = parser.parse_args()
    send = GrpcSender(args.port) if args.mode == "grpc" else (
        lambda data: send_http(args.port, data))
    rng = random.Random(args.prefix)
    n = acked = 0
    with open(args.out, "w", buffering=1) as out:
        while not args.stop.exists():
            count = rng.randint(1, 40)
            ok = send(body(args.prefix, n, count))
            mark = "A" if ok else "N"
            out.write("".join(f"{mark} {args.prefix}-{k}\n" for k in range(n, n + count)))
            n += count
            if ok:
                acked += count
            else:
                time.sleep(0.02)  # the service is down or busy: pace the next attempt
    print(f"sent={n} acknowledged={acked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
