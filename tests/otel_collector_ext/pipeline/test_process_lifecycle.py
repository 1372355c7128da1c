"""Processes: a forked child keeps collecting; the demo command runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import otel_collector_ext as oce
from tests.conftest import ROOT, python_env, run_python


def test_forked_child_gets_its_own_export_thread(tmp_path: Path) -> None:
    code = f"""
import os
import otel_collector_ext as oce
oce.configure({{"exporter": {{"type": "avro", "destination": {str(tmp_path)!r}}},
               "instance_id": "parent"}})
c = oce.Collector(name="forked")
c.collect({{"who": "parent"}})
pid = os.fork()
if pid == 0:
    c.collect({{"who": "child"}})
    ok = oce.flush(20_000)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
oce.flush()
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    got = oce.load(str(tmp_path), endpoint="default", deployment="default", collection="forked")
    assert sorted(got["who"]) == ["child", "parent"]


def test_demo_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "otel_collector_ext", "demo", "--requests", "400",
         "--dir", str(tmp_path / "demo")],
        cwd=ROOT, env=python_env(), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Rows per collection and hour" in out and "joined" in out
    files = list((tmp_path / "demo").rglob("*.avro"))
    assert len(files) >= 4  # two collections over at least two hourly partitions
    inputs = oce.load(str(tmp_path / "demo"), endpoint="credit-endpoint", deployment="blue",
                      collection="model_inputs")
    assert f"{len(inputs)} input rows, {len(inputs)} output rows, {len(inputs)} joined" in out


def test_cli_without_command_prints_help() -> None:
    done = subprocess.run([sys.executable, "-m", "otel_collector_ext"], cwd=ROOT,
                          env=python_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "demo" in done.stdout


def test_sigterm_drains_the_queue_before_the_process_dies(tmp_path: Path) -> None:
    code = f"""
import os, signal, sys
import otel_collector_ext as oce
oce.configure({{"exporter": {{"type": "avro", "destination": {str(tmp_path)!r}}},
               "batch": {{"schedule_delay_millis": 3600000}}}})
c = oce.Collector(name="terminated")
for i in range(500):
    c.collect({{"i": i}})
os.kill(os.getpid(), signal.SIGTERM)  # as Kubernetes does; the default action skips atexit
signal.pause()
"""
    done = run_python(code)
    assert done.returncode == -15, done.stderr  # still dies of SIGTERM
    got = oce.load(str(tmp_path), endpoint="default", deployment="default",
                   collection="terminated")
    assert sorted(got["i"]) == list(range(500))


@pytest.mark.parametrize("ending", ["sigterm", "normal exit"])
def test_a_pipeline_built_in_another_thread_is_drained(tmp_path: Path, ending: str) -> None:
    # As under `flask run`: the first collect (which builds the pipeline) is in a request
    # thread, where no signal handler can be set.
    code = f"""
import os, signal, threading
import otel_collector_ext as oce
def serve():
    oce.configure({{"exporter": {{"type": "avro", "destination": {str(tmp_path)!r}}},
                   "batch": {{"schedule_delay_millis": 3600000}}}})
    c = oce.Collector(name="threaded")
    for i in range(300):
        c.collect({{"i": i}})
worker = threading.Thread(target=serve)
worker.start()
worker.join()
if {ending == "sigterm"}:
    os.kill(os.getpid(), signal.SIGTERM)
    signal.pause()
"""
    done = run_python(code)
    assert done.returncode == (-15 if ending == "sigterm" else 0), done.stderr
    got = oce.load(str(tmp_path), endpoint="default", deployment="default", collection="threaded")
    assert sorted(got["i"]) == list(range(300))


def test_an_application_sigterm_handler_is_left_alone(tmp_path: Path) -> None:
    code = f"""
import os, signal
import otel_collector_ext as oce
def mine(signum, frame):
    print("app handler ran", flush=True)
    os._exit(7)
signal.signal(signal.SIGTERM, mine)
oce.configure({{"exporter": {{"type": "avro", "destination": {str(tmp_path)!r}}}}})
oce.Collector(name="x").collect({{"i": 1}})
os.kill(os.getpid(), signal.SIGTERM)
signal.pause()
"""
    done = run_python(code)
    assert done.returncode == 7 and "app handler ran" in done.stdout


def test_console_exporter_swapped_in_by_config() -> None:
    code = """
import pandas as pd
import otel_collector_ext as oce
c = oce.Collector(name="model_inputs")
c.collect(pd.DataFrame({"a": [1, 2]}))
c.collect("x" * 1000)
oce.flush()
"""
    done = run_python(code, OTEL_COLLECTOR_EXT_CONFIG=str(ROOT / "configs" / "console.yaml"))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [line["event_name"] for line in lines] == ["ml.inference.model_inputs"] * 2
    assert lines[0]["body"] == {"type": "DataFrame", "shape": [2, 1]}
    assert lines[1]["body"].endswith("…") and len(lines[1]["body"]) == 201
    assert lines[0]["attributes"]["ml.inference.endpoint"] == "my-endpoint"
