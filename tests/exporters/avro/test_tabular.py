"""Tabular payload <-> Avro conversion, round-tripped through real Avro container files."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import time

import avro.datafile
import avro.io
import dateutil.tz
import fastavro
import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from exporters.avro.pandas_compat import PANDAS_3, STR_DTYPE, str_array
from exporters.avro.schema import ENVELOPE_NAMES, NAMESPACE, Envelope, fingerprint
from exporters.avro.tabular import (
    ATTR_ENCODING,
    ATTR_ORIGINAL_NAME,
    ATTR_ORIGINAL_NAME_TYPE,
    ATTR_PANDAS_DTYPE,
    ATTR_TIMEZONE,
    ENCODING_JSON,
    ENCODING_TIMEDELTA,
    ENCODING_UINT64,
    TabularBatch,
    convert_frames,
    restore_frame,
    restore_frames,
    to_frame,
)

AVRO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
T0 = 1_700_000_000_000_000
D = decimal.Decimal


# --- helpers ---------------------------------------------------------------------


def envelopes(n: int) -> list[Envelope]:
    return [
        Envelope(
            correlation_id=f"corr-{i}",
            time_us=T0 + i,
            model_version="v1" if i % 2 == 0 else None,
            trace_id="0" * 31 + str(i % 10),
            span_id=None,
        )
        for i in range(n)
    ]


def write_and_read(tmp_path, batch: TabularBatch, name: str = "batch.avro"):
    """Write a real container file; read it with fastavro and with the reference avro library."""
    path = tmp_path / name
    with open(path, "wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(batch.schema), batch.rows, codec="deflate")
    with open(path, "rb") as fh:
        reader = fastavro.reader(fh)
        records = list(reader)
        schema = reader.writer_schema
    with open(path, "rb") as fh:
        ref = avro.datafile.DataFileReader(fh, avro.io.DatumReader())
        ref_records = list(ref)
        ref.close()
    assert len(ref_records) == len(records) == len(batch.rows)
    for ours, theirs in zip(records, ref_records, strict=True):
        assert set(ours) == set(theirs)
    return records, schema


def expected_frame(frames: list[pd.DataFrame], envs: list[Envelope]) -> pd.DataFrame:
    """What read-back must give: envelope columns, then the frames' rows and columns."""
    cids, times, rows, versions, traces, spans = [], [], [], [], [], []
    for frame, env in zip(frames, envs, strict=True):
        for i in range(len(frame)):
            cids.append(env.correlation_id)
            times.append(env.time_us)
            rows.append(i)
            versions.append(env.model_version)
            traces.append(env.trace_id)
            spans.append(env.span_id)
    head = pd.DataFrame(
        {
            "_correlation_id": str_array(cids),
            "_time": pd.to_datetime(np.array(times, dtype=np.int64), unit="us", utc=True).as_unit(
                "us"
            ),
            "_row": np.array(rows, dtype=np.int64),
            "_model_version": str_array(versions),
            "_trace_id": str_array(traces),
            "_span_id": str_array(spans),
        }
    )
    body = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    body = body.reset_index(drop=True)
    out = pd.concat([head, body], axis=1)
    out.columns = pd.Index(list(out.columns), tupleize_cols=False)
    # Avro has one null: missing values of object columns come back as None (not NaN).
    for j in range(out.shape[1]):
        col = out.iloc[:, j]
        if col.dtype == object:
            out.isetitem(j, col.astype(object).where(col.notna(), None))
    return out


def roundtrip(tmp_path, frames: list[pd.DataFrame], name: str = "batch.avro"):
    envs = envelopes(len(frames))
    batch = convert_frames(frames, envs, "model_inputs")
    records, schema = write_and_read(tmp_path, batch, name)
    return batch, records, restore_frame(records, schema), envs


def field(batch: TabularBatch, original: object) -> dict:
    for f in batch.schema["fields"]:
        if f.get(ATTR_ORIGINAL_NAME) == str(original) and f["name"] not in ENVELOPE_NAMES:
            return f
    raise KeyError(original)


def value_type(f: dict) -> object:
    kinds = [t for t in f["type"] if t != "null"]
    assert f["type"][0] == "null" and len(kinds) == 1 and f["default"] is None
    return kinds[0]


# --- to_frame ---------------------------------------------------------------------


def test_to_frame_dataframe_is_returned_as_is():
    df = pd.DataFrame({"a": [1, 2]})
    assert to_frame(df, "dataframe") is df
    with pytest.raises(TypeError, match="DataFrame"):
        to_frame({"a": 1}, "dataframe")


def test_to_frame_row():
    out = to_frame({"a": 1, "b": "x", "c": [1, 2], "d": None}, "row")
    assert out.shape == (1, 4)
    assert out.loc[0, "a"] == 1 and out.loc[0, "b"] == "x" and out.loc[0, "c"] == [1, 2]
    assert to_frame({}, "row").shape == (1, 0)
    with pytest.raises(TypeError, match="dict"):
        to_frame([1, 2], "row")


@pytest.mark.parametrize(
    "row",
    [
        {"a": 1, "b": 2.5, "c": "x", "d": True, "e": None},
        {"big": 2**63, "neg": -(2**63), "huge": 2**70},
        {"np": np.int32(3), "f32": np.float32(0.5), "nb": np.bool_(True)},
        {"t": dt.datetime(2024, 1, 1), "d": dt.date(2024, 1, 1), "dec": D("1.5"), "b": b"x"},
        {"list": [1, 2], "dict": {"k": 1}, "nan": float("nan")},
        {0: 1, ("t", 1): "x", None: 2.5},
    ],
)
def test_to_frame_row_matches_pandas(row):
    """The fast one-row construction gives exactly what pandas would."""
    want = pd.DataFrame({k: [v] for k, v in row.items()})
    pdt.assert_frame_equal(to_frame(row, "row"), want)
    pdt.assert_frame_equal(to_frame([row], "rows"), pd.DataFrame([row]))


def test_to_frame_columns_and_unequal_lengths():
    out = to_frame(
        {"a": [1, 2], "b": np.array([0.5, 1.5]), "c": pd.Series([7, 8], index=[5, 9])}, "columns"
    )
    assert out["a"].tolist() == [1, 2] and out["b"].tolist() == [0.5, 1.5]
    assert out["c"].tolist() == [7, 8]  # values, not aligned on the Series index
    with pytest.raises(ValueError, match="unequal lengths"):
        to_frame({"a": [1, 2], "b": [1]}, "columns")
    with pytest.raises(TypeError, match="not a list"):
        to_frame({"a": "abc"}, "columns")
    with pytest.raises(TypeError):
        to_frame([[1, 2]], "columns")


def test_to_frame_rows_union_of_keys():
    out = to_frame([{"a": 1, "b": "x"}, {"b": "y", "c": True}], "rows")
    assert list(out.columns) == ["a", "b", "c"]
    assert out["b"].tolist() == ["x", "y"]
    assert out["a"].isna().tolist() == [False, True]
    assert out["c"].isna().tolist() == [True, False]
    with pytest.raises(TypeError, match="item 1"):
        to_frame([{"a": 1}, 5], "rows")
    with pytest.raises(TypeError):
        to_frame({"a": 1}, "rows")


def test_to_frame_ndarray_shapes():
    one = to_frame(np.array([1.0, 2.0]), "ndarray")
    assert list(one.columns) == ["value"] and one["value"].tolist() == [1.0, 2.0]
    two = to_frame(np.arange(6).reshape(3, 2), "ndarray")
    assert list(two.columns) == ["0", "1"] and two["1"].tolist() == [1, 3, 5]
    rec = np.array([(1, 2.5), (2, 3.5)], dtype=[("id", "i8"), ("score", "f8")])
    structured = to_frame(rec, "ndarray")
    assert list(structured.columns) == ["id", "score"] and structured["score"].tolist() == [
        2.5,
        3.5,
    ]
    assert list(to_frame(rec.reshape(2, 1), "ndarray").columns) == ["id", "score"]
    with pytest.raises(ValueError, match="dimensions"):
        to_frame(np.zeros((2, 2, 2)), "ndarray")
    with pytest.raises(TypeError):
        to_frame("not an array", "ndarray")


def test_to_frame_unsupported_kind():
    with pytest.raises(ValueError, match="unsupported tabular payload kind 'text'"):
        to_frame("hello", "text")


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), "dataframe"),
        ({"a": 1, "b": "x", "c": 2.5}, "row"),
        ({"a": [1, 2, 3], "b": ["x", "y", None]}, "columns"),
        ([{"a": 1, "b": "x"}, {"a": 2, "c": False}], "rows"),
        (np.array([1.5, np.nan, 3.0]), "ndarray"),
        (np.arange(6, dtype=np.int32).reshape(2, 3), "ndarray"),
        (np.array([(1, b"ab"), (2, b"cd")], dtype=[("id", "i4"), ("tag", "S2")]), "ndarray"),
    ],
    ids=["dataframe", "row", "columns", "rows", "ndarray-1d", "ndarray-2d", "ndarray-structured"],
)
def test_round_trip_each_kind(tmp_path, body, kind):
    frame = to_frame(body, kind)
    _, _, restored, envs = roundtrip(tmp_path, [frame, frame])
    pdt.assert_frame_equal(restored, expected_frame([frame, frame], envs))


# --- dtypes -------------------------------------------------------------------------

PLUS2 = dt.timezone(dt.timedelta(hours=2))

# (id, input column, Avro value type, extra attributes, expected column after read-back or None = same)
DTYPE_CASES = [
    ("int64", pd.Series([1, -(2**63), 2**63 - 1]), "long", {}, None),
    ("int32", pd.Series([1, 2, 3], dtype="int32"), "long", {}, None),
    ("int8", pd.Series([1, -2, 3], dtype="int8"), "long", {}, None),
    ("uint32", pd.Series([1, 2, 2**32 - 1], dtype="uint32"), "long", {}, None),
    ("uint64-fits", pd.Series([1, 2, 3], dtype="uint64"), "long", {}, None),
    (
        "uint64-big",
        pd.Series([1, 2**64 - 1, 2**63], dtype="uint64"),
        "string",
        {ATTR_ENCODING: ENCODING_UINT64},
        None,
    ),
    ("Int64-NA", pd.Series([1, None, 3], dtype="Int64"), "long", {}, None),
    ("UInt8-NA", pd.Series([1, None, 255], dtype="UInt8"), "long", {}, None),
    ("float64", pd.Series([0.5, np.nan, np.inf, -np.inf]), "double", {}, None),
    ("float32", pd.Series([0.5, np.nan, 2.0], dtype="float32"), "double", {}, None),
    ("Float64-NA", pd.Series([0.5, None, 2.0], dtype="Float64"), "double", {}, None),
    ("bool", pd.Series([True, False, True]), "boolean", {}, None),
    ("boolean-NA", pd.Series([True, None, False], dtype="boolean"), "boolean", {}, None),
    ("str", pd.Series(["a", None, "ü"]), "string", {}, None),
    ("string-NA", pd.Series(["a", None, "c"], dtype="string"), "string", {}, None),
    (
        "datetime64-naive",
        pd.Series(
            pd.to_datetime(["2024-01-01 10:00:00.123456", None, "1960-01-01 00:00:00.000000"])
        ).astype("datetime64[ns]"),
        {"type": "long", "logicalType": "local-timestamp-micros"},
        {},
        None,
    ),
    (
        "datetime64-utc",
        pd.Series(pd.to_datetime(["2024-01-01 10:00", None], utc=True)),
        {"type": "long", "logicalType": "timestamp-micros"},
        {ATTR_TIMEZONE: "UTC"},
        None,
    ),
    (
        "datetime64-paris",
        pd.Series(pd.to_datetime(["2024-07-01 10:00", None, "2024-01-01 00:00"])).dt.tz_localize(
            "Europe/Paris"
        ),
        {"type": "long", "logicalType": "timestamp-micros"},
        {ATTR_TIMEZONE: "Europe/Paris"},
        None,
    ),
    (
        "datetime64-fixed-offset",
        pd.Series(pd.to_datetime(["2024-07-01 10:00", None])).dt.tz_localize(PLUS2),
        {"type": "long", "logicalType": "timestamp-micros"},
        {},
        None,
    ),
    (
        "timedelta64",
        pd.Series(pd.to_timedelta(["1 day 00:00:01.5", None, "-3s"])),
        "long",
        {ATTR_ENCODING: ENCODING_TIMEDELTA},
        None,
    ),
    ("category", pd.Series(pd.Categorical(["a", None, "b", "a"])), "string", {}, None),
    ("category-int", pd.Series(pd.Categorical([1, 2, None])), "long", {}, None),
    ("object-str", pd.Series(["a", None, "b"], dtype=object), "string", {}, None),
    ("object-int", pd.Series([1, None, 3], dtype=object), "long", {}, None),
    (
        "object-int-float",
        pd.Series([1, None, 2.5], dtype=object),
        "double",
        {},
        pd.Series([1.0, None, 2.5], dtype=object),
    ),
    ("object-bool", pd.Series([True, None, False], dtype=object), "boolean", {}, None),
    (
        "object-datetime-naive",
        pd.Series([dt.datetime(2024, 1, 1, 12, 30, 0, 5), None], dtype=object),
        {"type": "long", "logicalType": "local-timestamp-micros"},
        {},
        None,
    ),
    (
        "object-datetime-aware",
        pd.Series([dt.datetime(2024, 1, 1, 12, tzinfo=PLUS2), None], dtype=object),
        {"type": "long", "logicalType": "timestamp-micros"},
        {ATTR_TIMEZONE: "UTC+02:00"},
        None,
    ),
    (
        "object-date",
        pd.Series([dt.date(2024, 2, 29), None, dt.date(1900, 1, 1)], dtype=object),
        {"type": "int", "logicalType": "date"},
        {},
        None,
    ),
    (
        "object-time",
        pd.Series([dt.time(23, 59, 59, 999999), None], dtype=object),
        {"type": "long", "logicalType": "time-micros"},
        {},
        None,
    ),
    (
        "object-decimal",
        pd.Series([D("1.5"), None, D("-12345678901234567890.123")], dtype=object),
        {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 3},
        {},
        None,
    ),
    ("object-bytes", pd.Series([b"\x00\xff", None, b""], dtype=object), "bytes", {}, None),
    (
        "object-timedelta",
        pd.Series([dt.timedelta(seconds=1.5), None], dtype=object),
        "long",
        {ATTR_ENCODING: ENCODING_TIMEDELTA},
        None,
    ),
    (
        "object-big-int",
        pd.Series([2**70, None, -1], dtype=object),
        "string",
        {ATTR_ENCODING: ENCODING_JSON},
        None,
    ),
]


@pytest.mark.parametrize(
    ("series", "avro_type", "attrs", "want"),
    [case[1:] for case in DTYPE_CASES],
    ids=[case[0] for case in DTYPE_CASES],
)
def test_dtype_round_trip(tmp_path, series, avro_type, attrs, want):
    frame = pd.DataFrame({"col": series, "other": np.arange(len(series))})
    batch, _, restored, envs = roundtrip(tmp_path, [frame])
    f = field(batch, "col")
    assert value_type(f) == avro_type
    assert f[ATTR_PANDAS_DTYPE] == str(series.dtype)
    for key, value in attrs.items():
        assert f[key] == value
    expected = expected_frame([frame], envs)
    if want is not None:
        expected["col"] = want
    pdt.assert_frame_equal(restored, expected)


def test_dtype_round_trip_in_one_row_frames(tmp_path):
    """The batched path (many one-row frames) gives the same types as one frame."""
    cases = {case[0]: case for case in DTYPE_CASES}
    frame = pd.DataFrame(
        {name: case[1].iloc[:2].reset_index(drop=True) for name, case in cases.items()}
    )
    frames = [frame.iloc[[i]].reset_index(drop=True) for i in range(2)]
    batch, _, restored, _ = roundtrip(tmp_path, frames)
    whole = convert_frames([frame], envelopes(1), "model_inputs")
    assert batch.schema == whole.schema
    assert restored["_row"].tolist() == [0, 0]
    assert restored["_correlation_id"].tolist() == ["corr-0", "corr-1"]
    for name, case in cases.items():
        if name.startswith("category"):
            assert restored[name].dtype == "category"
            assert restored[name].tolist()[:1] == frame[name].tolist()[:1]
            continue
        want = (case[4] if case[4] is not None else frame[name]).iloc[:2].reset_index(drop=True)
        if want.dtype == object:
            want = want.where(want.notna(), None)
        pdt.assert_series_equal(restored[name], want, check_names=False)


def test_nanoseconds_are_truncated_to_microseconds(tmp_path):
    frame = pd.DataFrame({"t": pd.to_datetime(["2024-01-01 00:00:00.123456789"])})
    _, records, restored, _ = roundtrip(tmp_path, [frame])
    assert restored["t"].dtype == "datetime64[ns]"
    assert restored["t"][0] == pd.Timestamp("2024-01-01 00:00:00.123456")


def test_naive_datetimes_are_local_wall_time(tmp_path):
    frame = pd.DataFrame({"t": pd.to_datetime(["2024-01-01 10:00"])})
    batch, records, _, _ = roundtrip(tmp_path, [frame])
    assert value_type(field(batch, "t"))["logicalType"] == "local-timestamp-micros"
    assert records[0]["t"] == dt.datetime(2024, 1, 1, 10, 0)  # no zone: not a UTC instant


def test_nan_is_null_and_inf_stays(tmp_path):
    frame = pd.DataFrame({"x": [np.nan, np.inf, -np.inf, 1.0]})
    _, records, restored, _ = roundtrip(tmp_path, [frame])
    assert [r["x"] for r in records] == [None, np.inf, -np.inf, 1.0]
    assert restored["x"].isna().tolist() == [True, False, False, False]


def test_decimal_scale_is_the_largest_seen(tmp_path):
    frame = pd.DataFrame({"d": [D("1.5"), D("2.25"), D("3")]})
    batch, records, restored, _ = roundtrip(tmp_path, [frame])
    assert value_type(field(batch, "d"))["scale"] == 2
    assert records[0]["d"] == D("1.50")
    assert restored["d"].tolist() == [D("1.5"), D("2.25"), D("3")]


def test_decimals_beyond_38_digits_are_kept_as_text(tmp_path):
    frame = pd.DataFrame({"d": [D("1" * 40), D("NaN"), D("Infinity")]})
    batch, _, restored, _ = roundtrip(tmp_path, [frame])
    assert value_type(field(batch, "d")) == "string"
    assert restored["d"][0] == D("1" * 40)
    assert restored["d"][2] == D("Infinity")
    assert pd.isna(restored["d"][1])  # Decimal NaN is a missing value to pandas: stored as null


def test_category_restores_as_category(tmp_path):
    frame = pd.DataFrame({"c": pd.Categorical(["low", "high", None, "low"])})
    frames = [frame.iloc[[i]].reset_index(drop=True) for i in range(4)]  # different categories
    batch, _, restored, _ = roundtrip(tmp_path, frames)
    assert field(batch, "c")[ATTR_PANDAS_DTYPE] == "category"
    assert restored["c"].dtype == "category"
    assert restored["c"].astype(object).where(restored["c"].notna(), None).tolist() == [
        "low",
        "high",
        None,
        "low",
    ]


# --- object columns ---------------------------------------------------------------


def test_mixed_object_column_is_json(tmp_path):
    frame = pd.DataFrame({"m": pd.Series([1, "a", 2.5, True, None, [1, "x"]], dtype=object)})
    batch, records, restored, _ = roundtrip(tmp_path, [frame])
    f = field(batch, "m")
    assert value_type(f) == "string" and f[ATTR_ENCODING] == ENCODING_JSON
    assert [r["m"] for r in records] == ["1", '"a"', "2.5", "true", None, '[1,"x"]']
    assert restored["m"].tolist() == [1, "a", 2.5, True, None, [1, "x"]]
    assert [type(v) for v in restored["m"]][:4] == [int, str, float, bool]


def test_nested_values_are_json_with_numpy_inside(tmp_path):
    frame = pd.DataFrame(
        {
            "n": pd.Series(
                [
                    [1, 2, 3],
                    {"a": np.int64(3), "b": [np.float32(0.5), None], "c": np.array([1, 2])},
                    (1, "x"),
                    np.array([[1.5, 2.5]]),
                    None,
                    {"when": dt.date(2024, 1, 1), "raw": b"\x01", "ok": np.bool_(True)},
                ],
                dtype=object,
            )
        }
    )
    batch, records, restored, envs = roundtrip(tmp_path, [frame])
    assert field(batch, "n")[ATTR_ENCODING] == ENCODING_JSON
    assert json.loads(records[1]["n"]) == {"a": 3, "b": [0.5, None], "c": [1, 2]}
    assert restored["n"].tolist() == [
        [1, 2, 3],
        {"a": 3, "b": [0.5, None], "c": [1, 2]},
        [1, "x"],
        [[1.5, 2.5]],
        None,
        {"when": "2024-01-01", "raw": "AQ==", "ok": True},
    ]


def test_bytes_and_bytearray_are_bytes(tmp_path):
    frame = pd.DataFrame({"b": pd.Series([b"ab", bytearray(b"cd"), None], dtype=object)})
    batch, _, restored, _ = roundtrip(tmp_path, [frame])
    assert value_type(field(batch, "b")) == "bytes"
    assert restored["b"].tolist() == [b"ab", b"cd", None]


def test_object_datetimes_in_several_zones_are_utc(tmp_path):
    values = [dt.datetime(2024, 1, 1, 12, tzinfo=PLUS2), dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC)]
    frame = pd.DataFrame({"t": pd.Series(values, dtype=object)})
    batch, _, restored, _ = roundtrip(tmp_path, [frame])
    assert field(batch, "t")[ATTR_TIMEZONE] == "UTC"
    assert restored["t"].tolist() == values  # same instants


def test_large_string_is_stored_as_is(tmp_path):
    big = "é" * (1 << 20)
    frame = pd.DataFrame({"s": [big, "small"]})
    _, records, restored, _ = roundtrip(tmp_path, [frame])
    assert records[0]["s"] == big
    assert restored["s"][0] == big


# --- column names -------------------------------------------------------------------


def test_odd_column_names(tmp_path):
    names = [
        "a b",
        "a.b",
        "a-b",
        "1st",
        "temperatura °C",
        "",
        0,
        "dup",
        "dup",
        "_time",
        "a_b",
        ("x", 1),
        2.5,
    ]
    frame = pd.DataFrame(
        [list(range(len(names)))], columns=pd.Index(names, dtype=object, tupleize_cols=False)
    )
    batch, records, restored, envs = roundtrip(tmp_path, [frame, frame])
    fields = batch.schema["fields"]
    field_names = [f["name"] for f in fields]
    assert all(AVRO_NAME.match(n) for n in field_names)
    assert len(set(field_names)) == len(field_names)
    assert field_names[6:] == [
        "a_b",
        "a_b__2",
        "a_b__3",
        "_1st",
        "temperatura__C",
        "_",
        "_0",
        "dup",
        "dup__2",
        "_time__2",
        "a_b__4",
        "x_1",
        "_2_5",
    ]
    assert [f[ATTR_ORIGINAL_NAME] for f in fields[6:]][:6] == names[:6]
    assert fields[12][ATTR_ORIGINAL_NAME_TYPE] == "int"
    assert batch.rows[0]["_time"] == T0 and batch.rows[0]["_time__2"] == 9
    assert records[0]["_time__2"] == 9
    assert list(restored.columns[6:]) == names
    assert type(restored.columns[12]) is int
    assert restored.columns[17] == ("x", 1)
    pdt.assert_frame_equal(restored, expected_frame([frame, frame], envs))


def test_name_sanitising_is_deterministic():
    frame = pd.DataFrame({"a b": [1], "a-b": [2], "ü": [3]})
    one = convert_frames([frame], envelopes(1), "r").schema
    two = convert_frames([frame.copy()], envelopes(1), "r").schema
    assert one == two
    assert [f["name"] for f in one["fields"][6:]] == ["a_b", "a_b__2", "_"]


def test_int_and_str_names_that_look_alike_stay_apart(tmp_path):
    frame = pd.DataFrame([[1, 2]], columns=pd.Index([0, "0"], dtype=object))
    _, _, restored, _ = roundtrip(tmp_path, [frame])
    assert list(restored.columns[6:]) == [0, "0"]
    assert [type(c) for c in restored.columns[6:]] == [int, str]


def test_wide_frame_10000_columns(tmp_path):
    n = 10_000
    data = np.arange(3 * n, dtype=np.int64).reshape(3, n)
    frame = pd.DataFrame(data, columns=[f"feature {i}" for i in range(n)])
    frame["feature 0"] = frame["feature 0"].astype(float)
    started = time.perf_counter()
    batch, _, restored, envs = roundtrip(tmp_path, [frame, frame])
    elapsed = time.perf_counter() - started
    assert len(batch.schema["fields"]) == n + 6
    pdt.assert_frame_equal(restored, expected_frame([frame, frame], envs))
    assert elapsed < 60


def test_many_colliding_names_are_not_quadratic():
    names = ["x"] * 5000 + ["x__2", "x__3"]
    frame = pd.DataFrame(np.zeros((1, len(names))), columns=names)
    started = time.perf_counter()
    schema = convert_frames([frame], envelopes(1), "r").schema
    assert time.perf_counter() - started < 10
    field_names = [f["name"] for f in schema["fields"]]
    assert len(set(field_names)) == len(field_names)


# --- batches and schemas ------------------------------------------------------------


def test_schema_shape_and_envelope(tmp_path):
    frame = pd.DataFrame({"a": [1, 2]})
    batch = convert_frames([frame], envelopes(1), "model_inputs")
    assert batch.schema["name"] == "model_inputs"
    assert batch.schema["namespace"] == NAMESPACE
    assert [f["name"] for f in batch.schema["fields"][:6]] == [
        "_correlation_id",
        "_time",
        "_row",
        "_model_version",
        "_trace_id",
        "_span_id",
    ]
    env = envelopes(1)[0]
    assert batch.rows == [{**env.fields(row=0), "a": 1}, {**env.fields(row=1), "a": 2}]
    fastavro.parse_schema(batch.schema)


def test_identical_frames_give_identical_schemas():
    def make(seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.DataFrame(
            {
                "x": rng.normal(size=3),
                "n": rng.integers(0, 10, 3),
                "s": [f"v{seed}"] * 3,
                "t": pd.to_datetime(rng.integers(0, 10**15, 3), unit="us"),
            }
        )

    a = convert_frames([make(1)], envelopes(1), "r").schema
    b = convert_frames([make(2), make(3)], envelopes(2), "r").schema
    assert fingerprint(a) == fingerprint(b)
    c = convert_frames([make(1).rename(columns={"x": "y"})], envelopes(1), "r").schema
    assert fingerprint(a) != fingerprint(c)


def test_frames_with_differing_dtypes_share_a_widened_schema(tmp_path):
    frames = [
        pd.DataFrame({"s": [None], "n": [1], "f": [1.5]}),
        pd.DataFrame({"s": ["text"], "n": [2.5], "f": [np.nan]}),
        pd.DataFrame({"s": [None], "n": [3], "f": [2.0]}),
    ]
    batch, records, restored, _ = roundtrip(tmp_path, frames)
    assert value_type(field(batch, "s")) == "string"
    assert value_type(field(batch, "n")) == "double"
    assert [r["s"] for r in records] == [None, "text", None]
    assert [r["n"] for r in records] == [1.0, 2.5, 3.0]
    assert restored["n"].tolist() == [1.0, 2.5, 3.0]
    # All-null parts do not vote: "s" is a str column, as if "text" had come alone.
    assert field(batch, "s")[ATTR_PANDAS_DTYPE] == str(STR_DTYPE)  # "object" on pandas 2
    assert restored["s"].isna().tolist() == [True, False, True] and restored["s"][1] == "text"


def test_category_and_str_frames_in_one_batch(tmp_path):
    frames = [
        pd.DataFrame({"c": pd.Categorical(["a"]), "n": [1]}),
        pd.DataFrame({"c": ["b"], "n": [2]}),
        pd.DataFrame({"c": pd.Categorical([None], categories=["z"]), "n": [3]}),
    ]
    batch, records, restored, _ = roundtrip(tmp_path, frames)
    assert value_type(field(batch, "c")) == "string"
    assert [r["c"] for r in records] == ["a", "b", None]
    assert restored["c"].tolist()[:2] == ["a", "b"]
    assert restored["c"].isna().tolist() == [False, False, True]


def test_rows_follow_frames_and_envelopes(tmp_path):
    frames = [
        pd.DataFrame({"a": [1, 2]}),
        pd.DataFrame({"a": []}, dtype="int64"),
        pd.DataFrame({"a": [3]}),
    ]
    batch, records, restored, _ = roundtrip(tmp_path, frames)
    assert [(r["_correlation_id"], r["_row"], r["a"]) for r in records] == [
        ("corr-0", 0, 1),
        ("corr-0", 1, 2),
        ("corr-2", 0, 3),
    ]
    assert restored["_time"].dtype == "datetime64[us, UTC]"
    assert restored["_time"].tolist()[2] == pd.Timestamp(T0 + 2, unit="us", tz="UTC")


def test_frames_with_different_block_layouts(tmp_path):
    """Frames with equal columns but different internal layouts (2-D blocks or one per column)."""
    times = np.array([["2024-01-01T10:00", "2024-01-02T00:00"]], dtype="datetime64[us]")
    frames = [
        pd.DataFrame(np.array([[1, 2]]), columns=["a", "b"]).assign(
            t=pd.DataFrame(times, columns=["t", "u"])["t"]
        ),
        pd.DataFrame({"a": [3], "b": [4], "t": pd.to_datetime(["2024-03-01"]).as_unit("us")}),
        pd.DataFrame({"a": [5, 6], "b": [7, 8], "t": [pd.NaT, pd.Timestamp("2024-04-01")]}).astype(
            {"t": "datetime64[us]"}
        ),
    ]
    two_d = pd.DataFrame(np.repeat(times, 3, axis=0), columns=["t", "u"])
    _, _, restored, envs = roundtrip(tmp_path, frames, "layouts.avro")
    pdt.assert_frame_equal(restored, expected_frame(frames, envs))
    _, _, restored, envs = roundtrip(tmp_path, [two_d, two_d.iloc[:1]], "two_d.avro")
    pdt.assert_frame_equal(restored, expected_frame([two_d, two_d.iloc[:1]], envs))


@pytest.mark.parametrize(
    "values",
    [
        pd.period_range("2024-01", periods=3, freq="M"),
        np.array([1 + 2j, 3j, 0j]),
        pd.arrays.SparseArray([0.0, 1.5, 0.0]),
        np.array([1.5, np.nan, 2.0], dtype=np.float16),
    ],
    ids=["period", "complex", "sparse", "float16"],
)
def test_other_dtypes_come_back(tmp_path, values):
    frame = pd.DataFrame({"x": values})
    _, _, restored, envs = roundtrip(tmp_path, [frame])
    pdt.assert_frame_equal(restored, expected_frame([frame], envs))


def test_dateutil_zone_is_restored_by_name(tmp_path):
    tz = dateutil.tz.gettz("Europe/Paris")
    frame = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-07-01"]).tz_localize(tz)})
    batch, _, restored, _ = roundtrip(tmp_path, [frame])
    assert field(batch, "t")[ATTR_TIMEZONE] == "Europe/Paris"
    assert str(restored["t"].dt.tz) == "Europe/Paris"
    assert restored["t"].tolist() == frame["t"].tolist()


def test_frames_with_different_columns_are_aligned():
    frames = [pd.DataFrame({"a": [1], "b": ["x"]}), pd.DataFrame({"b": ["y"], "c": [True]})]
    batch = convert_frames(frames, envelopes(2), "r")
    assert [f["name"] for f in batch.schema["fields"][6:]] == ["a", "b", "c"]
    assert [(r["a"], r["b"], r["c"]) for r in batch.rows] == [(1.0, "x", None), (None, "y", True)]


def test_empty_frame_gives_a_schema_and_no_records(tmp_path):
    frame = pd.DataFrame({"a": pd.Series([], dtype="int64"), "b": pd.Series([], dtype="str")})
    batch, records, restored, envs = roundtrip(tmp_path, [frame])
    assert records == [] and batch.rows == []
    # pandas 2 gives an empty text column the object dtype: no values, no type to record.
    expected = ["long", "string"] if PANDAS_3 else ["long"]
    assert [value_type(f) for f in batch.schema["fields"][6:]] == expected
    pdt.assert_frame_equal(restored, expected_frame([frame], envs))


def test_argument_errors():
    frame = pd.DataFrame({"a": [1]})
    with pytest.raises(ValueError, match="envelopes"):
        convert_frames([frame, frame], envelopes(1), "r")
    with pytest.raises(ValueError):
        convert_frames([], [], "r")
    with pytest.raises(TypeError):
        convert_frames([{"a": 1}], envelopes(1), "r")
    dup = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(ValueError, match="duplicate"):
        convert_frames([dup, frame], envelopes(2), "r")


# --- restore_frames -----------------------------------------------------------------


def test_restore_frames_across_schemas(tmp_path):
    part_a = pd.DataFrame(
        {
            "x": [1, 2],
            "label": ["a", "b"],
            "flag": [True, False],
            "cat": pd.Categorical(["u", "v"]),
            "mixed": [1, 2],
            "obj": pd.Series(["p", "q"], dtype=object),
        }
    )
    part_b = pd.DataFrame(
        {
            "x": [0.5],
            "cat": pd.Categorical(["w"]),
            "extra": pd.to_datetime(["2024-01-01"], utc=True),
            "mixed": ["text"],
            "label": pd.Series([None], dtype=object),
            "obj": pd.Series(["r"], dtype=object),
        }
    )
    parts = []
    for i, frame in enumerate([part_a, part_b]):
        batch = convert_frames([frame], envelopes(1), "model_inputs")
        parts.append(write_and_read(tmp_path, batch, f"part{i}.avro"))
    assert fingerprint(parts[0][1]) != fingerprint(parts[1][1])
    out = restore_frames(parts)
    assert list(out.columns) == [
        *["_correlation_id", "_time", "_row", "_model_version", "_trace_id", "_span_id"],
        *["x", "label", "flag", "cat", "mixed", "obj", "extra"],
    ]
    assert len(out) == 3
    assert out["x"].dtype == "float64" and out["x"].tolist() == [1.0, 2.0, 0.5]
    assert out["label"].dtype == STR_DTYPE  # the all-null part does not vote
    assert out["label"].isna().tolist() == [False, False, True]
    assert out["flag"].dtype == "boolean" and out["flag"].isna().tolist() == [False, False, True]
    assert out["cat"].dtype == "category" and list(out["cat"]) == ["u", "v", "w"]
    assert out["mixed"].dtype == object and out["mixed"].tolist() == [1, 2, "text"]
    assert out["obj"].dtype == object and out["obj"].tolist() == ["p", "q", "r"]
    assert out["extra"].dtype == part_b["extra"].dtype  # datetime64[us, UTC] from pandas 3
    assert out["extra"].isna().tolist() == [True, True, False]
    assert out["_row"].tolist() == [0, 1, 0]


def test_restore_frames_int_missing_becomes_nullable(tmp_path):
    parts = []
    for i, frame in enumerate([pd.DataFrame({"n": [1, 2]}), pd.DataFrame({"m": [3]})]):
        batch = convert_frames([frame], envelopes(1), "r")
        parts.append(write_and_read(tmp_path, batch, f"p{i}.avro"))
    out = restore_frames(parts)
    assert out["n"].dtype == "Int64" and out["n"].isna().tolist() == [False, False, True]
    assert out["m"].dtype == "Int64" and out["m"].tolist()[2] == 3


def test_restore_frames_of_nothing_and_one():
    empty = restore_frames([])
    assert list(empty.columns) == sorted(ENVELOPE_NAMES, key=list(empty.columns).index)
    assert len(empty) == 0
    batch = convert_frames([pd.DataFrame({"a": [1]})], envelopes(1), "r")
    one = restore_frames([(batch.rows, batch.schema)])
    assert one["a"].tolist() == [1]


def test_restore_frame_of_a_foreign_file(tmp_path):
    schema = {
        "type": "record",
        "name": "other",
        "fields": [{"name": "k", "type": "string"}, {"name": "v", "type": ["null", "long"]}],
    }
    path = tmp_path / "foreign.avro"
    with open(path, "wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(schema), [{"k": "a", "v": 1}, {"k": "b", "v": 2}])
    with open(path, "rb") as fh:
        reader = fastavro.reader(fh)
        out = restore_frame(reader, reader.writer_schema)
    assert out["k"].tolist() == ["a", "b"] and out["v"].tolist() == [1, 2]
