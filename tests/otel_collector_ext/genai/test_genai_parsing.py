"""The GenAI building blocks on their own: the SSE parser, the OpenAI API readers, the
typed row, `collect()` of GenAI records and the configuration keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import otel_collector_ext as oce
from otel_collector_ext import Collector
from otel_collector_ext.genai import record as R
from otel_collector_ext.genai.capture import GenAICapture, GenAISettings
from otel_collector_ext.genai.sse import SSEParser
from otel_collector_ext.pipeline.config import ConfigError, parse_config
from tests.conftest import local_config

CAPTURE = GenAISettings(capture_content=True, max_content_bytes=1000)


def _feed_bytewise(parser: SSEParser, data: bytes) -> list[str]:
    events = []
    for i in range(len(data)):
        events += parser.feed(data[i:i + 1])
    return [e.data for e in events + parser.close()]


def test_sse_events_split_anywhere_and_every_line_end() -> None:
    data = ('data: {"a": "é"}\r\n\r\nevent: e\ndata: 1\ndata: 2\n\n: comment\r'
            'id: 7\rdata: last\r\r').encode()
    assert _feed_bytewise(SSEParser(), data) == ['{"a": "é"}', "1\n2", "last"]
    whole = SSEParser().feed(data)
    assert [e.data for e in whole] == ['{"a": "é"}', "1\n2", "last"]
    assert whole[1].event == "e" and whole[2].id == "7"
    one = SSEParser()  # one whole event per chunk, as LLM servers send them
    got = [one.feed(c) for c in (b"event: e\n", b"data: 1\n\n", b"data: 2\n\n")]
    assert [(e.event, e.data) for es in got for e in es] == [("e", "1"), ("", "2")]


def test_sse_never_ending_line_and_event_stay_bounded() -> None:
    parser = SSEParser(max_line_bytes=1024, max_event_bytes=4096)
    for _ in range(1000):  # 1 MB, never a newline
        assert parser.feed(b"data: " + b"x" * 1000) == []
        assert len(parser._pending) <= 1024
    assert parser.feed(b"\n\ndata: ok\n\n")[0].data == "ok"
    for _ in range(100):  # an event of many short lines, never a blank line
        parser.feed(b"data: " + b"y" * 500 + b"\n")
    assert sum(map(len, parser._data)) <= 4096
    assert parser.feed(b"\ndata: after\n\n")[0].data == "after"
    assert parser.dropped == 2


def _capture(api: str, request: dict, response: bytes, content_type: str,
             status: int = 200, settings: GenAISettings = CAPTURE) -> dict:
    capture = GenAICapture(api, "/v1/x", settings)
    capture.request_body(json.dumps(request).encode())
    capture.response_start(status, content_type)
    for i in range(0, len(response), 7):  # chunks that split events anywhere
        capture.response_body(response[i:i + 7])
    return capture.columns()


def _sse(*events: tuple[str, dict]) -> bytes:
    return b"".join((f"event: {name}\n" if name else "").encode()
                    + b"data: " + json.dumps(data).encode() + b"\n\n" for name, data in events)


def test_responses_api_stream() -> None:
    final = {"id": "resp_1", "model": "m-2", "status": "completed",
             "usage": {"input_tokens": 5, "output_tokens": 2},
             "output": [{"type": "message", "role": "assistant",
                         "content": [{"type": "output_text", "text": "Hi you"}]}]}
    cols = _capture("responses", {"model": "m", "input": "hello", "instructions": "be brief",
                                  "max_output_tokens": 9, "stream": True},
                    _sse(("response.created", {"response": {"id": "resp_1", "model": "m-2"}}),
                         ("response.output_text.delta", {"delta": "Hi"}),
                         ("response.output_text.delta", {"delta": " you"}),
                         ("response.completed", {"response": final})), "text/event-stream")
    assert cols[R.OPERATION] == "chat" and cols[R.MAX_TOKENS] == 9
    assert (cols[R.INPUT_TOKENS], cols[R.OUTPUT_TOKENS]) == (5, 2)
    assert cols[R.RESPONSE_ID] == "resp_1" and cols[R.FINISH_REASONS] == ["stop"]
    assert cols[R.OUTPUT_MESSAGES][0]["parts"] == [{"type": "text", "content": "Hi you"}]
    assert cols[R.INPUT_MESSAGES][0] == {"role": "system", "parts": [
        {"type": "text", "content": "be brief"}]}
    assert cols[R.TIME_TO_FIRST_TOKEN] is not None and not cols[R.FLAGS]


def test_completions_and_embeddings() -> None:
    cols = _capture("text_completion", {"model": "m", "prompt": "Once", "stream": True},
                    _sse(("", {"id": "c", "choices": [{"index": 0, "text": " upon"}]}),
                         ("", {"id": "c", "choices": [{"index": 0, "text": " a time",
                                                       "finish_reason": "length"}]}))
                    + b"data: [DONE]\n\n", "text/event-stream")
    assert cols[R.OPERATION] == "text_completion"
    assert cols[R.OUTPUT_MESSAGES][0]["parts"][0]["content"] == " upon a time"
    assert cols[R.FINISH_REASONS] == ["length"] and cols[R.FLAGS] == [R.FLAG_USAGE_MISSING]
    emb = _capture("embeddings", {"model": "e", "input": ["a b", "c"]},
                   json.dumps({"data": [], "model": "e-1", "usage": {"prompt_tokens": 3}}).encode(),
                   "application/json")
    assert emb[R.OPERATION] == "embeddings" and emb[R.INPUT_TOKENS] == 3
    assert emb[R.INPUT_MESSAGES][0]["parts"][1]["content"] == "c"


def test_error_response_and_truncated_stream() -> None:
    cols = _capture("chat", {"model": "m"}, b'{"error": {"type": "rate_limit_error"}}',
                    "application/json", status=429)
    assert cols[R.ERROR_TYPE] == "rate_limit_error" and cols[R.STATUS] == 429
    cut = _capture("chat", {"model": "m", "stream": True},
                   _sse(("", {"choices": [{"index": 0, "delta": {"content": "abc"}}]})),
                   "text/event-stream")
    assert R.FLAG_STREAM_INCOMPLETE in cut[R.FLAGS]


def test_gen_ai_row_types_and_rejects() -> None:
    row = R.gen_ai_row({R.TEMPERATURE: 1, R.INPUT_TOKENS: 3.0, R.FINISH_REASONS: "stop"},
                       source="collect", capture_content=True)
    assert row[R.TEMPERATURE] == 1.0 and isinstance(row[R.TEMPERATURE], float)
    assert row[R.INPUT_TOKENS] == 3 and row[R.FINISH_REASONS] == ["stop"]
    assert set(row) == set(R.COLUMNS)
    with pytest.raises(R.GenAIRecordError, match="unknown GenAI column"):
        R.gen_ai_row({"gen_ai.usage.input_tokenz": 1}, source="collect", capture_content=True)
    with pytest.raises(R.GenAIRecordError, match="whole number"):
        R.gen_ai_row({R.OUTPUT_TOKENS: 1.5}, source="collect", capture_content=True)
    with pytest.raises(R.GenAIRecordError, match="string"):
        R.gen_ai_row({R.REQUEST_MODEL: 5}, source="collect", capture_content=True)


def test_collect_gen_ai_records_land_typed_in_the_table(data_dir: Path) -> None:
    config = local_config(data_dir, data_collector={"collections": {
        "gen_ai": {"enabled": True, "capture_content": True}}},
        redaction={"hash": {"fields": ["gen_ai.output.messages[*].parts[*].content"]}})
    oce.configure(config)
    collector = Collector(name="gen_ai")
    collector.collect({R.OPERATION: "chat", R.REQUEST_MODEL: "gpt-x", R.INPUT_TOKENS: 10,
                       R.OUTPUT_TOKENS: 4, R.TEMPERATURE: 0, R.DURATION: 1.5,
                       R.INPUT_MESSAGES: [{"role": "user", "parts": [
                           {"type": "text", "content": "hi"}]}],
                       R.OUTPUT_MESSAGES: [{"role": "assistant", "finish_reason": "stop",
                                            "parts": [{"type": "text", "content": "secret"}]}]},
                      oce.BasicCorrelationContext(id="c-1"))
    with pytest.raises(TypeError, match="unknown GenAI column"):
        collector.collect({"prompt": "hi"})
    assert oce.flush()
    frame = oce.load(str(data_dir), endpoint="ep", deployment="blue", collection="gen_ai")
    row = frame.iloc[0]
    assert len(frame) == 1 and row["_correlation_id"] == "c-1"
    assert row[R.SOURCE] == "collect" and row[R.TEMPERATURE] == 0.0
    assert json.loads(row[R.INPUT_MESSAGES])[0]["parts"][0]["content"] == "hi"
    output = json.loads(row[R.OUTPUT_MESSAGES])[0]["parts"][0]["content"]
    assert output != "secret" and len(output) == 64  # hashed by path


def test_gen_ai_keys_only_on_the_gen_ai_collection() -> None:
    config = parse_config({"data_collector": {"collections": {
        "gen_ai": {"capture_content": "True", "max_content_bytes": 10}}}})
    settings = config.collection("gen_ai")
    assert settings is not None and settings.capture_content and settings.max_content_bytes == 10
    assert parse_config({}).collection("gen_ai").capture_content is False  # default off
    with pytest.raises(ConfigError, match="unknown key data_collector.collections.model_inputs"
                                          ".capture_content"):
        parse_config({"data_collector": {"collections": {
            "model_inputs": {"capture_content": True}}}})
    with pytest.raises(ConfigError, match="max_content_bytes"):
        parse_config({"data_collector": {"collections": {"gen_ai": {"max_content_bytes": -1}}}})
