"""`serve` against bodies that declare far more than they carry, in a separate process: each
amplifying form is refused 4xx before anything is built, `serve` stays up and small, and the
largest request its limits allow stays under the documented memory bound."""

from __future__ import annotations

import json
import time
from typing import Any

import grpc
import numpy as np
import pandas as pd

from exporters import contract as A
from exporters.otlp.codec import FORMAT_VERSION, FRAME_MARKER, NDARRAY_MARKER
from otel_collector_ext.service.receiver.core import MiB
from tests.support.helpers_otlp import grpc_export, http_post, record, request, rows_request
from tests.support.service_process import PeakRss, ServeProcess


def one_body_request(body: Any, kind: str = A.KIND_DATAFRAME) -> bytes:
    return request([record(body, kind, correlation_id="bomb")]).SerializeToString()


def no_columns(rows: int) -> dict[str, Any]:
    """A columnar frame body without columns that declares `rows` rows (no data at all)."""
    return {FRAME_MARKER: FORMAT_VERSION, "rows": rows, "data": b"",
            "schema": json.dumps({"columns": [], "specs": [], "index": None})}


BOMBS = {
    # name: (request, HTTP status); gRPC answers INVALID_ARGUMENT to each
    "no columns, 2e6 rows": (one_body_request(no_columns(2_000_000)), 400),
    "no columns, 1e9 rows": (one_body_request(no_columns(10**9)), 400),
    "ndarray [1e9, 0]": (one_body_request(
        {NDARRAY_MARKER: FORMAT_VERSION, "dtype": '"<f8"', "shape": [10**9, 0], "data": b""},
        A.KIND_NDARRAY), 400),
    # Legal framing, a row per byte: 900 KB that would take about 300 MiB to store.
    "int8, 900 KB": (one_body_request(pd.DataFrame({"a": np.zeros(900_000, dtype=np.int8)})),
                     413),
    # 4 MiB of int8: past the rows a record may hold.
    "int8, 4 MiB": (one_body_request(pd.DataFrame({"a": np.zeros(4 * MiB, dtype=np.int8)})), 400),
}



def rows_written(server: ServeProcess) -> int:
    stats = server.health_detail()["exporters"]["avro"]
    return sum(v for k, v in stats.items() if k.startswith("exporter.rows.written"))


def wait_rows(server: ServeProcess, rows: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while rows_written(server) < rows:
        assert time.monotonic() < deadline, f"{rows_written(server)} of {rows} rows stored"
        time.sleep(0.1)  # polling the health endpoint, with a deadline


def test_amplifying_bodies_are_refused_and_serve_stays_small(serve: Any) -> None:
    server = serve()
    assert http_post(server.http, rows_request(3, prefix="warm"))[0] == 200
    wait_rows(server, 3)
    with PeakRss(server.process.pid) as rss:
        base = rss.peak
        for name, (body, status) in BOMBS.items():
            assert len(body) < 5 * MiB
            answer, _, text = http_post(server.http, body, timeout=30)
            assert answer == status, (name, answer, text)
            code, details, _, _ = grpc_export(server.grpc, body, timeout=30)
            assert code is grpc.StatusCode.INVALID_ARGUMENT, (name, code, details)
            assert server.process.poll() is None, name
    # Nothing was built: the bombs together cost less than one of them would have.
    assert rss.peak - base < 100 * MiB, (rss.peak - base) / MiB
    assert http_post(server.http, rows_request(2, prefix="after"))[0] == 200
    wait_rows(server, 5)
    counters = server.health_detail()["receivers"]["otlp"]
    assert counters["requests_invalid"] >= 6 and counters["requests_too_large"] >= 1
    assert server.stop() == 0


def test_largest_legal_request_stays_under_the_documented_bound(serve: Any) -> None:
    # docs/otlp.md: one request costs at most 4 x its size + max_decoded_bytes_per_request.
    request_limit, decoded_limit = 4 * MiB, 64 * MiB
    server = serve(receiver={"protocols": {"http": {"max_request_body_size": request_limit}},
                             "max_decoded_bytes_per_request": decoded_limit})
    columns = 10

    def frame(rows: int) -> bytes:
        return one_body_request(pd.DataFrame(
            {f"c{i}": np.arange(rows, dtype=np.float64) for i in range(columns)}))

    # Ten float columns cost 256 + 10 x (96 + 8) bytes a row: 51,000 rows fit, 52,000 do not.
    largest, too_many = frame(51_000), frame(52_000)
    assert len(largest) < request_limit and len(too_many) < request_limit
    assert http_post(server.http, frame(10), timeout=30)[0] == 200  # warm every code path
    wait_rows(server, 10)
    assert http_post(server.http, too_many, timeout=30)[0] == 413
    with PeakRss(server.process.pid) as rss:
        base = rss.peak
        assert http_post(server.http, largest, timeout=60)[0] == 200
        wait_rows(server, 10 + 51_000)
    assert rss.peak - base < 4 * request_limit + decoded_limit, (rss.peak - base) / MiB
    assert server.stop() == 0
