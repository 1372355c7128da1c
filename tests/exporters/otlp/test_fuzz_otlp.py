"""Fuzzing (hypothesis) of what `serve` decodes off the wire: the columnar body codec and the
request decoder. Generated frames survive the round trip; damaged bodies and requests, and
arbitrary bytes, are refused with the decoder's own errors — never another exception, never
more than the budget allows. Derandomized and bounded, so the suite stays fast and stable."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from exporters import contract as A
from exporters.otlp.codec import (
    CELL_COST,
    ROW_COST,
    BodyError,
    DecodeBudget,
    LimitExceeded,
    decode_body,
    decode_frames,
    encode_frame,
    encode_ndarray,
)
from otel_collector_ext.service.receiver.decode import RequestError, decode_request, parse_protobuf
from tests.support.helpers_otlp import record, request

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

MAX_BYTES = 1 << 20


def small_budget() -> DecodeBudget:
    return DecodeBudget(max_rows_per_record=5_000, max_cells=20_000, max_bytes=MAX_BYTES)


# -- generated frames --------------------------------------------------------------
texts = st.text(max_size=8)
COLUMNS = {
    "int64": st.integers(-(2**63), 2**63 - 1),
    "float64": st.floats(allow_nan=True, allow_infinity=True),
    "bool": st.booleans(),
    "object": st.one_of(st.none(), texts),
    "category": st.sampled_from(["a", "b", "c"]),
    "Int64": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    "string": st.one_of(st.none(), texts),
}


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(0, 12))
    kinds = draw(st.lists(st.sampled_from(sorted(COLUMNS)), max_size=5))
    data = {}
    for i, kind in enumerate(kinds):
        values = draw(st.lists(COLUMNS[kind], min_size=rows, max_size=rows))
        data[f"c{i}"] = pd.Series(values, dtype=kind) if kind != "object" else \
            pd.Series(values, dtype=object)
    return pd.DataFrame(data, index=pd.RangeIndex(rows))


@FUZZ
@given(frames())
def test_generated_frames_survive_the_columnar_codec(frame: pd.DataFrame) -> None:
    body = encode_frame(frame)
    (got,) = decode_frames([body], small_budget())
    assert not isinstance(got, BodyError), got
    # Without columns, pandas gives a generated frame an integer column index, ours an
    # empty object one: the same (absent) columns.
    pd.testing.assert_frame_equal(got, frame, check_exact=True,
                                  check_column_type=len(frame.columns) > 0)


# -- damaged bodies ----------------------------------------------------------------
def valid_body(index: int) -> dict[str, Any]:
    samples = [
        pd.DataFrame({"a": [1, 2, 3], "s": ["x", None, "z"]}),
        pd.DataFrame({"c": pd.Categorical(["p", "q"]), "m": pd.array([1, None], dtype="Int64")}),
        pd.DataFrame({"o": [1, "two", None]}),
        pd.DataFrame(index=pd.RangeIndex(2)),
    ]
    return dict(encode_frame(samples[index % len(samples)]))


def damaged(draw: st.DrawFn, body: dict[str, Any]) -> dict[str, Any]:
    key = draw(st.sampled_from(["rows", "data", "schema", "values", "marker", "flip"]))
    if key == "rows":
        body["rows"] = draw(st.one_of(st.integers(-5, 10**12), st.text(max_size=3), st.none()))
    elif key == "data":
        body["data"] = draw(st.one_of(st.binary(max_size=200),
                                      st.just(body["data"][: len(body["data"]) // 2])))
    elif key == "schema":
        schema = json.loads(body["schema"])
        schema["specs"] = draw(st.lists(st.lists(st.one_of(
            st.sampled_from(["fixed", "utf8", "any", "category", "masked", "time", "string",
                             "<i8", "|b1", "int64", "M8[ns]", "python", "NA"]),
            st.integers(-2, 3)), max_size=4), max_size=3))
        schema["columns"] = [f"k{i}" for i in range(len(schema["specs"]))]
        body["schema"] = json.dumps(schema)
    elif key == "values":
        body["values"] = draw(st.lists(st.lists(st.one_of(st.none(), st.integers(), texts),
                                                max_size=4), max_size=3))
    elif key == "marker":
        body[next(iter(body))] = draw(st.one_of(st.integers(), st.none()))
    else:
        data = bytearray(body["data"])
        for _ in range(draw(st.integers(1, 4))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        body["data"] = bytes(data)
    return body


@st.composite
def damaged_bodies(draw: st.DrawFn) -> dict[str, Any]:
    return damaged(draw, valid_body(draw(st.integers(0, 3))))


@FUZZ
@given(damaged_bodies())
def test_damaged_frame_bodies_are_refused_cleanly(body: dict[str, Any]) -> None:
    budget = small_budget()
    try:
        (got,) = decode_frames([body], budget)
    except LimitExceeded:
        return
    assert isinstance(got, BodyError | pd.DataFrame)
    assert budget.bytes <= MAX_BYTES
    if isinstance(got, pd.DataFrame):  # what was built was paid for
        assert len(got) * ROW_COST + got.size * CELL_COST <= budget.bytes


@st.composite
def ndarray_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body = encode_ndarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    body["shape"] = draw(st.lists(st.integers(0, 10**12), min_size=0, max_size=4))
    body["dtype"] = draw(st.sampled_from(['"<f4"', '"<i8"', '"|V0"', '"|S0"', '"<U0"', '"|O"',
                                          '[["a", "<i4"]]', "nope"]))
    body["data"] = draw(st.one_of(st.just(body["data"]), st.binary(max_size=64)))
    return body


@FUZZ
@given(ndarray_bodies())
def test_ndarray_bodies_never_build_past_the_budget(body: dict[str, Any]) -> None:
    budget = small_budget()
    try:
        array = decode_body(body, budget)
    except (BodyError, LimitExceeded):
        return
    rows = array.shape[0]
    assert rows <= budget.max_rows
    assert rows * ROW_COST + rows * max(1, math.prod(array.shape[1:])) * CELL_COST <= budget.bytes


# -- whole requests ----------------------------------------------------------------
def any_values(leaves: st.SearchStrategy[AnyValue]) -> st.SearchStrategy[AnyValue]:
    def containers(children: st.SearchStrategy[AnyValue]) -> st.SearchStrategy[AnyValue]:
        def array(values: list[AnyValue]) -> AnyValue:
            value = AnyValue()
            value.array_value.values.extend(values)
            return value

        def kvlist(pairs: dict[str, AnyValue]) -> AnyValue:
            value = AnyValue()
            for key, child in pairs.items():
                value.kvlist_value.values.add(key=key).value.CopyFrom(child)
            return value

        return st.one_of(st.lists(children, max_size=5).map(array),
                         st.dictionaries(texts, children, max_size=5).map(kvlist))

    return st.recursive(leaves, containers, max_leaves=40)


LEAVES = st.one_of(
    st.builds(lambda s: AnyValue(string_value=s), texts),
    st.builds(lambda i: AnyValue(int_value=i), st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda f: AnyValue(double_value=f), st.floats()),
    st.builds(lambda b: AnyValue(bytes_value=b), st.binary(max_size=16)),
    st.just(AnyValue()),
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    message = request([record({"i": 1}, A.KIND_ROW, correlation_id=f"c{k}") for k in range(3)])
    logs = message.resource_logs[0].scope_logs[0].log_records
    for log in logs:
        choice = draw(st.integers(0, 2))
        if choice == 0:
            log.body.CopyFrom(draw(any_values(LEAVES)))
        elif choice == 1:  # a columnar or ndarray form, damaged, as an AnyValue
            body = damaged(draw, valid_body(draw(st.integers(0, 3))))
            log.body.CopyFrom(_to_any(body))
        log.attributes.add(key="fuzz").value.CopyFrom(draw(any_values(LEAVES)))
    data = message.SerializeToString()
    if draw(st.booleans()):  # and damaged as bytes
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=20)) + data[cut:]
    return data


def _to_any(value: Any) -> AnyValue:
    out = AnyValue()
    if value is None:
        return out
    if isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = max(-(2**63), min(2**63 - 1, value))
    elif isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bytes):
        out.bytes_value = value
    elif isinstance(value, list):
        out.array_value.values.extend(_to_any(v) for v in value)
    elif isinstance(value, dict):
        for key, child in value.items():
            out.kvlist_value.values.add(key=key).value.CopyFrom(_to_any(child))
    return out


@FUZZ
@given(st.one_of(requests(), st.binary(max_size=400)))
def test_the_request_decoder_refuses_or_decodes_within_budget(data: bytes) -> None:
    budget = small_budget()
    try:
        parsed = parse_protobuf(data, max_depth=8)
        decoded = decode_request(parsed, max_depth=8, max_records=10, budget=budget)
    except RequestError:
        return
    assert isinstance(parsed, ExportLogsServiceRequest)
    assert len(decoded.records) + decoded.rejected <= 10
    assert budget.bytes <= MAX_BYTES and budget.cells <= budget.max_cells
