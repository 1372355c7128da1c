"""The lower layer stands alone: loading an exporter imports nothing of otel_collector_ext.

import-linter checks the imports it can see (pyproject.toml); this checks what really
gets imported, lazy imports included, when OpenTelemetry loads the entry points.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_python

CODE = """
import json, sys
from importlib.metadata import entry_points
from exporters.registry import create_exporter
for entry in entry_points(group="opentelemetry_logs_exporter"):
    if entry.value.startswith("exporters."):
        entry.load()
exporter = create_exporter({"type": "avro", "destination": sys.argv[1]})
exporter.shutdown()
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "otel_collector_ext")))
"""


def test_loading_the_exporters_imports_no_upper_layer_module(tmp_path: Path) -> None:
    done = run_python(CODE.replace("sys.argv[1]", repr(str(tmp_path))))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
