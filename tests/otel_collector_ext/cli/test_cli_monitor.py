"""`otel-collector-ext monitor` in a real child process: exit codes 0, 1 and 2 (3 when the
data cannot be read), the JSON result against its published schema, the HTML report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import python_env
from tests.support.monitoring_data import collect, hourly, make_frame

ROOT = Path(__file__).parents[3]
SCHEMA = json.loads((ROOT / "docs" / "monitoring.schema.json").read_text())


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli_monitor")
    collect(root, hourly(4, 1000, seed=7, drift_from=2))
    make_frame(3000, 8).to_csv(root / "train.csv", index=False)
    return root


def monitor(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "otel_collector_ext", "monitor", "-d", str(data), "-e", "ep",
         "-p", "blue", *args], cwd=ROOT, env=python_env(), capture_output=True, text=True,
        timeout=120)


def test_exit_0_when_nothing_is_breached_and_1_when_something_is(data, tmp_path):
    ok_json, bad_json, report = tmp_path / "ok.json", tmp_path / "bad.json", tmp_path / "r.html"
    ok = monitor(data, "--reference", str(data / "train.csv"), "--start", "2026-03-01T00:00",
                 "--end", "2026-03-01T02:00", "--json", str(ok_json))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: 0 of 7 features drifted")
    document = json.loads(ok_json.read_text())
    jsonschema.validate(document, SCHEMA)
    assert document["breached"] is False

    bad = monitor(data, "--reference", str(data / "train.csv"), "--start", "2026-03-01T02:00",
                  "--end", "2026-03-01T04:00", "--json", str(bad_json), "--report", str(report),
                  "-c", "model_inputs")
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.startswith("BREACHED: 2 of 5 features drifted")
    assert "income" in bad.stdout and "normalized_wasserstein_distance" in bad.stdout
    document = json.loads(bad_json.read_text())
    jsonschema.validate(document, SCHEMA)
    assert {s["feature"] for s in document["signals"] if s["status"] == "breached"
            and s["signal"] == "data_drift"} == {"income", "country"}
    page = report.read_text()
    assert 'data-breached="true"' in page and "2 of 5 features drifted" in page


def test_a_reference_window_and_json_on_stdout(data):
    done = monitor(data, "--reference-start", "2026-03-01T00:00", "--reference-end",
                   "2026-03-01T02:00", "--start", "2026-03-01T02:00", "--end",
                   "2026-03-01T04:00", "--json", "-")
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)  # stdout holds the JSON only
    jsonschema.validate(document, SCHEMA)
    assert document["reference"]["kind"] == "window"


@pytest.mark.parametrize(("args", "message"), [
    ([], "no reference: give --reference FILE"),
    (["--reference", "train.csv", "--reference-start", "2026-03-01"], "not both"),
    (["--reference-start", "2026-03-01"], "needs both --reference-start and --reference-end"),
    (["--reference", "/no/such.parquet"], "does not exist"),
    (["--reference", "train.csv", "--start", "not a time"], "invalid --start"),
    (["--reference", "train.csv", "--config", "/no/monitor.yaml"], "does not exist"),
    (["--reference", "train.csv", "--config", "bad.yaml"],
     "unknown key monitoring.signal (did you mean signals?"),
    (["--reference", "train.csv", "-c", "../../etc"], "no collection '../../etc'"),
    (["--reference", "train.csv", "--json", "."], "is a folder"),
])
def test_exit_2_for_usage_and_configuration_errors(data, args, message):
    (data / "bad.yaml").write_text("monitoring:\n  signal: {}\n")
    args = [str(data / a) if a in ("train.csv", "bad.yaml") else a for a in args]
    done = monitor(data, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1


def test_exit_3_when_the_collected_data_cannot_be_read(data):
    """A Blob endpoint where nothing listens (loopback, closed port)."""
    connection = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey="
                  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
                  "KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;")
    done = subprocess.run(
        [sys.executable, "-m", "otel_collector_ext", "monitor", "-d", "az://nothing",
         "--connection-string", connection, "-e", "ep", "-p", "blue", "--reference",
         str(data / "train.csv")], cwd=ROOT, env=python_env(), capture_output=True, text=True,
        timeout=120)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "cannot read the collected data" in done.stderr and "Traceback" not in done.stderr
