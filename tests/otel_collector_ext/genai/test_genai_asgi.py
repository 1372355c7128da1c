"""GenAI endpoints under ASGI: the real `openai` client against an OpenAI-compatible
FastAPI app (tests/genai_apps.py) behind ASGIMiddleware, in a real uvicorn process.

One module-scoped scenario sends the traffic, stops the server (it flushes), and loads
the `gen_ai` collection; each test checks one promise on the stored rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pandas as pd
import pytest

import otel_collector_ext as oce
from otel_collector_ext.genai import record as R
from tests.conftest import local_config
from tests.support.genai_apps import PACED_CHUNKS
from tests.support.middleware_servers import raw_exchange, raw_request, serve_asgi

MAX_CONTENT = 4096
SYSTEM_PROMPT = "The customer is Jane Roe, card 4111-1111-1111-1111."


def genai_config(data_dir: Path, *, capture_content: bool) -> dict[str, Any]:
    return local_config(
        data_dir,
        data_collector={"collections": {"gen_ai": {
            "enabled": True, "capture_content": capture_content,
            "max_content_bytes": MAX_CONTENT, "provider_name": "test-llm"}}},
        redaction={"mask": {"fields": ["gen_ai.input.messages[0].parts[*].content"]}},
    )


def messages(rid: str, text: str = "Hello there") -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": text}]


@dataclass
class Scenario:
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: dict[str, Any] = field(default_factory=dict)

    def row(self, rid: str) -> pd.Series:
        rows = self.frame[self.frame["_correlation_id"] == rid]
        assert len(rows) == 1, f"{len(rows)} gen_ai rows for {rid}"
        return rows.iloc[0]


def _paced_stream(client: openai.OpenAI, http: httpx.Client, scenario: Scenario) -> None:
    rid = "stream-1"
    stream = client.chat.completions.create(
        model="paced", messages=messages(rid), stream=True,
        stream_options={"include_usage": True}, extra_headers={"x-request-id": rid})
    chunks = iter(stream)
    first = next(chunks)
    # The app is parked after its first chunk until we release it: had anything buffered
    # the stream, this first chunk could not be here while the app holds the rest back.
    scenario.notes["produced_at_first_chunk"] = http.get(f"/progress/{rid}").json()["produced"]
    http.post(f"/release/{rid}")
    rest = list(chunks)
    scenario.notes["stream_text"] = "".join(
        c.choices[0].delta.content or "" for c in [first, *rest] if c.choices)
    scenario.notes["stream_usage"] = rest[-1].usage
    scenario.notes["stream_request_id"] = stream.response.headers["x-request-id"]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    work = tmp_path_factory.mktemp("genai-asgi")
    data_dir = work / "collected"
    result = Scenario()
    with serve_asgi("tests.support.genai_apps:app", genai_config(data_dir, capture_content=True),
                    work) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0,
                               timeout=60)
        _paced_stream(client, http, result)
        completion = client.chat.completions.create(
            model="echo", messages=messages("plain-1"), temperature=0.2, max_tokens=50,
            extra_headers={"x-request-id": "plain-1"})
        result.notes["plain"] = completion
        # Tool calls in fragments; a stream without include_usage.
        list(client.chat.completions.create(
            model="tools", messages=messages("tools-1"), stream=True,
            extra_headers={"x-request-id": "tools-1"}))
        list(client.chat.completions.create(
            model="echo", messages=messages("no-usage-1"), stream=True,
            extra_headers={"x-request-id": "no-usage-1"}))
        # Hostile: malformed SSE, a never-ending stream left by the client, a huge
        # message, a body that is not JSON, an answer that is not JSON.
        # (the openai client itself gives up on a stream with non-JSON data: raw httpx)
        result.notes["malformed"] = http.post(
            "/v1/chat/completions", headers={"x-request-id": "malformed-1"},
            json={"model": "malformed", "messages": messages("malformed-1"), "stream": True,
                  "stream_options": {"include_usage": True}}).content
        forever = client.chat.completions.create(
            model="forever", messages=messages("forever-1"), stream=True,
            extra_headers={"x-request-id": "forever-1"})
        got = [c for _, c in zip(range(200), forever, strict=False)]
        forever.close()  # the client leaves a stream that would never end
        result.notes["forever_received"] = len(got)
        client.chat.completions.create(
            model="echo", messages=messages("huge-1", "x" * 3_000_000),
            extra_headers={"x-request-id": "huge-1"})
        answer = raw_exchange(server.url, raw_request(
            "POST", "/v1/chat/completions",
            {"x-request-id": b"not-json-1", "content-type": b"application/json"},
            b"{this is not json"))
        result.notes["not_json_status"] = answer.split(b" ", 2)[1]
        text = http.post("/v1/chat/completions", headers={"x-request-id": "text-1"},
                         json={"model": "text", "messages": messages("text-1")})
        assert text.text == "this is not JSON"
        server.stop()
        result.notes["stderr"] = server.stderr
    result.frame = oce.load(str(data_dir), endpoint="ep", deployment="blue", collection="gen_ai")
    return result


def test_streaming_stays_streaming(scenario: Scenario) -> None:
    assert scenario.notes["produced_at_first_chunk"] < PACED_CHUNKS
    assert scenario.notes["stream_text"] == "".join(f"w{i} " for i in range(PACED_CHUNKS))


def test_streamed_row_reassembles_text_usage_and_timings(scenario: Scenario) -> None:
    row = scenario.row("stream-1")
    assert scenario.notes["stream_request_id"] == "stream-1"
    output = json.loads(row[R.OUTPUT_MESSAGES])
    assert output == [{"role": "assistant", "finish_reason": "stop", "parts": [
        {"type": "text", "content": scenario.notes["stream_text"]}]}]
    usage = scenario.notes["stream_usage"]
    assert (row[R.INPUT_TOKENS], row[R.OUTPUT_TOKENS]) == (
        usage.prompt_tokens, usage.completion_tokens)
    assert 0 < row[R.TIME_TO_FIRST_TOKEN] < row[R.DURATION]
    assert row[R.STREAM] and row[R.STATUS] == 200
    assert row[R.OPERATION] == "chat" and row[R.PROVIDER] == "test-llm"
    assert row[R.REQUEST_MODEL] == "paced" and row[R.RESPONSE_ID] == "chatcmpl-example"
    assert list(row[R.FINISH_REASONS]) == ["stop"]
    assert row[R.FLAGS] is None or not list(row[R.FLAGS])
    assert row[R.SOURCE] == "middleware" and row[R.PATH] == "/v1/chat/completions"


def test_load_returns_the_column_names_as_written(scenario: Scenario) -> None:
    assert set(R.COLUMNS) <= set(scenario.frame.columns)
    assert scenario.frame[R.INPUT_TOKENS].dtype.kind == "i" or \
        str(scenario.frame[R.INPUT_TOKENS].dtype) == "Int64"


def test_non_streamed_row(scenario: Scenario) -> None:
    completion = scenario.notes["plain"]
    assert completion._request_id == "plain-1"
    row = scenario.row("plain-1")
    assert row[R.TEMPERATURE] == 0.2 and row[R.MAX_TOKENS] == 50
    assert not row[R.STREAM]
    assert row[R.INPUT_TOKENS] == completion.usage.prompt_tokens
    assert row[R.OUTPUT_TOKENS] == completion.usage.completion_tokens
    assert json.loads(row[R.OUTPUT_MESSAGES])[0]["parts"][0]["content"] == \
        completion.choices[0].message.content
    assert row[R.DURATION] > 0


def test_redaction_by_path_masks_the_system_prompt(scenario: Scenario) -> None:
    inputs = json.loads(scenario.row("plain-1")[R.INPUT_MESSAGES])
    assert inputs[0] == {"role": "system", "parts": [{"type": "text", "content": "***"}]}
    assert inputs[1]["parts"][0]["content"] == "Hello there"  # not named: kept
    assert "Jane Roe" not in scenario.frame[R.INPUT_MESSAGES].str.cat()
    assert "redacted" not in (scenario.row("plain-1")[R.FLAGS] or [])  # flags are ours


def test_tool_calls_reassembled_from_fragments(scenario: Scenario) -> None:
    row = scenario.row("tools-1")
    message = json.loads(row[R.OUTPUT_MESSAGES])[0]
    assert message["finish_reason"] == "tool_call"
    assert message["parts"] == [{"type": "tool_call", "id": "call_1", "name": "get_weather",
                                 "arguments": {"city": "Paris"}}]
    assert row[R.OUTPUT_TOKENS] == 9


def test_stream_without_include_usage_is_null_and_flagged(scenario: Scenario) -> None:
    row = scenario.row("no-usage-1")
    assert pd.isna(row[R.INPUT_TOKENS]) and pd.isna(row[R.OUTPUT_TOKENS])
    assert R.FLAG_USAGE_MISSING in row[R.FLAGS]
    assert json.loads(row[R.OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "You said: Hello there"


def test_malformed_sse_keeps_the_good_chunks(scenario: Scenario) -> None:
    row = scenario.row("malformed-1")
    assert b"{not json" in scenario.notes["malformed"]  # passed on as the app sent it
    assert json.loads(row[R.OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "ok fine"
    assert {R.FLAG_RESPONSE_NOT_JSON, R.FLAG_SSE_MALFORMED} <= set(row[R.FLAGS])
    assert row[R.INPUT_TOKENS] is not None


def test_never_ending_stream_left_by_the_client_is_bounded_and_flagged(scenario: Scenario
                                                                      ) -> None:
    assert scenario.notes["forever_received"] == 200
    row = scenario.row("forever-1")
    flags = set(row[R.FLAGS])
    assert {R.FLAG_CLIENT_DISCONNECT, R.FLAG_CONTENT_TRUNCATED, R.FLAG_STREAM_INCOMPLETE} <= flags
    text = json.loads(row[R.OUTPUT_MESSAGES])[0]["parts"][0]["content"]
    assert len(text.encode()) <= MAX_CONTENT and text.startswith("000000")


def test_huge_message_is_cut_and_flagged(scenario: Scenario) -> None:
    row = scenario.row("huge-1")
    assert R.FLAG_CONTENT_TRUNCATED in row[R.FLAGS]
    assert len(row[R.INPUT_MESSAGES].encode()) < 2 * MAX_CONTENT
    assert row[R.STATUS] == 200 and row[R.OUTPUT_TOKENS] is not None


def test_bodies_that_are_not_json(scenario: Scenario) -> None:
    assert scenario.notes["not_json_status"] == b"400"
    row = scenario.row("not-json-1")
    assert R.FLAG_REQUEST_NOT_JSON in row[R.FLAGS]
    assert row[R.STATUS] == 400 and row[R.ERROR_TYPE] == "invalid_request_error"
    text = scenario.row("text-1")
    assert R.FLAG_RESPONSE_NOT_JSON in text[R.FLAGS] and text[R.REQUEST_MODEL] == "text"


def test_nothing_lost_or_hung(scenario: Scenario) -> None:
    ids = {"stream-1", "plain-1", "tools-1", "no-usage-1", "malformed-1", "forever-1",
           "huge-1", "not-json-1", "text-1"}
    assert set(scenario.frame["_correlation_id"]) == ids
    assert "Traceback" not in scenario.notes["stderr"]
