"""`serve` applies the collection schema rules too: the same randomized rows through a real
`serve` process (over OTLP, ints as ints) and in-process give identical schemas and values,
whatever the batching on either side."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

import otel_collector_ext as oce
from exporters.avro.schema_store import read_latest
from exporters.storage import open_storage
from tests.conftest import ROOT, python_env
from tests.support.service_process import ServeProcess

REPETITIONS = 20


def _number(rng: random.Random) -> Any:
    r = rng.random()
    if r < 0.2:
        return None
    return rng.randint(-10**6, 10**6) if r < 0.6 else round(rng.uniform(-1e3, 1e3), 3)


def _runs(rng: random.Random) -> list[dict[str, Any]]:
    runs = []
    for k in range(REPETITIONS):
        n = rng.randint(1, 30)
        rows = [{"income": _number(rng), "score": _number(rng),
                 "flag": rng.choice([True, False, None]), "label": rng.choice(["a", "", None])}
                for _ in range(n)]
        runs.append({"deployment": f"rep{k}", "rows": rows, "batch": rng.randint(1, 8),
                     "flush_after": sorted(rng.sample(range(n), rng.randint(0, n)))})
    return runs


def _send(tmp: Path, name: str, exporter: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    plan = tmp / f"{name}.json"
    plan.write_text(json.dumps({"exporter": exporter, "runs": runs}))
    done = subprocess.run([sys.executable, "-m", "tests.support.send_rows", str(plan)], cwd=ROOT,
                          env=python_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _loaded(root: Path, deployment: str) -> pd.DataFrame:
    frame = oce.load(str(root), endpoint="ep", deployment=deployment, collection="rows")
    return frame.sort_values("_correlation_id", kind="stable").reset_index(drop=True)


def test_serve_and_in_process_write_identical_schemas_whatever_the_batching(
        tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    served, reference = tmp_path / "served", tmp_path / "reference"
    # serve cuts batches of its own: small ones, and on a short timer.
    serve = ServeProcess(tmp_path, served, batch={"timeout": "20ms", "send_batch_size": 5})
    try:
        serve.wait_ready()
        otlp = {"type": "otlp", "endpoint": f"http://127.0.0.1:{serve.http[1]}",
                "protocol": "http/protobuf", "timeout": 30}
        runs = _runs(rng)
        _send(tmp_path, "otlp", otlp, runs)
        # In-process, the same rows cut into other batches.
        for run in runs:
            run["batch"] = rng.randint(1, 8)
            run["flush_after"] = sorted(rng.sample(range(len(run["rows"])),
                                                   rng.randint(0, len(run["rows"]))))
        _send(tmp_path, "avro", {"type": "avro", "destination": str(reference)}, runs)
        serve.sigterm()  # drains: everything acknowledged is stored once it exits
        assert serve.wait() == 0, serve.log()
    finally:
        serve.kill()
    got_store, want_store = open_storage(str(served)), open_storage(str(reference))
    for run in runs:
        prefix = f"ep/{run['deployment']}/rows/"
        want = read_latest(want_store, prefix)
        assert want is not None and read_latest(got_store, prefix) == want, (seed, run)
        pd.testing.assert_frame_equal(_loaded(served, run["deployment"]),
                                      _loaded(reference, run["deployment"]), check_exact=True)
        income = {f["name"]: f for f in want["fields"]}.get("income")
        numbers = [r["income"] for r in run["rows"] if r["income"] is not None]
        if income is not None:  # ints stay ints unless a float came: then double, once
            wanted = "double" if any(isinstance(v, float) for v in numbers) else "long"
            assert income["type"] == ["null", wanted], (seed, run)
