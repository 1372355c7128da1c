"""Batch conversion stores exactly what frame-by-frame conversion stores.

The exporter converts every frame of one batch that shares a column signature in one
columnar pass. Whatever the frames hold (mixed dtypes, nulls, categoricals, datetimes
with zones, odd column names), the rows, their values and the collection's newest
schema must be the same as when each frame is exported (and typed) on its own.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporters import contract as A
from exporters.avro.schema import CORRELATION_ID, ROW
from exporters.avro.tabular import column_key
from tests.support.schema_helpers import export_bodies, latest, read_back

PARIS = "Europe/Paris"
T = dt.datetime(2026, 3, 29, 0, 30)  # around a daylight-saving change in Paris
# Odd names: spaces, a leading digit, names that sanitise alike, non-ASCII, an int, an
# empty string.
COLUMNS: dict[Any, tuple[str, st.SearchStrategy[Any]]] = {
    "zip code": ("int64", st.integers(-(2**63), 2**63 - 1)),
    "1st": ("float64", st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))),
    "a-b": ("str", st.one_of(st.none(), st.text(max_size=5))),
    "a_b": ("category", st.one_of(st.none(), st.sampled_from(["low", "mid", "high"]))),
    "naïve": ("datetime64[us]", st.one_of(st.none(), st.datetimes(min_value=T.replace(year=1990),
                                                                   max_value=T))),
    "seen": (f"datetime64[ns, {PARIS}]", st.one_of(st.none(), st.integers(0, 7200))),
    "a.b": ("boolean", st.one_of(st.none(), st.booleans())),
    0: ("Int64", st.one_of(st.none(), st.integers(-1000, 1000))),
    # One Python type per object column: how values of several types in one column are
    # typed is the schema rules' business (exporters.schema_evolution), not batching's.
    "": ("object", st.one_of(st.none(), st.text(max_size=3))),
}


def _frame(cells: dict[Any, list[Any]]) -> pd.DataFrame:
    columns = {}
    for name, values in cells.items():
        dtype = COLUMNS[name][0]
        if dtype.startswith("datetime64[ns,"):
            columns[name] = pd.to_datetime(
                [None if v is None else pd.Timestamp(T, tz=PARIS) + pd.Timedelta(seconds=v)
                 for v in values], utc=True).tz_convert(PARIS).as_unit("ns")
        elif dtype == "float64":
            columns[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
        elif dtype == "object":
            columns[name] = pd.Series(values, dtype=object)
        else:
            columns[name] = pd.Series(values, dtype=dtype)
    frame = pd.DataFrame({i: pd.Series(v).reset_index(drop=True)
                          for i, v in enumerate(columns.values())})
    frame.columns = pd.Index(list(cells), dtype=object)
    return frame


@st.composite
def frames(draw: st.DrawFn) -> list[pd.DataFrame]:
    names = draw(st.lists(st.sampled_from(list(COLUMNS)), min_size=1, max_size=len(COLUMNS),
                          unique=True))
    out = []
    for _ in range(draw(st.integers(1, 5))):
        rows = draw(st.integers(1, 3))
        out.append(_frame({n: draw(st.lists(COLUMNS[n][1], min_size=rows, max_size=rows))
                           for n in names}))
    return out


def _export(root: Path, batches: list[list[pd.DataFrame]]) -> None:
    exporter = export_bodies(root, batches, A.KIND_DATAFRAME)
    assert exporter.tally.get("records.dropped") == 0


def _stored_rows(root: Path) -> list[dict[str, Any]]:
    """Every stored row, read with the collection's newest schema (as Spark would)."""
    rows = []
    for path in sorted(root.rglob("*.avro")):
        with open(path, "rb") as f:
            rows.extend(fastavro.reader(f, reader_schema=latest(root)))
    return sorted(rows, key=lambda r: (r[CORRELATION_ID], r[ROW]))


def _comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # NaN != NaN: compare floats by their text.
    return [{k: repr(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows]


# Derandomized (and no example database in the work tree), as the fuzz tests are.
@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames())
def test_one_batch_stores_what_frame_by_frame_stores(batch: list[pd.DataFrame]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        together, alone = Path(tmp, "together"), Path(tmp, "alone")
        _export(together, [batch])
        _export(alone, [[f] for f in batch])
        assert _comparable(_stored_rows(together)) == _comparable(_stored_rows(alone))
        assert len(_stored_rows(together)) == sum(len(f) for f in batch)
        assert latest(together) == latest(alone)
        pd.testing.assert_frame_equal(read_back(together), read_back(alone), check_exact=True)


def test_column_key_is_the_tuple_of_names() -> None:
    arrow = pd.DataFrame({"a": [1], "b c": [2], "ä": [3]}).columns
    assert column_key(arrow) == ("a", "b c", "ä") == tuple(arrow)
    for columns in (pd.Index(["a", None]), pd.Index([0, 1.5, "x"], dtype=object),
                    pd.RangeIndex(3), pd.MultiIndex.from_tuples([("a", 1), ("b", 2)])):
        assert column_key(columns) == tuple(columns)
