"""The OTLP body forms: every dtype survives the released OTLP encoder and our decoder, and the
Avro written from the decoded payload is the Avro written in-process."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pandas as pd
import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from exporters import contract as A
from exporters.avro.pandas_compat import PANDAS_3
from exporters.avro.schema import Envelope
from exporters.avro.tabular import convert_frames, to_frame
from exporters.otlp.codec import (
    FRAME_MARKER,
    BodyError,
    decode_body,
    decode_frame,
    decode_frames,
    encode_body,
    encode_frame,
    encode_frames,
    is_frame_form,
)
from exporters.otlp.exporter import _encoded, encode_records
from otel_collector_ext.service.receiver.decode import decode_request, parse_protobuf
from tests.support.helpers_otlp import record, zoo_frame, zoo_row


def through_otlp(body: object, kind: str) -> object:
    """Encode as the OTLP exporter does, serialise, parse and decode as the receiver does."""
    data = encode_logs([record(body, kind)]).SerializeToString()
    decoded = decode_request(parse_protobuf(data, max_depth=32), max_depth=32, max_records=10)
    assert decoded.rejected == 0, decoded.error
    return decoded.records[0].log_record.body


def avro_of(body: object, kind: str) -> tuple[dict, list[dict]]:
    batch = convert_frames([to_frame(body, kind)], [Envelope("c", 1)], "inputs")
    return batch.schema, batch.rows


def test_every_dtype_round_trips_exactly() -> None:
    frame = zoo_frame(1, rows=5)
    frame["period"] = pd.period_range("2026-01", periods=5, freq="M")
    frame["interval_free"] = pd.array([1, 2, 3, 4, 5], dtype="UInt8")
    frame["bools"] = pd.array([True, None, False, True, None], dtype="boolean")
    frame["ordered"] = pd.Categorical(["lo", "hi", None, "lo", "hi"], categories=["lo", "hi"],
                                      ordered=True)
    frame["int_cats"] = pd.Categorical([3, 1, None, 3, 3])
    frame["mixed"] = [1, "a", None, 2.5, {"k": [1, 2]}]
    frame["nan_kinds"] = pd.Series(["x", None, np.nan, pd.NA, pd.NaT], dtype=object)
    frame["decimal_nan"] = [decimal.Decimal("NaN"), decimal.Decimal("1E+3"), None,
                            decimal.Decimal("-0"), decimal.Decimal("0.000001")]
    frame["ns"] = pd.to_datetime([1, 2, 3, 4, 5], unit="ns")
    frame[7] = np.arange(5, dtype=np.uint64)
    frame[("a", "b")] = [1, 2, 3, 4, 5]
    got = through_otlp(frame, A.KIND_DATAFRAME)
    assert isinstance(got, pd.DataFrame)
    assert list(got.columns) == list(frame.columns)
    pd.testing.assert_frame_equal(got, frame, check_exact=True, check_column_type=False)
    for name in frame.columns:  # same dtype objects, not just equal values
        assert got[name].dtype == frame[name].dtype, name
    assert got["nan_kinds"][1] is None and got["nan_kinds"][3] is pd.NA
    assert got["nan_kinds"][4] is pd.NaT and np.isnan(got["nan_kinds"][2])
    assert str(got["decimal_nan"][0]) == "NaN" and str(got["decimal_nan"][3]) == "-0"
    assert got["local"].dt.tz == frame["local"].dt.tz
    assert list(got["ordered"].cat.categories) == ["lo", "hi"] and got["ordered"].cat.ordered


def test_decoded_frames_write_the_same_avro_as_in_process() -> None:
    for i in range(4):
        frame = zoo_frame(i, rows=1 + i)
        assert avro_of(through_otlp(frame, A.KIND_DATAFRAME), A.KIND_DATAFRAME) == avro_of(
            frame, A.KIND_DATAFRAME)
    for kind, body in [
        (A.KIND_ROW, zoo_row(0)),  # has a datetime: converted to a frame before sending
        (A.KIND_ROW, zoo_row(1)),  # plain: sent as is, converted by the collector
        (A.KIND_COLUMNS, {"x": [1.5, None, 2.0], "n": [np.int32(1), np.int32(2), np.int32(3)]}),
        (A.KIND_ROWS, [{"a": 1, "b": "x"}, {"a": None, "c": [1, 2]}]),
        (A.KIND_NDARRAY, np.arange(12, dtype=np.float32).reshape(3, 4)),
        (A.KIND_NDARRAY, np.array([(1, 2.5), (3, -1.0)], dtype=[("id", "<i4"), ("v", "<f8")])),
        (A.KIND_NDARRAY, np.array(["a", None, "c"], dtype=object)),
    ]:
        got = through_otlp(body, kind)
        # A frame arrives when the exporter converted the body (and relabelled its kind).
        effective_kind = A.KIND_DATAFRAME if isinstance(got, pd.DataFrame) else kind
        assert avro_of(got, effective_kind) == avro_of(body, kind), (kind, body)


def test_exporter_copies_records_and_relabels_converted_kinds() -> None:
    from opentelemetry._logs import LogRecord
    from opentelemetry.sdk._logs import ReadableLogRecord

    from tests.support.helpers_otlp import RESOURCE

    row = zoo_row(0)
    original = ReadableLogRecord(
        LogRecord(timestamp=1, body=row, attributes={A.PAYLOAD_KIND: A.KIND_ROW}), RESOURCE)
    frame = ReadableLogRecord(LogRecord(timestamp=1, body=zoo_frame(1),
                                        attributes={A.PAYLOAD_KIND: A.KIND_DATAFRAME}), RESOURCE)
    for sent in (_encoded(original), encode_records([frame, original])[1]):
        assert original.log_record.body is row
        assert original.log_record.attributes[A.PAYLOAD_KIND] == "row"
        assert is_frame_form(sent.log_record.body)
        assert sent.log_record.attributes[A.PAYLOAD_KIND] == A.KIND_DATAFRAME
    assert isinstance(frame.log_record.body, pd.DataFrame)  # the caller's record is untouched
    plain = ReadableLogRecord(
        LogRecord(timestamp=1, body=b"\x00", attributes={A.PAYLOAD_KIND: A.KIND_BYTES}), RESOURCE)
    assert _encoded(plain) is plain  # nothing to convert: passed through


def test_payload_bodies_stay_plain() -> None:
    assert through_otlp(b"\x00\x01\xff", A.KIND_BYTES) == b"\x00\x01\xff"
    assert through_otlp(b'{"a": 1}', A.KIND_JSON) == b'{"a": 1}'
    assert through_otlp("text é", A.KIND_TEXT) == "text é"
    assert encode_body({"a": 1}, A.KIND_ROW) == {"a": 1}


def count_anyvalues(value: AnyValue) -> int:
    which = value.WhichOneof("value")
    if which == "array_value":
        return 1 + sum(count_anyvalues(v) for v in value.array_value.values)
    if which == "kvlist_value":
        return 1 + sum(count_anyvalues(kv.value) for kv in value.kvlist_value.values)
    return 1


def test_frame_form_has_a_fixed_number_of_values_whatever_the_width() -> None:
    # What makes it cheap: the encoder builds ~1.5 µs of AnyValue per value, so a
    # 1000-column frame must not cost 1000 values.
    def values_in_body(columns: int) -> int:
        frame = pd.DataFrame({f"c{i}": [float(i)] for i in range(columns)})
        proto = encode_logs([record(frame, A.KIND_DATAFRAME)])
        return count_anyvalues(proto.resource_logs[0].scope_logs[0].log_records[0].body)

    assert values_in_body(1) == values_in_body(1000) == 5


def test_schema_text_is_documented_json() -> None:
    import json

    body = encode_frame(pd.DataFrame({"a": [1], "b": ["x"]}))
    assert body[FRAME_MARKER] == 1 and body["rows"] == 1 and isinstance(body["data"], bytes)
    schema = json.loads(body["schema"])
    assert schema["columns"] == ["a", "b"]
    text = pd.Series(["x"]).dtype  # "str" from pandas 3 (pyarrow-backed when installed)
    spec = ["string", text.storage, "nan"] if PANDAS_3 else ["utf8"]  # object of str
    assert schema["specs"] == [["fixed", "<i8"], spec]


@pytest.mark.parametrize("damage", [
    lambda b: b.update(data=b["data"][:-1]),
    lambda b: b.update(data=b["data"] + b"\x00"),
    lambda b: b.update(rows=b["rows"] + 1),
    lambda b: b.update(rows=-1),
    lambda b: b.update(rows=10**12),
    lambda b: b.update(schema="{not json"),
    lambda b: b.update(schema='{"columns": ["a"], "specs": [["fixed", "|O8"]]}'),
    lambda b: b.update(schema='{"columns": ["a"], "specs": [["masked", "category", "<i8"]]}'),
    lambda b: b.update(schema='{"columns": ["a"], "specs": [["time", "int64"]]}'),
    lambda b: b.update(schema='{"columns": ["a"], "specs": [["nope"]]}'),
    lambda b: b.update(schema='{"columns": ["a", "b"], "specs": [["fixed", "<i8"]]}'),
    lambda b: b.update(schema='{"columns": [["x"]], "specs": [["fixed", "<i8"]]}'),
    lambda b: b.update(schema='[' * 10000),
    lambda b: b.update({FRAME_MARKER: 99}),
    lambda b: b.update(data="text"),
    lambda b: b.update(values=[[1, 2, 3]]),
])
def test_malformed_frame_bodies_raise_body_error(damage) -> None:  # noqa: ANN001
    body = dict(encode_frame(pd.DataFrame({"a": [1, 2]})))
    damage(body)
    with pytest.raises(BodyError):
        decode_frame(body)


def test_malformed_category_codes_and_string_offsets() -> None:
    body = dict(encode_frame(pd.DataFrame({"c": pd.Categorical(["a", "b"])})))
    data = bytearray(body["data"])
    data[0] = 9  # code 9 of two categories
    with pytest.raises(BodyError):
        decode_frame({**body, "data": bytes(data)})
    body = dict(encode_frame(pd.DataFrame({"s": ["ab", "cd"]})))
    data = bytearray(body["data"])
    data[2:6] = (100).to_bytes(4, "little")  # first string ends past the second
    with pytest.raises(BodyError):
        decode_frame({**body, "data": bytes(data)})


def test_malformed_ndarray_bodies() -> None:
    body = dict(encode_body(np.arange(6.0).reshape(2, 3), A.KIND_NDARRAY))
    for bad in ({"shape": [2, 4]}, {"shape": [-1, 3]}, {"dtype": '"|O"'}, {"dtype": "x"},
                {"shape": "2x3"}, {"data": body["data"][:5]}):
        with pytest.raises(BodyError):
            decode_body({**body, **bad})


def test_non_plain_rows_keep_their_values() -> None:
    row = {"at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "amount": decimal.Decimal("1.5"),
           "n": np.int16(3)}
    got = through_otlp(row, A.KIND_ROW)
    pd.testing.assert_frame_equal(got, to_frame(row, A.KIND_ROW))


def test_batches_encode_and_decode_like_single_frames() -> None:
    shared = pd.CategoricalDtype(["x", "y"])
    frames = [zoo_frame(i, rows=1 + i % 3) for i in range(12)]
    frames += [pd.DataFrame({"c": pd.Categorical(["x"], dtype=shared), "n": [i]}) for i in range(3)]
    frames += [pd.DataFrame({"c": pd.Categorical([v]), "n": [1]}) for v in ("p", "q")]  # own dtypes
    frames += [pd.DataFrame({"mixed": [1, "a"]}), pd.DataFrame({"mixed": ["b", None]})]
    frames += [pd.DataFrame({"a": [1, 2]}, index=pd.Index(["r1", "r2"], name="rid"))]
    bodies = encode_frames(frames)
    assert bodies == [encode_frame(f) for f in frames]  # the same bytes, batched or not
    decoded = decode_frames(bodies)
    for got, want in zip(decoded, frames, strict=True):
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    # Bodies of one schema with different categories still decode, one by one.
    mixed = decode_frames([encode_frame(pd.DataFrame({"c": pd.Categorical([v])})) for v in "ab"])
    assert [f["c"].cat.categories.tolist() for f in mixed] == [["a"], ["b"]]


def test_a_bad_body_in_a_batch_spoils_only_itself() -> None:
    bodies = encode_frames([pd.DataFrame({"a": [i], "s": [f"v{i}"]}) for i in range(5)])
    bodies[2] = {**bodies[2], "data": bodies[2]["data"][:-1]}
    results = decode_frames(bodies)
    assert isinstance(results[2], BodyError)
    assert [r["s"][0] for k, r in enumerate(results) if k != 2] == ["v0", "v1", "v3", "v4"]
    assert all(r.index.equals(pd.RangeIndex(1)) for k, r in enumerate(results) if k != 2)
