"""End to end, in separate processes: scoring processes export over OTLP (the released gRPC and
HTTP exporters) to `serve`; what it stores reads back identical to the in-process path. Also:
hostile input does not take the process down, and SIGTERM under load loses nothing acknowledged."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import fastavro
import grpc
import pandas as pd

import otel_collector_ext as oce
from tests.conftest import ROOT, python_env
from tests.support.helpers_otlp import deep_request, grpc_export, http_post, rows_request, zoo_frame
from tests.support.send_otlp import COLLECTIONS
from tests.support.service_process import ServeProcess

TOKEN = "e2e-token-1234"
COUNT = 1000


def sender(mode: str, target: str, deployment: str, *, token: str | None = None,
           count: int = COUNT, batch: int = 512) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tests.support.send_otlp", "--mode", mode, "--target", target,
            "--deployment", deployment, "--count", str(count), "--batch", str(batch)]
    if token:
        args += ["--token", token]
    return subprocess.Popen(args, cwd=ROOT, env=python_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen[str], timeout: float = 240) -> dict[str, int]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"{out}\n{err}"
    return json.loads(out.strip().splitlines()[-1])


def schemas(root: Path, deployment: str, collection: str) -> set[str]:
    found = set()
    for path in (root / "ep" / deployment / collection).rglob("*.avro"):
        with open(path, "rb") as f:
            found.add(json.dumps(fastavro.reader(f).writer_schema, sort_keys=True))
    return found


def loaded(root: Path, deployment: str, collection: str) -> pd.DataFrame:
    frame = oce.load(str(root), endpoint="ep", deployment=deployment, collection=collection)
    return frame.sort_values(["_correlation_id", "_row"], kind="stable").reset_index(drop=True)


def test_otlp_senders_store_what_in_process_stores(tmp_path: Path) -> None:
    store, reference = tmp_path / "served", tmp_path / "reference"
    serve = ServeProcess(tmp_path, store, receiver={"auth": {"bearer_token_env": "E2E_TOKEN"}},
                         env={"E2E_TOKEN": TOKEN})
    try:
        serve.wait_ready()
        # Hostile traffic first: clean refusals, and the process keeps serving.
        for body, headers in ((b"\xff\x00garbage", {}), (rows_request(3)[:-5], {}),
                              (gzip.compress(b"\x00" * 64 * 2**20), {"Content-Encoding": "gzip"}),
                              (deep_request(200), {})):
            status, _, _ = http_post(serve.http, body,
                                     headers={"Authorization": f"Bearer {TOKEN}", **headers})
            assert status in (400, 413)
        assert http_post(serve.http, rows_request(1))[0] == 401
        assert grpc_export(serve.grpc, rows_request(1))[0] is grpc.StatusCode.UNAUTHENTICATED
        assert grpc_export(serve.grpc, b"\xff\x00", token=TOKEN)[0] \
            is grpc.StatusCode.INVALID_ARGUMENT
        senders = [
            sender("grpc", f"http://127.0.0.1:{serve.grpc[1]}", "grpc", token=TOKEN),
            sender("http", f"http://127.0.0.1:{serve.http[1]}", "http", token=TOKEN),
            sender("avro", str(reference), "ref"),
        ]
        stats = [finished(p) for p in senders]
        exported = stats[0]["records.exported"]
        assert exported == stats[1]["records.exported"] > 2 * COUNT  # thousands, each way
        detail = serve.health_detail()
        assert detail["receivers"]["otlp"]["records_accepted"] == 2 * exported
        assert detail["receivers"]["otlp"]["records_rejected"] == 0
        serve.sigterm()
        assert serve.wait() == 0, serve.log()
    finally:
        serve.kill()
    for deployment in ("grpc", "http"):
        for collection in COLLECTIONS:
            want = loaded(reference, "ref", collection)
            got = loaded(store, deployment, collection)
            assert len(got) == len(want) > 0, (deployment, collection)
            assert list(got.columns) == list(want.columns)
            # Field by field: values, nulls, dtypes (timestamps, categorical, decimal, odd names).
            pd.testing.assert_frame_equal(got, want, check_exact=True)
            assert schemas(store, deployment, collection) == schemas(reference, "ref", collection)
    inputs = loaded(store, "grpc", "inputs")
    assert {"odd name/ü.x", "1st", "class", "segment", "amount", "local"} <= set(inputs.columns)
    assert inputs["local"].dtype == zoo_frame(0)["local"].dtype  # zone and unit kept
    assert isinstance(inputs["segment"].dtype, pd.CategoricalDtype)
    assert inputs["name"].isna().any() and inputs["amount"].isna().any()


class Load:
    """Sends requests of unique records until the server stops answering; keeps what was acked."""

    def __init__(self, serve: ServeProcess) -> None:
        self.serve = serve
        self.acked: set[str] = set()
        self.sent = 0
        self.lock = threading.Lock()
        self.done = threading.Event()

    def run(self, transport: str) -> None:
        failures, n = 0, 0
        while failures < 3 and not self.done.is_set():
            prefix = f"{transport}{n}"
            n += 1
            data = rows_request(50, prefix=prefix)
            try:
                if transport == "grpc":
                    ok = grpc_export(self.serve.grpc, data, timeout=10)[0] is grpc.StatusCode.OK
                else:
                    ok = http_post(self.serve.http, data, timeout=10)[0] == 200
            except OSError:
                ok = False
            with self.lock:
                self.sent += 50
                if ok:
                    self.acked.update(f"{prefix}-{k}" for k in range(50))
            failures = 0 if ok else failures + 1


def test_sigterm_under_load_keeps_everything_acknowledged(tmp_path: Path) -> None:
    store = tmp_path / "served"
    # Exports wait for 60 s or 100000 records: at SIGTERM, everything acknowledged is still
    # in memory, and only the shutdown's drain can store it.
    serve = ServeProcess(tmp_path, store, receiver={"max_records_per_request": 1000},
                         batch={"timeout": "60s", "send_batch_size": 100_000,
                                "max_queue_size": 200_000})
    load = Load(serve)
    threads = [threading.Thread(target=load.run, args=(t,), daemon=True) for t in ("grpc", "http")]
    try:
        serve.wait_ready()
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(load.acked) < 3000 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling a condition, with a deadline
        assert len(load.acked) >= 3000
        assert serve.health_detail()["exporters"]["avro"]["queued"] > 0
        serve.sigterm()
        assert serve.wait(60) == 0, serve.log()
        for thread in threads:
            thread.join(30)
    finally:
        load.done.set()
        serve.kill()
    stored = oce.load(str(store), endpoint="ep", deployment="dep", collection="inputs")
    ids = set(stored["_correlation_id"])
    missing = load.acked - ids
    assert not missing, f"{len(missing)} acknowledged records lost"
    assert len(stored) == len(ids)  # nothing stored twice
    assert "received SIGTERM" in serve.log() and "stopped" in serve.log()


def test_released_exporters_back_off_when_the_queue_is_full(tmp_path: Path) -> None:
    store = tmp_path / "served"
    # A 200-record queue emptied once a second; each sender's ~740 records come in
    # 100-record requests, two of which fill it: requests are refused (UNAVAILABLE +
    # RetryInfo, 503 + Retry-After) until the queue drains, and the senders retry.
    serve = ServeProcess(tmp_path, store, receiver={"max_records_per_request": 100},
                         batch={"max_queue_size": 200, "send_batch_size": 100_000,
                                "timeout": "1s"})
    try:
        serve.wait_ready()
        senders = [sender("grpc", f"http://127.0.0.1:{serve.grpc[1]}", "grpc", count=300,
                          batch=100),
                   sender("http", f"http://127.0.0.1:{serve.http[1]}", "http", count=300,
                          batch=100)]
        stats = [finished(p) for p in senders]  # exit 0: nothing dropped on the scoring side
        busy = serve.health_detail()["receivers"]["otlp"]["requests_busy"]
        assert busy > 0, "the queue never filled: the test proves nothing"
        serve.sigterm()
        assert serve.wait() == 0, serve.log()
    finally:
        serve.kill()
    for deployment, sent in zip(("grpc", "http"), stats, strict=True):
        stored = sum(len(loaded(store, deployment, c)) for c in ("outputs",))
        assert stored == sent["records.collected{collection=outputs}"]
        assert sent["records.exported"] == sum(
            v for k, v in sent.items() if k.startswith("records.collected"))
