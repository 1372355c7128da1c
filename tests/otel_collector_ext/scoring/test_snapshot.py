import datetime as dt
import decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import otel_collector_ext as oce
from exporters import contract as A
from otel_collector_ext.scoring.snapshot import EmptyPayload, snapshot


def test_dataframe_snapshot_is_immune_to_later_changes() -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "f": [0.5, 1.5]})
    kind, body = snapshot(df)
    df.loc[0, "a"] = 99
    df.iloc[1, 1] = "changed"
    df["f"] *= 10
    df.loc[1, "f"] = -1.0
    df["c"] = 1.5
    df.index = [10, 11]
    df.columns = ["A", "B", "F", "C"]
    del df["C"]
    assert kind == A.KIND_DATAFRAME
    assert body["a"].tolist() == [1, 2] and body["b"].tolist() == ["x", "y"]
    assert body["f"].tolist() == [0.5, 1.5] and list(body.columns) == ["a", "b", "f"]
    assert body.index.tolist() == [0, 1]
    body.loc[0, "a"] = 5  # and the other way round: the snapshot is not a window
    assert df["A"].tolist() == [99, 2]


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"a": 1, "b": "x", "c": None, "d": dt.datetime(2026, 1, 1), "e": decimal.Decimal("1.5"),
          "f": np.float32(2)}, A.KIND_ROW),
        ({"a": [1, 2], "b": np.array([3, 4]), "c": pd.Series([5, 6])}, A.KIND_COLUMNS),
        ([{"a": 1}, {"b": 2}], A.KIND_ROWS),
        (np.arange(6).reshape(2, 3), A.KIND_NDARRAY),
        (np.arange(3), A.KIND_NDARRAY),
        ("free text", A.KIND_TEXT),
        (b"\x00\xff", A.KIND_BYTES),
        (bytearray(b"ab"), A.KIND_BYTES),
        ([1, 2, 3], A.KIND_JSON),
        ({"nested": {"x": [1]}, "n": 1}, A.KIND_JSON),
        (42, A.KIND_JSON),
        (None, A.KIND_JSON),
        (pd.Series([1.0, 2.0], name="s"), A.KIND_DATAFRAME),
    ],
)
def test_kinds(data: object, kind: str) -> None:
    assert snapshot(data)[0] == kind


def test_containers_are_copied() -> None:
    row = {"a": 1}
    cols = {"a": [1, 2]}
    rows = [{"a": 1}]
    arr = np.arange(3)
    snaps = [snapshot(x)[1] for x in (row, cols, rows, arr)]
    row["a"] = 2
    cols["a"].append(3)
    rows[0]["a"] = 5
    arr[0] = 100
    assert snaps[0] == {"a": 1} and snaps[1] == {"a": [1, 2]} and snaps[2] == [{"a": 1}]
    assert snaps[3][0] == 0


@pytest.mark.parametrize("data", [pd.DataFrame(), pd.DataFrame({"a": []}), {}, [],
                                  np.array([]), {"a": []}, pd.Series([], dtype=float)])
def test_empty_payloads(data: object) -> None:
    with pytest.raises(EmptyPayload):
        snapshot(data)


@pytest.mark.parametrize("data", [object(), {1, 2}, lambda: 1, [object()], {"a": object()}])
def test_unsupported_types(data: object) -> None:
    with pytest.raises(TypeError, match="cannot collect"):
        snapshot(data)


def test_malformed_values() -> None:
    with pytest.raises(ValueError, match="equal-length"):
        snapshot({"a": [1, 2], "b": [1]})
    with pytest.raises(ValueError, match="1-D or 2-D"):
        snapshot(np.zeros((2, 2, 2)))


# pandas 2 lets the application choose Copy-on-Write (off by default, "warn", on);
# pandas 3 has it always on. The snapshot must be a true snapshot in every mode.
COW_MODES = ["always"] if int(pd.__version__.split(".")[0]) >= 3 else [False, "warn", True]


@pytest.mark.parametrize("mode", COW_MODES)
def test_changes_after_collect_do_not_change_what_is_stored(
        mode: object, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if mode != "always":
        pd.set_option("mode.copy_on_write", mode)
        request.addfinalizer(lambda: pd.set_option("mode.copy_on_write", False))
    oce.configure({"exporter": {"type": "avro", "destination": str(tmp_path)},
                   "batch": {"schedule_delay_millis": 3_600_000}})  # stored at flush only
    frame = pd.DataFrame({"a": [1, 2], "f": [0.5, 1.5], "s": ["x", "y"]})
    series = pd.Series([10.0, 20.0], name="v")
    array = np.array([[1, 2], [3, 4]])
    oce.Collector(name="frames").collect(frame)
    oce.Collector(name="series").collect(series)
    oce.Collector(name="arrays").collect(array)
    # In place, through every door pandas and numpy leave open in that mode.
    frame.loc[0, "a"] = 99
    frame.iloc[1, 2] = "changed"
    frame["f"] *= 10
    if not frame["a"].to_numpy().flags.writeable:  # Copy-on-Write: the arrays are read-only
        assert mode in (True, "always")
    else:
        frame["a"].to_numpy()[1] = -1
        series.to_numpy()[0] = -1.0
    series.iloc[1] = -2.0
    array[0, 0] = -5
    assert oce.flush()

    def stored(collection: str) -> pd.DataFrame:
        return oce.load(str(tmp_path), endpoint="default", deployment="default",
                        collection=collection)

    got = stored("frames")
    assert got["a"].tolist() == [1, 2] and got["f"].tolist() == [0.5, 1.5]
    assert got["s"].tolist() == ["x", "y"]
    assert stored("series")["v"].tolist() == [10.0, 20.0]
    assert stored("arrays")[["0", "1"]].to_numpy().tolist() == [[1, 2], [3, 4]]
