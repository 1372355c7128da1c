"""Shared fixtures: a pipeline writing to a temporary folder, and subprocess helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import otel_collector_ext as oce

ROOT = Path(__file__).resolve().parent.parent


def local_config(destination: Path, **overrides: Any) -> dict[str, Any]:
    """A configuration writing Avro files under `destination`, exporting promptly."""
    config: dict[str, Any] = {
        "endpoint": "ep",
        "deployment": "blue",
        "model_version": "7",
        "instance_id": "test-instance",
        "exporter": {"type": "avro", "destination": str(destination)},
        "batch": {"schedule_delay_millis": 50},
    }
    config.update(overrides)
    return config


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "collected"


@pytest.fixture
def pipeline(data_dir: Path) -> Iterator[oce.pipeline.wiring.Pipeline]:
    """The process pipeline configured for `data_dir`; shut down after the test."""
    yield oce.configure(local_config(data_dir))
    oce.shutdown()


@pytest.fixture(autouse=True, scope="session")
def _wal_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`serve`'s write-ahead logs (in-process and child services) under the test's temp dir."""
    os.environ["OTEL_COLLECTOR_EXT_WAL_DIR"] = str(tmp_path_factory.mktemp("wal"))
    yield
    os.environ.pop("OTEL_COLLECTOR_EXT_WAL_DIR", None)


@pytest.fixture(autouse=True)
def _no_leftover_pipeline() -> Iterator[None]:
    """Each test starts as a fresh process would: no pipeline, no counts, not shut down."""
    yield
    oce.shutdown()
    oce.pipeline.wiring._stopped = False
    oce.pipeline.wiring._start_failure = None
    oce.pipeline.wiring._retired.clear()


def python_env(**extra: str) -> dict[str, str]:
    """Environment for a child Python process that imports this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_python(code: str, *, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter; returns the finished process (output captured)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=python_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Starts `serve` processes storing under tmp_path/store (ready when returned); killed after."""
    from tests.support.service_process import ServeProcess  # it imports this module

    started: list[ServeProcess] = []

    def _start(**options: Any) -> ServeProcess:
        process = ServeProcess(tmp_path, tmp_path / "store", **options)
        started.append(process)
        process.wait_ready()
        return process

    yield _start
    for process in started:
        process.kill()
