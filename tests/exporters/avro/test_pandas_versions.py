"""What is stored does not depend on the pandas (2.2+, 3.x) or numpy (1.26+, 2.x) that
runs the scoring process: the same payloads give the same Avro schema and rows as the
file in tests/data, written once; `scripts/test` runs this under both pandas majors.

Only the recorded pandas dtype may differ, as the frames themselves do (pandas 2 makes
object columns of text and nanosecond datetimes, pandas 3 "str" and microseconds): it
is what read-back restores, so each reader gets the dtypes its own pandas would make.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from exporters.avro.schema import Envelope
from exporters.avro.tabular import ATTR_PANDAS_DTYPE, convert_frames, to_frame
from otel_collector_ext.scoring.snapshot import snapshot

GOLDEN = Path(__file__).parents[2] / "data" / "stored_under_any_pandas.json"


def payloads() -> dict[str, Any]:
    return {
        "frame": pd.DataFrame({
            "i": [1, -2, 3], "f": [0.5, np.nan, np.inf], "b": [True, False, True],
            "s": ["x", None, "ü"], "cat": pd.Categorical(["a", "b", "a"]),
            "t": pd.to_datetime(["2026-01-01 10:00", "2026-01-02 00:00", None]),
            "tz": pd.to_datetime(["2026-01-01 10:00", "2026-06-01 00:00", "2026-12-31 23:59"],
                                 utc=True).tz_convert("Europe/Paris"),
            "d": [dt.date(2026, 1, 1), None, dt.date(1999, 12, 31)],
            "dec": [decimal.Decimal("1.25"), None, decimal.Decimal("-3")],
            "nested": [[1, 2], {"k": "v"}, None],
            "td": pd.to_timedelta([1, 2, 3], unit="s"),
            "Int": pd.array([1, None, 3], dtype="Int64"),
        }),
        "series": pd.Series([1.5, 2.5], name="score"),
        "row": {"a": 1, "b": "x", "c": None, "d": 2.5, "e": True},
        "columns": {"a": [1, 2], "b": ["x", "y"], "c": np.array([0.1, 0.2])},
        "rows": [{"a": 1, "b": "x"}, {"a": 2}, {"b": "z", "c": [1]}],
        "ndarray": np.arange(6, dtype=np.int32).reshape(3, 2),
    }


def stored() -> dict[str, Any]:
    out = {}
    for name, data in payloads().items():
        kind, body = snapshot(data)
        batch = convert_frames([to_frame(body, kind)], [Envelope("cid", 1_767_225_600_000_000)],
                               "inputs")
        schema = json.loads(json.dumps(batch.schema))
        for field in schema["fields"]:
            field.pop(ATTR_PANDAS_DTYPE, None)
        out[name] = {"schema": schema, "rows": json.loads(json.dumps(batch.rows, default=repr))}
    return out


def test_stored_schemas_and_rows_are_the_same_under_every_pandas() -> None:
    assert stored() == json.loads(GOLDEN.read_text())


if __name__ == "__main__":  # how the file was written (python -m tests.exporters.avro.test_pandas_versions)
    GOLDEN.write_text(json.dumps(stored(), indent=1, sort_keys=True) + "\n")
