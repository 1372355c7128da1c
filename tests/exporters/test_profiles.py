"""Column profiles (exporters.profiles): merged profiles of any split of the rows agree with
the rows themselves, within the sketch's documented error; odd columns; hostile files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporters.profiles import (
    FREQUENT_CAPACITY,
    MAX_PROFILE_BYTES,
    RELATIVE_ACCURACY,
    FileProfile,
    ProfileError,
)

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
SCHEMA = {"type": "record", "name": "r", "fields": [
    {"name": "_time", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "x", "type": ["null", "double"], "originalName": "x"},
    {"name": "n", "type": ["null", "long"], "originalName": "n"},
    {"name": "c", "type": ["null", "string"], "originalName": "c"},
]}


def draw_values(distribution: str, rng: np.random.Generator, n: int) -> np.ndarray:
    return {
        "normal": lambda: rng.normal(50, 10, n),
        "lognormal": lambda: rng.lognormal(0, 2, n),
        "uniform": lambda: rng.uniform(-1, 1, n),
        "cauchy": lambda: rng.standard_cauchy(n),
        "mixture": lambda: np.where(rng.random(n) < 0.3, rng.normal(-1e3, 5, n),
                                    rng.exponential(1e-3, n)),
    }[distribution]()


def profile_of_chunks(rows: list[dict], cuts: list[int]) -> FileProfile:
    """Profiles of consecutive chunks, each through JSON, merged."""
    bounds = [0, *sorted(c % (len(rows) + 1) for c in cuts), len(rows)]
    merged = FileProfile()
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        part = FileProfile()
        part.add_datums(SCHEMA, rows[lo:hi])
        merged.merge(FileProfile.from_json(part.to_json()))
    return merged


@PROPERTY
@given(distribution=st.sampled_from(["normal", "lognormal", "uniform", "cauchy", "mixture"]),
       n=st.integers(1, 3000), seed=st.integers(0, 2**32 - 1),
       null_share=st.floats(0, 0.5), cuts=st.lists(st.integers(0, 10_000), max_size=6))
def test_merged_profiles_agree_with_the_rows(distribution, n, seed, null_share, cuts):
    rng = np.random.default_rng(seed)
    x = draw_values(distribution, rng, n)
    ints = rng.integers(-5, 40, n)
    cats = rng.choice(["a", "b", "c", "dd", "é"], n, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    null = rng.random(n) < null_share
    rows = [{"_time": 1_000 + i, "x": None if null[i] else float(x[i]), "n": int(ints[i]),
             "c": None if null[i] else str(cats[i])} for i in range(n)]
    profile = profile_of_chunks(rows, cuts)
    assert profile.rows == n and (profile.time_min, profile.time_max) == (1_000, 1_000 + n - 1)

    values = x[~null]
    col = profile.columns["x"]
    assert (col.count, col.nulls, col.type_errors) == (len(values), int(null.sum()), 0)
    if len(values):
        assert (col.minimum, col.maximum) == (values.min(), values.max())
        assert col.moments.mean == pytest.approx(values.mean(), rel=1e-9, abs=1e-9 * np.abs(values).max())
        assert col.variance == pytest.approx(values.var(), rel=1e-6, abs=1e-12)
        # Quantiles: within RELATIVE_ACCURACY of the true (lower) quantile.
        ordered = np.sort(values)
        for q in (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0):
            true = ordered[int(math.floor(q * (len(values) - 1)))]
            got = col.histogram.quantile(q)
            assert abs(got - true) <= RELATIVE_ACCURACY * abs(true) + 1e-12, (q, got, true)
        # Counts below any edge: exact but for the values within 1 % of the edge.
        edges = np.quantile(values, [0.1, 0.3, 0.5, 0.7, 0.9]) * 1.003
        got = col.histogram.count_below(edges)
        for edge, count in zip(edges, got, strict=True):
            near = np.abs(values - edge) <= 2 * RELATIVE_ACCURACY * abs(edge) + 1e-12
            assert abs(count - (values < edge).sum()) <= near.sum() + 1e-9

    # Few distinct values: counts are exact (error 0).
    ints_col = profile.columns["n"]
    assert ints_col.frequent.error == 0 and ints_col.integer
    found, counts = np.unique(ints, return_counts=True)
    assert ints_col.frequent.counts == {str(v): int(c) for v, c in zip(found, counts, strict=True)}
    cat_col = profile.columns["c"]
    found, counts = np.unique(cats[~null], return_counts=True)
    assert cat_col.frequent.counts == {str(v): int(c) for v, c in zip(found, counts, strict=True)}


def test_huge_cardinality_keeps_the_misra_gries_bound():
    rng = np.random.default_rng(3)
    heavy = ["hot"] * 3000 + ["warm"] * 1500
    rare = [f"id-{i}" for i in range(20_000)]
    values = heavy + rare
    order = rng.permutation(len(values))
    rows = [{"_time": 0, "x": None, "n": None, "c": values[i]} for i in order]
    profile = profile_of_chunks(rows, [777, 5000, 9999, 15000])
    freq = profile.columns["c"].frequent
    assert len(freq.counts) <= FREQUENT_CAPACITY and freq.error > 0
    true = {"hot": 3000, "warm": 1500}
    for item, count in freq.counts.items():
        real = true.get(item, 1)
        assert real - freq.error <= count <= real
    assert {"hot", "warm"} <= set(freq.counts)  # their true counts exceed the error bound
    assert freq.error <= len(values) / (FREQUENT_CAPACITY + 1)


@pytest.mark.parametrize("values, expected", [
    ([], {"count": 0, "nulls": 0}),
    ([None, None, None], {"count": 0, "nulls": 3, "minimum": None}),
    ([7.0] * 50, {"count": 50, "minimum": 7.0, "maximum": 7.0, "variance": 0.0}),
    ([1.0, float("nan"), float("inf"), -float("inf"), None, 3.0],
     {"count": 5, "nulls": 1, "nan": 1, "pos_inf": 1, "neg_inf": 1, "minimum": 1.0,
      "maximum": 3.0, "variance": 1.0}),
    ([1.0, "two", True, 3, {"a": 1}, None], {"count": 2, "nulls": 1, "type_errors": 3}),
    ([1e308, 1e308, -1e308, 5e-324, 0.0],
     {"count": 5, "minimum": -1e308, "maximum": 1e308, "variance": None}),
])
def test_odd_numeric_columns(values, expected):
    profile = FileProfile()
    profile.add_columns(len(values), {"x": ("numeric", False, values)})
    col = FileProfile.from_json(profile.to_json()).columns["x"]
    for name, value in expected.items():
        assert getattr(col, name) == value, name
    if col.minimum is not None:
        assert col.histogram.quantile(0) == pytest.approx(col.minimum, rel=RELATIVE_ACCURACY)
        assert col.histogram.quantile(1) == pytest.approx(col.maximum, rel=RELATIVE_ACCURACY)


def test_mixed_type_categorical_column_and_a_column_typed_two_ways():
    profile = FileProfile()
    profile.add_columns(4, {"c": ("categorical", False, ["a", 1, None, True])})
    col = profile.columns["c"]
    assert (col.count, col.nulls, col.type_errors) == (2, 1, 1)
    assert col.frequent.counts == {"a": 1, "True": 1}
    # The same name typed as numbers by another file: merged, those count as type errors.
    other = FileProfile()
    other.add_columns(3, {"c": ("numeric", False, [1.0, 2.0, None])})
    profile.merge(other)
    col = profile.columns["c"]
    assert (col.count, col.nulls, col.type_errors, profile.rows) == (2, 2, 3, 7)
    FileProfile.from_json(profile.to_json())  # still a consistent profile


def test_columns_missing_from_some_files_count_as_nulls():
    a, b = FileProfile(), FileProfile()
    a.add_columns(3, {"x": ("numeric", False, [1.0, 2.0, 3.0])})
    b.add_columns(2, {"y": ("categorical", False, ["u", "v"])})
    a.merge(b)
    assert (a.columns["x"].count, a.columns["x"].nulls) == (3, 2)
    assert (a.columns["y"].count, a.columns["y"].nulls) == (2, 3)
    FileProfile.from_json(a.to_json())


def valid_text() -> str:
    profile = FileProfile(file_bytes=1234)
    profile.add_datums(SCHEMA, [{"_time": i, "x": i * 1.5, "n": i, "c": "k" + str(i % 3)}
                                for i in range(200)])
    return profile.to_json()


def mutate(text: str, path: tuple, value: object) -> str:
    data = json.loads(text)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(data)


HOSTILE = {
    "truncated": lambda t: t[: len(t) // 2],
    "empty": lambda t: "",
    "not json": lambda t: "\x00\xff garbage",
    "a list": lambda t: "[1, 2, 3]",
    "wrong format": lambda t: mutate(t, ("format",), "something-else"),
    "newer version": lambda t: mutate(t, ("version",), 99),
    "rows as text": lambda t: mutate(t, ("rows",), "200"),
    "huge count": lambda t: mutate(t, ("columns", "x", "count"), 10**30),
    "huge digits": lambda t: t.replace('"rows":200', '"rows":' + "9" * 5000),
    "negative nulls": lambda t: mutate(t, ("columns", "x", "nulls"), -1),
    "infinite min": lambda t: t.replace('"min":0.0', '"min":1e999'),
    "NaN mean": lambda t: t.replace('"mean":', '"mean":NaN,"_":'),
    "inconsistent counts": lambda t: mutate(t, ("columns", "x", "count"), 150),
    "min above max": lambda t: mutate(t, ("columns", "x", "min"), 1e9),
    "too many buckets": lambda t: mutate(t, ("columns", "x", "histogram", "positive"),
                                         {"offset": 0, "counts": [1] * 100_000}),
    "bucket key out of range": lambda t: mutate(
        t, ("columns", "x", "histogram", "positive", "offset"), 10**9),
    "bool as count": lambda t: mutate(t, ("columns", "n", "nulls"), True),
    "frequent item not text": lambda t: mutate(t, ("columns", "c", "frequent", "items"),
                                               [[1, 2]]),
    "column kind unknown": lambda t: mutate(t, ("columns", "c", "kind"), "image"),
    "deep nesting": lambda t: "[" * 100_000 + "]" * 100_000,
    "oversized": lambda t: " " * (MAX_PROFILE_BYTES + 1) + t,
}


@pytest.mark.parametrize("damage", sorted(HOSTILE))
def test_damaged_or_hostile_profiles_raise_profile_error_only(damage):
    text = valid_text()
    FileProfile.from_json(text)  # the undamaged file is fine
    with pytest.raises(ProfileError):
        FileProfile.from_json(HOSTILE[damage](text))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_random_byte_damage_is_a_profile_error_or_a_consistent_profile(data):
    raw = bytearray(valid_text().encode())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        profile = FileProfile.from_json(bytes(raw))
    except ProfileError:
        return
    for col in profile.columns.values():  # what parses is usable
        assert col.count + col.nulls + col.type_errors == profile.rows
        if col.kind == "numeric" and col.minimum is not None:
            col.histogram.quantile(0.5)
            col.histogram.count_below([0.0, 1.0])


def test_a_column_of_nulls_takes_the_type_later_files_give_it():
    nulls, later = FileProfile(), FileProfile()
    nulls.add_datums({"fields": [], "nullColumns": [{"originalName": "note"}]}, [{}, {}])
    assert (nulls.columns["note"].count, nulls.columns["note"].nulls) == (0, 2)
    later.add_columns(2, {"note": ("numeric", True, [4, 5])})
    for first, second in ((nulls, later), (later, nulls)):
        merged = FileProfile()
        merged.merge(FileProfile.from_json(first.to_json()))
        merged.merge(FileProfile.from_json(second.to_json()))
        note = merged.columns["note"]
        assert (note.kind, note.count, note.nulls, note.type_errors) == ("numeric", 2, 2, 0)
        assert (note.minimum, note.maximum, note.integer) == (4.0, 5.0, True)
