"""What a newcomer runs from the README, run as they would: the demo (twice), the commands
it prints in a new shell, the shipped OTLP sender against `serve`, `serve` on a port in
use, and the examples with their documented commands and configurations."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

import otel_collector_ext as oce
from tests.conftest import ROOT, python_env
from tests.support.helpers_otlp import free_port
from tests.support.service_process import ServeProcess

VENV_BIN = Path(sys.executable).parent


def new_shell(command: str, cwd: Path, *, activated: bool, **env: str
              ) -> subprocess.CompletedProcess[str]:
    """`command` in a fresh bash with a clean environment, the venv on PATH or not."""
    path = f"{VENV_BIN}:/usr/bin:/bin" if activated else "/usr/bin:/bin"
    clean = {"HOME": os.environ.get("HOME", "/root"), "PATH": path, "PYTHONPATH": str(ROOT),
             **env}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=clean, capture_output=True,
                          text=True, timeout=180)


def demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "otel_collector_ext", "demo", "--requests",
                           "40", *args], cwd=cwd, env=python_env(), capture_output=True,
                          text=True, timeout=180)


def test_demo_starts_fresh_and_its_next_steps_work_as_printed(tmp_path: Path) -> None:
    first = demo(tmp_path)
    assert first.returncode == 0, first.stderr
    files = len(list((tmp_path / "demo-data").rglob("*.avro")))
    second = demo(tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Removed the previous demo's data" in second.stdout
    # The same requests again: as many files and rows as the first time, not twice as many.
    assert len(list((tmp_path / "demo-data").rglob("*.avro"))) == files

    def summary(run: subprocess.CompletedProcess[str]) -> str:
        return next(line for line in run.stdout.splitlines() if line.endswith(" joined"))

    assert summary(second) == summary(first)
    rows = oce.load(str(tmp_path / "demo-data"), endpoint="credit-endpoint", deployment="blue",
                    collection="model_inputs")
    assert rows["_correlation_id"].nunique() == 40
    # The closing hints, pasted into a new shell (venv not activated): they work.
    hints = [line.strip() for line in second.stdout.splitlines()
             if line.startswith("  ") and " -d demo-data" in line]
    assert len(hints) == 3, second.stdout
    for hint in hints:
        done = new_shell(hint, tmp_path, activated=False)
        # monitor's 1 says a threshold was breached; 40 requests are too few for a verdict.
        assert done.returncode == 0, f"{hint}\n{done.stderr}"
    assert (tmp_path / "report.html").stat().st_size > 0
    assert "insufficient data" in (tmp_path / "monitor.html").read_text()


def test_demo_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep me")
    done = demo(tmp_path, "--dir", str(mine))
    assert done.returncode != 0 and "was not written by the demo" in done.stderr
    assert (mine / "precious.txt").read_text() == "keep me"
    assert not list(mine.rglob("*.avro"))


def test_the_shipped_sender_reaches_serve_and_serve_says_where_it_writes(tmp_path: Path) -> None:
    store = tmp_path / "collected"
    serve = ServeProcess(tmp_path, store)
    try:
        serve.wait_ready()
        # The shipped scoring configuration, pointed at this test's serve.
        config = yaml.safe_load((ROOT / "configs" / "otlp-scoring.yaml").read_text())
        config["exporter"]["endpoint"] = f"http://127.0.0.1:{serve.grpc[1]}"
        scoring = tmp_path / "otlp-scoring.yaml"
        scoring.write_text(yaml.safe_dump(config))
        done = new_shell(f"OTEL_COLLECTOR_EXT_CONFIG={scoring} python "
                         f"{ROOT / 'examples' / 'otlp_score.py'} --requests 120", tmp_path,
                         activated=True)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "scored 120 requests; 240 records sent" in done.stdout
    finally:
        assert serve.stop() == 0
    assert f"exporter avro writes to file://{store}" in serve.log()
    for collection in ("model_inputs", "model_outputs"):
        frame = oce.load(str(store), endpoint="my-endpoint", deployment="blue",
                         collection=collection)
        assert frame["_correlation_id"].nunique() == 120


def test_the_sender_says_when_serve_is_not_there(tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "configs" / "otlp-scoring.yaml").read_text())
    config["exporter"].update(endpoint=f"http://127.0.0.1:{free_port()}", timeout=2)
    scoring = tmp_path / "otlp-scoring.yaml"
    scoring.write_text(yaml.safe_dump(config))
    done = new_shell(f"OTEL_COLLECTOR_EXT_CONFIG={scoring} python "
                     f"{ROOT / 'examples' / 'otlp_score.py'} --requests 5", tmp_path,
                     activated=True)
    assert done.returncode == 1 and "NOT delivered (is serve running?)" in done.stdout


def test_serve_on_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for protocol in ("grpc", "http"):
            other = "http" if protocol == "grpc" else "grpc"
            config = {
                "receivers": {"otlp": {"protocols": {
                    protocol: {"endpoint": f"127.0.0.1:{port}"},
                    other: {"endpoint": f"127.0.0.1:{free_port()}"}}}},
                "exporters": {"avro": {"destination": str(tmp_path / "out")}},
                "service": {"pipelines": {"logs": {"receivers": ["otlp"],
                                                   "exporters": ["avro"]}}},
            }
            path = tmp_path / f"{protocol}.yaml"
            path.write_text(yaml.safe_dump(config))
            done = new_shell(f"python -m otel_collector_ext serve --config {path}", tmp_path,
                             activated=True)
            assert done.returncode == 2, done.stderr
            assert done.stderr == (f"otel-collector-ext serve: cannot listen on 127.0.0.1:{port} "
                                   f"(otlp/{protocol}): address already in use; is another serve "
                                   "(or another program) using it?\n"), done.stderr


def test_fastapi_example_as_documented_never_records_health_probes(tmp_path: Path) -> None:
    port = free_port()
    config = ROOT / "configs" / "payload-logging.yaml"
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--port", str(port)],
        cwd=tmp_path, env=python_env(OTEL_COLLECTOR_EXT_CONFIG=str(config)),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and server.poll() is None, "no uvicorn"
                time.sleep(0.05)  # polling a condition, with a deadline
            for _ in range(3):
                assert client.get("/health").status_code == 200
            scored = client.post("/score", json={"columns": ["age", "income", "debt"],
                                                 "data": [[30, 5.0, 1.0]]})
            assert scored.status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    requests = oce.load(str(tmp_path / "collected"), endpoint="example", deployment="blue",
                        collection="request")
    assert requests["path"].tolist() == ["/score"], output


def test_azureml_example_runs_as_documented(tmp_path: Path) -> None:
    done = new_shell(f"OTEL_COLLECTOR_EXT_CONFIG={ROOT / 'configs' / 'local.yaml'} "
                     f"python {ROOT / 'examples' / 'azureml_score.py'}", tmp_path, activated=True)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout.strip().splitlines()[-1])) == 2
    inputs = oce.load(str(tmp_path / "collected"), endpoint="my-endpoint", deployment="blue",
                      collection="model_inputs")
    assert inputs["age"].tolist() == [31, 45]
