"""Ordinary application logs (no `ml.inference.*` attributes) are never dropped silently.

`serve` answers them with OTLP partial success and logs why; the avro exporter option
`other_logs_collection` keeps them as JSON payload records. The same holds for the avro
exporter in an application run by `opentelemetry-instrument`. Senders are the stock
OpenTelemetry Python `LoggingHandler` and OTLP exporters, in processes of their own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource

import otel_collector_ext as oce
from tests.conftest import ROOT, python_env
from tests.support.helpers_otlp import grpc_export, http_post, rows_request
from tests.support.service_process import ServeProcess

LINES = 30

# An application that knows nothing of this project: stdlib logging, the SDK's
# LoggingHandler, the released OTLP exporter.
APP = """
import logging, sys
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
protocol, endpoint, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    exporter = OTLPLogExporter(endpoint=endpoint, insecure=True)
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    exporter = OTLPLogExporter(endpoint=endpoint + "/v1/logs")
provider = LoggerProvider(resource=Resource({"service.name": "billing"}))
provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
log = logging.getLogger("billing")
log.addHandler(LoggingHandler(logger_provider=provider))
log.setLevel(logging.INFO)
for i in range(count):
    log.warning("invoice %d is late", i, extra={"invoice": i})
provider.shutdown()
"""


def run_app(protocol: str, endpoint: str, count: int = LINES) -> None:
    done = subprocess.run([sys.executable, "-c", APP, protocol, endpoint, str(count)], cwd=ROOT,
                          env=python_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def ordinary_request(n: int) -> bytes:
    resource = Resource({"service.name": "billing"})
    return encode_logs([
        ReadableLogRecord(LogRecord(timestamp=time.time_ns(), body=f"line {k}",
                                    severity_text="INFO", severity_number=SeverityNumber.INFO),
                          resource)
        for k in range(n)
    ]).SerializeToString()


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)  # polling a condition, with a deadline
    raise AssertionError(f"timed out waiting for {what}")


def rejected_not_inference(serve: ServeProcess) -> int:
    return serve.health_detail()["receivers"]["otlp"].get("records_rejected_not_inference", 0)


def test_serve_answers_ordinary_logs_with_partial_success_and_says_why(tmp_path: Path) -> None:
    store = tmp_path / "store"
    serve = ServeProcess(tmp_path, store)
    try:
        serve.wait_ready()
        # The stock handler and exporters, over both transports: nothing stored, counted.
        run_app("grpc", f"http://127.0.0.1:{serve.grpc[1]}")
        run_app("http", f"http://127.0.0.1:{serve.http[1]}")
        wait_for(lambda: rejected_not_inference(serve) == 2 * LINES, "the rejections counted")
        # The answer itself: partial success with the count and the reason.
        code, _, _, raw = grpc_export(serve.grpc, ordinary_request(4))
        assert code is grpc.StatusCode.OK
        partial = ExportLogsServiceResponse.FromString(raw).partial_success
        assert partial.rejected_log_records == 4
        assert "ml.inference.collection" in partial.error_message
        status, _, raw = http_post(serve.http, ordinary_request(3))
        assert status == 200
        assert ExportLogsServiceResponse.FromString(raw).partial_success.rejected_log_records == 3
        # Inference records in the same service still get a plain success and are stored.
        code, _, _, raw = grpc_export(serve.grpc, rows_request(5))
        assert code is grpc.StatusCode.OK
        assert not ExportLogsServiceResponse.FromString(raw).HasField("partial_success")
    finally:
        assert serve.stop() == 0
    log = serve.log()
    assert "rejected" in log and "without the ml.inference.collection attribute" in log
    assert "other_logs_collection" in log  # says how to keep them
    # Rate-limited: one line for the first request, not one per request.
    assert log.count("without the ml.inference.collection attribute") == 1, log
    assert not list(store.rglob("billing*")) and len(list(store.rglob("*.avro"))) == 1


def test_serve_keeps_ordinary_logs_in_the_named_collection(tmp_path: Path) -> None:
    store = tmp_path / "store"
    serve = ServeProcess(tmp_path, store, exporter={"other_logs_collection": "app_logs"})
    try:
        serve.wait_ready()
        run_app("http", f"http://127.0.0.1:{serve.http[1]}")
        status, _, raw = http_post(serve.http, ordinary_request(2))
        assert status == 200
        assert not ExportLogsServiceResponse.FromString(raw).HasField("partial_success")
    finally:
        assert serve.stop() == 0
    assert rejected_count_in_log(serve.log()) == 0
    frame = oce.load(str(store), endpoint="default", deployment="default", collection="app_logs")
    documents = [json.loads(b) for b in frame["body"]]
    lines = sorted(d["body"] for d in documents if d["body"].startswith("invoice"))
    assert lines == sorted(f"invoice {i} is late" for i in range(LINES))
    invoice = next(d for d in documents if d["body"] == "invoice 7 is late")
    assert invoice["severity_text"] == "WARN" and invoice["severity_number"] == 13
    assert invoice["attributes"]["invoice"] == 7
    assert invoice["resource"]["service.name"] == "billing"
    assert set(frame["content_type"]) == {"application/json"}


def rejected_count_in_log(log: str) -> int:
    return log.count("without the ml.inference.collection attribute")


LOGGING_APP = """
import logging
logging.basicConfig(level=logging.INFO)
for i in range(12):
    logging.getLogger("app").warning("order %d shipped", i)
"""


def instrumented(tmp_path: Path, script: Path | None = None, **env: str
                 ) -> subprocess.CompletedProcess[str]:
    beside = Path(sys.executable).parent / "opentelemetry-instrument"
    instrument = str(beside) if beside.exists() else shutil.which("opentelemetry-instrument")
    assert instrument, "opentelemetry-instrument comes with the [instrument] extra"
    if script is None:
        script = tmp_path / "app.py"
        script.write_text(LOGGING_APP)
    done = subprocess.run(
        [instrument, sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True,
        timeout=120, env=python_env(OTEL_LOGS_EXPORTER="avro", OTEL_TRACES_EXPORTER="none",
                                    OTEL_METRICS_EXPORTER="none",
                                    OTEL_COLLECTOR_EXT_DESTINATION=str(tmp_path / "out"), **env))
    assert done.returncode == 0, done.stderr
    return done


def test_instrumented_app_is_told_when_its_logs_are_not_stored(tmp_path: Path) -> None:
    # No logging handler installed: no record reaches the exporter, which says so at exit.
    quiet = instrumented(tmp_path)
    assert "the avro exporter received no log records" in quiet.stderr
    assert "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED" in quiet.stderr
    # Records reach it but are not inference records: skipped, and said once.
    skipped = instrumented(tmp_path, OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true")
    assert skipped.stderr.count("skipped a log record without the ml.inference.collection") == 1
    assert "OTEL_COLLECTOR_EXT_AVRO_OTHER_LOGS_COLLECTION" in skipped.stderr
    assert not list((tmp_path / "out").rglob("*.avro"))


def test_instrumented_app_keeps_its_logs_when_asked(tmp_path: Path) -> None:
    instrumented(tmp_path, OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
                 OTEL_COLLECTOR_EXT_AVRO_OTHER_LOGS_COLLECTION="app_logs")
    frame = oce.load(str(tmp_path / "out"), endpoint="default", deployment="default",
                     collection="app_logs")
    bodies = sorted(json.loads(b)["body"] for b in frame["body"])
    assert bodies == sorted(f"order {i} shipped" for i in range(12))


def test_the_documented_otel_logs_example_stores_inputs_and_keeps_its_log_lines(
        tmp_path: Path) -> None:
    instrumented(tmp_path, ROOT / "examples" / "otel_logs_app.py",
                 OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED="true",
                 OTEL_COLLECTOR_EXT_AVRO_OTHER_LOGS_COLLECTION="app_logs")
    inputs = oce.load(str(tmp_path / "out"), endpoint="credit-endpoint", deployment="blue",
                      collection="model_inputs")
    assert sorted(inputs["age"]) == list(range(30, 40))
    lines = oce.load(str(tmp_path / "out"), endpoint="default", deployment="default",
                     collection="app_logs")
    assert sorted(json.loads(b)["body"] for b in lines["body"]) == sorted(
        f"scored request {i}" for i in range(10))
