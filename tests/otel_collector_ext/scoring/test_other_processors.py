"""Records stay real OpenTelemetry log records: other SDK processors receive every one.

collect() takes shortcuts on the scoring thread (attributes checked cheaply, the SDK's
own copy skipped when it would change nothing). Another processor added to the
pipeline's LoggerProvider must still see each record, with the body, the attributes,
the event name and the trace context it would have had, and the SDK's limits must
still apply where they change something.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider

import otel_collector_ext as oce
from otel_collector_ext import attributes as A


@pytest.fixture
def seen(tmp_path: Path) -> InMemoryLogRecordExporter:
    pipeline = oce.configure({"exporter": {"type": "avro", "destination": str(tmp_path)},
                              "endpoint": "ep", "deployment": "blue", "model_version": "7"})
    memory = InMemoryLogRecordExporter()
    pipeline.provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    yield memory
    oce.shutdown()


def test_every_record_reaches_another_processor(seen: InMemoryLogRecordExporter) -> None:
    frame = pd.DataFrame({"a": [1, 2], "s": ["x", "y"]})
    inputs, outputs = oce.Collector(name="model_inputs"), oce.Collector(name="model_outputs")
    tracer = TracerProvider().get_tracer("test")
    contexts = []
    with tracer.start_as_current_span("score") as span:
        for i in range(50):
            contexts.append(inputs.collect(frame))
            outputs.collect({"p": i}, contexts[-1], attributes={"http.route": "/score", "n": i})
    assert oce.flush()
    records = [r.log_record for r in seen.get_finished_logs()]
    assert len(records) == 100
    assert oce.stats()["records.collected{collection=model_inputs}"] == 50
    span_context = span.get_span_context()
    for k, record in enumerate(records):
        i, is_input = divmod(k, 2)[0], k % 2 == 0
        attrs = dict(record.attributes)
        assert attrs[A.CORRELATION_ID] == contexts[i].get_id()
        assert attrs[A.ENDPOINT] == "ep" and attrs[A.DEPLOYMENT] == "blue"
        assert attrs[A.MODEL_VERSION] == "7"
        assert record.trace_id == span_context.trace_id
        assert record.span_id == span_context.span_id
        if is_input:
            assert record.event_name == "ml.inference.model_inputs"
            assert attrs[A.PAYLOAD_KIND] == A.KIND_DATAFRAME
            pd.testing.assert_frame_equal(record.body, frame)
        else:
            assert record.event_name == "ml.inference.model_outputs"
            assert attrs[A.COLLECTION] == "model_outputs"
            assert attrs["http.route"] == "/score" and attrs["n"] == i
            assert record.body == {"p": i}
        assert record.timestamp == contexts[i].time_ns()


def test_sdk_cleaning_still_applies(seen: InMemoryLogRecordExporter) -> None:
    collector = oce.Collector(name="model_outputs")
    class Odd:
        def __str__(self) -> str:
            return "odd"

    # What the SDK cleans: a list becomes a tuple, another type its text, an empty key goes.
    collector.collect({"p": 1}, attributes={"tags": ["a", "b"], "bad": Odd(), "": "x"})
    assert oce.flush()
    (record,) = [r.log_record for r in seen.get_finished_logs()]
    assert record.attributes["tags"] == ("a", "b")
    assert record.attributes["bad"] == "odd" and "" not in record.attributes
    assert record.attributes[A.COLLECTION] == "model_outputs"


def test_attribute_length_limit_applies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")
    pipeline = oce.configure({"exporter": {"type": "avro", "destination": str(tmp_path)}})
    memory = InMemoryLogRecordExporter()
    pipeline.provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    try:
        oce.Collector(name="model_outputs").collect({"p": 1}, attributes={"note": "abcdefgh"})
        assert oce.flush()
        (record,) = [r.log_record for r in memory.get_finished_logs()]
        assert record.attributes["note"] == "abcd"
    finally:
        oce.shutdown()


def test_no_trace_context_outside_a_span(seen: InMemoryLogRecordExporter) -> None:
    trace.get_current_span()  # the default, invalid span
    oce.Collector(name="model_inputs").collect(pd.DataFrame({"a": [1]}))
    assert oce.flush()
    (record,) = [r.log_record for r in seen.get_finished_logs()]
    assert not record.trace_id and not record.span_id
