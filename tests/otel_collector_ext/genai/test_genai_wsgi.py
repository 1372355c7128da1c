"""GenAI endpoints under WSGI: the same OpenAI-compatible app in Flask behind
WSGIMiddleware, on werkzeug's threaded server, with content capture off (the default).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pandas as pd
import pytest

import otel_collector_ext as oce
from otel_collector_ext.genai import record as R
from tests.otel_collector_ext.genai.test_genai_asgi import SYSTEM_PROMPT, genai_config, messages
from tests.support.genai_apps import PACED_CHUNKS, FlaskGate, flask_app
from tests.support.middleware_servers import serve_wsgi, wait_until


def _rows(data_dir: Path) -> pd.DataFrame:
    oce.flush()
    return oce.load(str(data_dir), endpoint="ep", deployment="blue", collection="gen_ai")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("genai-wsgi") / "collected"
    oce.configure(genai_config(data_dir, capture_content=False))
    gate = FlaskGate()
    notes: dict[str, Any] = {}
    with serve_wsgi(flask_app(gate)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
        stream = client.chat.completions.create(
            model="paced", messages=messages("w-stream"), stream=True,
            stream_options={"include_usage": True}, extra_headers={"x-request-id": "w-stream"})
        chunks = iter(stream)
        first = next(chunks)
        notes["produced_at_first_chunk"] = gate.produced.get("w-stream", 0)
        gate.event("w-stream").set()
        rest = list(chunks)
        notes["text"] = "".join(c.choices[0].delta.content or "" for c in [first, *rest]
                                if c.choices)
        notes["plain"] = client.chat.completions.create(
            model="echo", messages=messages("w-plain"), extra_headers={"x-request-id": "w-plain"})
        # A client that leaves mid-stream while the app is parked after its first chunk.
        with httpx.Client(base_url=url, timeout=30) as http, http.stream(
                "POST", "/v1/chat/completions", headers={"x-request-id": "w-cut"},
                json={"model": "paced", "messages": messages("w-cut"), "stream": True}) as cut:
            next(cut.iter_raw())
        gate.event("w-cut").set()  # the app goes on writing to a closed connection
        notes["frame"] = wait_until(  # a list: a DataFrame has no truth value
            lambda: [f] if len(f := _rows(data_dir)) == 3 else None, 30, "three gen_ai rows")[0]
    oce.shutdown()
    return notes


def test_wsgi_streams_and_records(scenario: dict[str, Any]) -> None:
    assert scenario["produced_at_first_chunk"] < PACED_CHUNKS
    frame = scenario["frame"]
    row = frame[frame["_correlation_id"] == "w-stream"].iloc[0]
    assert row[R.STREAM] and row[R.OUTPUT_TOKENS] == PACED_CHUNKS
    assert 0 < row[R.TIME_TO_FIRST_TOKEN] < row[R.DURATION]
    plain = frame[frame["_correlation_id"] == "w-plain"].iloc[0]
    assert plain[R.INPUT_TOKENS] == scenario["plain"].usage.prompt_tokens


def test_content_capture_off_stores_no_message_text(scenario: dict[str, Any]) -> None:
    frame = scenario["frame"]
    assert frame[R.INPUT_MESSAGES].isna().all() and frame[R.OUTPUT_MESSAGES].isna().all()
    stored = json.dumps(frame.astype(str).to_dict("records"))
    for text in (SYSTEM_PROMPT, "Hello there", "w3 ", "You said"):
        assert text not in stored
    assert all(R.FLAG_CONTENT_NOT_CAPTURED in f for f in frame[R.FLAGS])


def test_client_leaving_mid_stream_is_flagged(scenario: dict[str, Any]) -> None:
    frame = scenario["frame"]
    row = frame[frame["_correlation_id"] == "w-cut"].iloc[0]
    assert R.FLAG_CLIENT_DISCONNECT in row[R.FLAGS]
    assert R.FLAG_STREAM_INCOMPLETE in row[R.FLAGS]
