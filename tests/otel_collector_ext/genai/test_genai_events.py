"""Upstream GenAI instrumentation without our middleware: opentelemetry-instrumentation-openai-v2
(2.4b0, with opentelemetry-util-genai 1.1b0) in a client process, its
`gen_ai.client.inference.operation.details` events stored as gen_ai rows by `serve`
(OTLP/HTTP, another process) and by the in-process pipeline as the LoggerProvider."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import otel_collector_ext as oce
from otel_collector_ext.genai import record as R
from tests.conftest import ROOT, local_config, python_env
from tests.support.middleware_servers import ServerProcess, serve_asgi
from tests.support.service_process import ServeProcess

INSTRUMENTATION_ENV = {
    "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "event_only",
}


def run_client(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "tests.support.genai_instrumented_client", *args],
                          cwd=ROOT, env=python_env(**INSTRUMENTATION_ENV), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    work = tmp_path_factory.mktemp("genai-events-app")
    # The app records nothing itself: only the client's instrumentation speaks.
    config = local_config(work / "app-data", data_collector={"collections": {
        "model_inputs": {"enabled": True}}})
    with serve_asgi("tests.support.genai_apps:app", config, work) as server:
        yield server


def _check_rows(frame, *, spans: bool, endpoint_rows: int = 2) -> None:
    assert len(frame) == endpoint_rows
    assert set(frame[R.SOURCE]) == {"otel_event"}
    assert set(frame[R.REQUEST_MODEL]) == {"echo"}
    assert set(frame[R.OPERATION]) == {"chat"} and set(frame[R.PROVIDER]) == {"openai"}
    plain = frame[frame[R.INPUT_MESSAGES].str.contains("Bonjour")].iloc[0]
    assert json.loads(plain[R.INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Bonjour from the client"}]}]
    output = json.loads(plain[R.OUTPUT_MESSAGES])[0]
    assert output["parts"][0]["content"] == "You said: Bonjour from the client"
    assert list(plain[R.FINISH_REASONS]) == ["stop"]
    assert plain[R.RESPONSE_ID] == "chatcmpl-example"
    assert plain[R.INPUT_TOKENS] == 4 and plain[R.OUTPUT_TOKENS] == 6
    if spans:  # one model call, one span: the correlation id is <trace id>-<span id>
        assert plain["_correlation_id"] == f"{plain['_trace_id']}-{plain['_span_id']}"


def test_serve_stores_instrumentation_events_as_gen_ai_rows(app: ServerProcess,
                                                            tmp_path: Path) -> None:
    data = tmp_path / "collected"
    serve = ServeProcess(tmp_path, data)
    try:
        serve.wait_ready()
        run_client("otlp", app.url, f"http://{serve.http[0]}:{serve.http[1]}/v1/logs")
    finally:
        assert serve.stop() == 0, serve.log()
    # Endpoint from the resource's service.name, deployment from ml.inference.deployment.
    frame = oce.load(str(data), endpoint="chat-svc", deployment="green", collection="gen_ai")
    _check_rows(frame, spans=True)
    assert "rejected" not in serve.log()


def test_in_process_pipeline_as_the_logger_provider(app: ServerProcess, tmp_path: Path) -> None:
    data = tmp_path / "collected"
    config = tmp_path / "config.json"
    config.write_text(json.dumps(local_config(data, data_collector={"collections": {
        "gen_ai": {"enabled": True, "capture_content": True}}})))
    run_client("inprocess", app.url, str(config))
    # In-process, the configured endpoint and deployment apply.
    _check_rows(oce.load(str(data), endpoint="ep", deployment="blue", collection="gen_ai"),
                spans=False)
