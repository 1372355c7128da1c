"""Correlation contexts, and an Azure ML scoring script that changed one import."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import otel_collector_ext as oce
from otel_collector_ext import BasicCorrelationContext, Collector, correlation_scope
from otel_collector_ext.scoring.context import current_context
from tests.conftest import ROOT, run_python


def test_basic_context_matches_azure_sdk() -> None:
    ctx = BasicCorrelationContext()
    assert uuid.UUID(ctx.get_id()).version == 4
    assert isinstance(ctx.get_timestamp(), int) and ctx.get_headers() == {}
    given = BasicCorrelationContext(id="req-1", timestamp=1_700_000_000, headers={"a": "b"})
    assert (given.get_id(), given.get_timestamp(), given.get_headers()) == (
        "req-1", 1_700_000_000, {"a": "b"})
    ids = {BasicCorrelationContext().get_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    for cid in list(ids)[:200]:
        parsed = uuid.UUID(cid)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_forked_child_makes_ids_of_its_own() -> None:
    # Ids come from a seeded generator, not a system call each: a forked child (gunicorn
    # workers) must not repeat its parent's sequence.
    done = run_python(
        "import json, os\n"
        "from otel_collector_ext.scoring.context import new_correlation_id\n"
        "new_correlation_id()\n"
        "read, write = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.write(write, json.dumps([new_correlation_id() for _ in range(3)]).encode())\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print(json.dumps([json.loads(os.read(read, 4096)), "
        "[new_correlation_id() for _ in range(3)]]))\n")
    assert done.returncode == 0, done.stderr
    child, parent = json.loads(done.stdout)
    assert len(set(child) | set(parent)) == 6
    assert all(uuid.UUID(i).version == 4 for i in child + parent)


def test_foreign_context_objects_work(pipeline: object, data_dir: Path) -> None:
    class AzureStyle:  # any object with the three getters, as Azure's SDK accepts
        def get_id(self) -> str:
            return "foreign-1"

        def get_timestamp(self) -> int:
            return 1_700_000_000

        def get_headers(self) -> dict:
            return {}

    Collector(name="c").collect({"a": 1}, AzureStyle())  # type: ignore[arg-type]
    assert oce.flush()
    got = oce.load(str(data_dir), endpoint="ep", deployment="blue", collection="c")
    assert got["_correlation_id"].tolist() == ["foreign-1"]
    assert str(got["_time"][0]) == "2023-11-14 22:13:20+00:00"


def test_current_context_is_shared_without_passing_it(pipeline: object, data_dir: Path) -> None:
    request = BasicCorrelationContext(id="request-42")
    seen: list[str] = []
    with correlation_scope(request):
        assert Collector(name="model_inputs").collect({"a": 1}) is request
        worker = threading.Thread(target=lambda: seen.append(str(current_context())))
        worker.start()
        worker.join()
    assert current_context() is None
    assert seen == ["None"]  # plain threads do not inherit contextvars; documented
    assert oce.flush()
    got = oce.load(str(data_dir), endpoint="ep", deployment="blue", collection="model_inputs")
    assert got["_correlation_id"].tolist() == ["request-42"]


def test_azureml_script_runs_with_one_import_changed(tmp_path: Path) -> None:
    source = (ROOT / "examples" / "azureml_score.py").read_text()
    assert "from otel_collector_ext import Collector" in source
    original = source.replace("from otel_collector_ext import Collector",
                              "from azureml.ai.monitoring import Collector")
    assert original.count("otel_collector_ext") == 0  # the import was the only difference
    payload = json.dumps({"data": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]})
    code = f"""
import sys, json
sys.path.insert(0, {str(ROOT / "examples")!r})
import azureml_score
azureml_score.init()
print(azureml_score.run({payload!r}))
"""
    done = run_python(code, OTEL_COLLECTOR_EXT_DESTINATION=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [{"score": 0.3}, {"score": 0.7}]
    inputs = oce.load(str(tmp_path), endpoint="default", deployment="default",
                      collection="model_inputs")
    outputs = oce.load(str(tmp_path), endpoint="default", deployment="default",
                       collection="model_outputs")
    assert inputs["a"].tolist() == [1, 3] and outputs["score"].tolist() == [0.3, 0.7]
    assert set(inputs["_correlation_id"]) == set(outputs["_correlation_id"])
