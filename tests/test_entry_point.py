"""`OTEL_LOGS_EXPORTER=avro opentelemetry-instrument …`: the exporter found by entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import otel_collector_ext as oce
from exporters.avro.exporter import AvroLogExporter
from tests.conftest import ROOT, python_env

SCRIPT = """
from opentelemetry._logs import get_logger_provider
logger = get_logger_provider().get_logger("scoring")
for i in range(25):
    logger.emit(body={"a": i, "b": "x"}, event_name="ml.inference.model_inputs",
                attributes={"ml.inference.collection": "model_inputs",
                            "ml.inference.payload_kind": "row",
                            "ml.inference.correlation_id": f"id-{i}",
                            "ml.inference.endpoint": "ep", "ml.inference.deployment": "d"})
logger.emit(body="an ordinary application log line")  # not ours: skipped, not an error
"""


def test_entry_point_is_registered() -> None:
    (found,) = [e for e in entry_points(group="opentelemetry_logs_exporter") if e.name == "avro"]
    assert found.load() is AvroLogExporter


def test_auto_instrumentation_writes_avro(tmp_path: Path) -> None:
    # The interpreter's own scripts folder first: the test venv's PATH is not activated.
    beside = Path(sys.executable).parent / "opentelemetry-instrument"
    instrument = str(beside) if beside.exists() else shutil.which("opentelemetry-instrument")
    assert instrument, "opentelemetry-instrument (opentelemetry-distro) is a test dependency"
    script = tmp_path / "score.py"
    script.write_text(SCRIPT)
    env = python_env(OTEL_LOGS_EXPORTER="avro", OTEL_TRACES_EXPORTER="none",
                     OTEL_METRICS_EXPORTER="none",
                     OTEL_COLLECTOR_EXT_DESTINATION=str(tmp_path / "out"),
                     OTEL_COLLECTOR_EXT_AVRO_CODEC="null")
    done = subprocess.run([instrument, sys.executable, str(script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = oce.load(str(tmp_path / "out"), endpoint="ep", deployment="d", collection="model_inputs")
    assert sorted(got["a"]) == list(range(25)) and set(got["b"]) == {"x"}
