"""Reading collected data back: `load` one collection, `join_inputs_outputs` for monitoring.

Both read local folders and Azure Blob alike (the destination decides), list
only the partitions that overlap [start, end), read files in parallel threads,
and never fail on one bad file: a crashed writer's partial tail is skipped
after every intact block is read, a file that is not ours is skipped, and each
is reported as a `ReadWarning` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import pandas as pd

from exporters.avro.partitioning import collection_prefix
from exporters.avro.reading import Container, frame_from_containers, read_tolerant
from exporters.avro.schema import CORRELATION_ID, MODEL_VERSION, ROW, SPAN_ID, TIME, TRACE_ID
from exporters.avro.schema_store import read_reader_schema
from exporters.storage import Storage, open_reader

from .catalog import list_collection
from .fetch import fetch
from .window import TimeLike, in_range, time_range, warn_problems

if TYPE_CHECKING:
    import dask.dataframe as dd

__all__ = ["join_inputs_outputs", "load"]

#: How far outside [start, end) the other collections of a join are read, so a request
#: whose output was stamped a little after its input still pairs up at the range's edges.
JOIN_MARGIN = timedelta(minutes=10)
INPUT_SUFFIX, OUTPUT_SUFFIX, TRUTH_SUFFIX = "_input", "_output", "_truth"
GEN_AI_SUFFIX = "_gen_ai"
_ENVELOPE_VALUES = (TIME, MODEL_VERSION, TRACE_ID, SPAN_ID)
_NULLABLE_INT = {"int8": "Int8", "int16": "Int16", "int32": "Int32", "uint8": "UInt8",
                 "uint16": "UInt16", "uint32": "UInt32", "uint64": "UInt64"}


@contextmanager
def _storage(destination: str | Storage, options: Mapping[str, Any] | None) -> Iterator[Storage]:
    if isinstance(destination, Storage):
        yield destination  # the caller's: the caller closes it
        return
    storage = open_reader(destination, options)
    try:
        yield storage
    finally:
        storage.close()


def _decode(data: bytes) -> tuple[Container, list[str]]:
    container = read_tolerant(data)
    return container, container.problems


def _check_names(**names: object) -> None:
    """Names select folders: they must be non-empty strings (odd ones are escaped, never
    followed outside the destination)."""
    for what, value in names.items():
        if not isinstance(value, str) or not value:
            raise TypeError(f"{what} must be a non-empty string, not {value!r}")


@overload
def load(
    destination: str | Storage, *, endpoint: str, deployment: str, collection: str,
    start: TimeLike = ..., end: TimeLike = ..., storage_options: Mapping[str, Any] | None = ...,
    engine: Literal["pandas"] = ..., workers: int | None = ..., progress: bool = ...,
    fetch_bodies: bool = ...,
) -> pd.DataFrame: ...


@overload
def load(
    destination: str | Storage, *, endpoint: str, deployment: str, collection: str,
    start: TimeLike = ..., end: TimeLike = ..., storage_options: Mapping[str, Any] | None = ...,
    engine: Literal["dask"], workers: int | None = ..., progress: bool = ...,
    fetch_bodies: bool = ...,
) -> dd.DataFrame: ...


def load(
    destination: str | Storage,
    *,
    endpoint: str,
    deployment: str,
    collection: str,
    start: TimeLike = None,
    end: TimeLike = None,
    storage_options: Mapping[str, Any] | None = None,
    engine: Literal["pandas", "dask"] = "pandas",
    workers: int | None = None,
    progress: bool = False,
    fetch_bodies: bool = False,
) -> pd.DataFrame | dd.DataFrame:
    """Rows of one collection with original column names and dtypes, plus envelope columns.

    `start` (inclusive) and `end` (exclusive) filter on the event time; naive
    times are UTC. Only partitions that overlap the range are listed and read.
    Rows come ordered by event time. Files are read with the collection's published
    schema (``_schema/latest.avsc``), so columns have the collection's newest types;
    files it does not describe (written before it existed) load into one frame by
    the rules of `exporters.avro.tabular.restore_frames`. A collection
    with no data gives an empty frame with the envelope columns.

    `engine="dask"` returns a lazy Dask DataFrame over the same files (one
    partition per storage partition), read through fsspec (adlfs for Blob), with
    the same rows. `workers` threads read files (default 8); `progress` shows a
    bar on stderr. `fetch_bodies` reads the payload bodies that were too large to
    inline (stored beside the data, named by `body_ref`) into `body`.
    """
    if engine not in ("pandas", "dask"):
        raise ValueError(f"engine must be 'pandas' or 'dask', not {engine!r}")
    _check_names(endpoint=endpoint, deployment=deployment, collection=collection)
    lo, hi = time_range(start, end)
    with _storage(destination, storage_options) as storage:
        listing = list_collection(storage, endpoint, deployment, collection, lo, hi)
        warn_problems(listing.skipped)
        reader_schema = read_reader_schema(
            storage, collection_prefix(endpoint, deployment, collection))
        if engine == "dask":
            if isinstance(destination, Storage):
                raise TypeError("engine='dask' needs the destination as a string (for fsspec)")
            from .dask_engine import dask_frame

            return dask_frame(destination, storage_options, listing.files, lo, hi, workers=workers,
                              reader_schema=reader_schema)
        fetched = fetch(storage, listing.files, _decode, workers=workers, progress=progress,
                        description=collection)
        frame = in_range(frame_from_containers((c for _, c in fetched.results), reader_schema),
                         lo, hi)
        if fetch_bodies:
            frame = _with_bodies(storage, frame, workers)
    warn_problems(fetched.problems)
    return frame


def _with_bodies(storage: Storage, frame: pd.DataFrame, workers: int | None) -> pd.DataFrame:
    """`frame` with the bodies stored apart (``body_ref``) read into ``body``."""
    if "body_ref" not in frame.columns or "body" not in frame.columns:
        return frame
    refs = frame["body_ref"].dropna().unique().tolist()
    if not refs:
        return frame
    with ThreadPoolExecutor(max(1, min(workers or 8, len(refs)))) as pool:
        bodies = dict(zip(refs, pool.map(storage.read, refs), strict=True))
    frame = frame.copy()
    stored = frame["body_ref"].notna()
    frame.loc[stored, "body"] = frame.loc[stored, "body_ref"].map(bodies)
    return frame


def _payload_metadata(frame: pd.DataFrame, name: str, include_bodies: bool) -> pd.DataFrame:
    """One row per correlation id (the earliest) with the payload fields prefixed by `name`."""
    if frame.empty:
        return pd.DataFrame({CORRELATION_ID: pd.Series([], dtype="str")})
    first = frame.drop_duplicates(CORRELATION_ID, keep="first")
    drop = [ROW, MODEL_VERSION, TRACE_ID, SPAN_ID] + ([] if include_bodies else ["body"])
    first = first.drop(columns=[c for c in drop if c in first.columns])
    return first.rename(columns={c: f"{name}_{str(c).lstrip('_')}" for c in first.columns
                                 if c != CORRELATION_ID})


def _coalesce_envelope(merged: pd.DataFrame) -> pd.DataFrame:
    for name in _ENVELOPE_VALUES:
        a, b = name + INPUT_SUFFIX, name + OUTPUT_SUFFIX
        if a in merged.columns and b in merged.columns:
            position = list(merged.columns).index(a)
            values = merged[a].combine_first(merged[b])
            merged = merged.drop(columns=[a, b])
            merged.insert(position, name, values)
    return merged


def _nullable_again(merged: pd.DataFrame, *sources: pd.DataFrame) -> pd.DataFrame:
    """Integer and bool columns that an outer join turned into float/object become the
    nullable Int64/boolean instead, so ids and counts stay exact."""
    for source in sources:
        for column in source.columns:
            dtype = source[column].dtype
            if (column in merged.columns and isinstance(dtype, np.dtype) and dtype.kind in "iub"
                    and merged[column].dtype != dtype):
                merged[column] = merged[column].astype(  # type: ignore[call-overload]  # stubs: literal names only
                    "boolean" if dtype.kind == "b" else _NULLABLE_INT.get(dtype.name, "Int64"))
    return merged


def _join_ground_truth(
    joined: pd.DataFrame, truth: pd.DataFrame, key: str, on: str
) -> pd.DataFrame:
    if key not in truth.columns:
        raise ValueError(f"ground truth has no column {key!r} (columns: {list(truth.columns)})")
    if on not in joined.columns:
        raise ValueError(f"the joined data has no column {on!r} to match ground truth on")
    by_row = on == CORRELATION_ID and ROW in truth.columns
    truth_keys = [key, ROW] if by_row else [key]
    duplicated = truth.duplicated(truth_keys)
    if duplicated.any():
        raise ValueError(f"ground truth has {int(duplicated.sum())} duplicate key(s) on "
                         f"{truth_keys}: give one label per key")
    tmp = "__ground_truth_key__"
    left = joined.assign(**{tmp: joined[on]})
    right = truth.drop(columns=[key]).assign(**{tmp: truth[key]})
    right = right.rename(columns={c: f"{c}{TRUTH_SUFFIX}" for c in right.columns
                                  if c in joined.columns and c not in (tmp, ROW)})
    if left[tmp].dtype != right[tmp].dtype:  # e.g. int ids on one side, text on the other
        left[tmp], right[tmp] = left[tmp].astype("str"), right[tmp].astype("str")
    merged = left.merge(right, on=[tmp, ROW] if by_row else [tmp], how="left")
    return merged.drop(columns=[tmp])


def _pair(frame_in: pd.DataFrame, frame_out: pd.DataFrame, lo: datetime | None,
          hi: datetime | None, how: Literal["outer", "inner", "left"]) -> pd.DataFrame:
    """Inputs beside outputs on (correlation id, row index)."""
    if lo is not None or hi is not None:
        # Outputs read beyond the range join their inputs; alone they must be in range.
        keep = frame_out[CORRELATION_ID].isin(frame_in[CORRELATION_ID])
        frame_out = frame_out[keep | frame_out.index.isin(in_range(frame_out, lo, hi, sort=False).index)]
    merged = frame_in.merge(frame_out, on=[CORRELATION_ID, ROW], how=how,
                            suffixes=(INPUT_SUFFIX, OUTPUT_SUFFIX))
    return _nullable_again(_coalesce_envelope(merged), frame_in, frame_out)


def _with_gen_ai(merged: pd.DataFrame, calls: pd.DataFrame, how: str) -> pd.DataFrame:
    """The call's gen_ai row beside its rows; with ``outer``, calls that have no inputs or
    outputs (an LLM endpoint recording only gen_ai) are rows of their own."""
    calls = calls.drop_duplicates(CORRELATION_ID, keep="first").drop(columns=[ROW])
    envelope = [c for c in _ENVELOPE_VALUES if c in calls.columns]
    calls = calls.rename(columns={c: c + GEN_AI_SUFFIX for c in envelope})
    joined = merged.merge(calls, on=CORRELATION_ID, how="outer" if how == "outer" else "left")
    for name in envelope:
        theirs = name + GEN_AI_SUFFIX
        joined[name] = joined[name].combine_first(joined[theirs])
        joined = joined.drop(columns=[theirs])
    return _nullable_again(joined, merged, calls)


def _attach(merged: pd.DataFrame, calls: pd.DataFrame | None, payloads: list[pd.DataFrame],
            how: Literal["outer", "inner", "left"]) -> pd.DataFrame:
    """Each call's gen_ai row and the payloads' metadata beside the paired rows."""
    if calls is not None and len(calls):
        merged = _with_gen_ai(merged, calls, how)
    for meta in payloads:
        if len(meta.columns) > 1:
            merged = merged.merge(meta, on=CORRELATION_ID, how="left")
    return merged


def join_inputs_outputs(
    destination: str | Storage,
    *,
    endpoint: str,
    deployment: str,
    inputs: str = "model_inputs",
    outputs: str = "model_outputs",
    request: str | None = "request",
    response: str | None = "response",
    gen_ai: str | None = "gen_ai",
    start: TimeLike = None,
    end: TimeLike = None,
    ground_truth: pd.DataFrame | None = None,
    ground_truth_key: str = "correlation_id",
    ground_truth_on: str = CORRELATION_ID,
    how: Literal["outer", "inner", "left"] = "outer",
    include_bodies: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """One row per scored row: inputs beside outputs, matched on (correlation id, row index).

    * `how`: ``outer`` (default) keeps rows that have only inputs or only outputs,
      so nothing collected is silently dropped; ``inner`` keeps matched pairs.
    * Envelope columns (`_time`, `_model_version`, trace ids) come from the
      inputs, else from the outputs; other columns present in both get the
      suffixes ``_input`` / ``_output``.
    * Request/response payload collections, when present, add their fields as
      ``request_*`` / ``response_*`` columns (method, path, status, latency_ms,
      headers, body_size, time, ...; bodies only with `include_bodies`).
    * The `gen_ai` collection, when present, adds each call's gen_ai row (its
      ``gen_ai.*`` columns, docs/genai.md) to the call's rows; with ``outer``, calls
      without inputs or outputs are rows of their own, one per call.
    * [start, end) applies to the inputs' event time (the outputs' for rows
      without inputs); the other collections are read a little beyond it.
    * `ground_truth` (labels known later), like SageMaker's inferenceId merge:
      its `ground_truth_key` column is matched to `ground_truth_on` (the
      correlation id, or any collected column such as a business id), also on
      ``_row`` when matching correlation ids and the frame has ``_row``. Left
      join: rows without a label yet get nulls; clashing names get ``_truth``.
    """
    lo, hi = time_range(start, end)
    wide_lo = None if lo is None else lo - JOIN_MARGIN
    wide_hi = None if hi is None else hi + JOIN_MARGIN
    with _storage(destination, storage_options) as storage:
        def read(collection: str, start: datetime | None, end: datetime | None) -> pd.DataFrame:
            return load(storage, endpoint=endpoint, deployment=deployment, collection=collection,
                        start=start, end=end, workers=workers, progress=progress)

        frame_in = read(inputs, lo, hi)
        frame_out = read(outputs, wide_lo, wide_hi)
        payloads = [_payload_metadata(read(name, wide_lo, wide_hi), name, include_bodies)
                    for name in (request, response) if name]
        calls = read(gen_ai, wide_lo, wide_hi) if gen_ai else None
    merged = _attach(_pair(frame_in, frame_out, lo, hi, how), calls, payloads, how)
    if ground_truth is not None:
        merged = _join_ground_truth(merged, ground_truth, ground_truth_key, ground_truth_on)
    merged = in_range(merged, lo, hi)
    return merged.sort_values([TIME, CORRELATION_ID, ROW], kind="stable").reset_index(drop=True)
