"""The [start, end) window of a read, and the warnings about files it skipped.

Shared by both read engines (pandas in `readback`, Dask in `dask_engine`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime

import pandas as pd

from exporters.avro.schema import TIME

TimeLike = datetime | pd.Timestamp | str | None
MAX_WARNINGS = 20


class ReadWarning(UserWarning):
    """A file was skipped (not ours, unreadable) or read only in part (damaged blocks)."""


def _utc(value: TimeLike, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as e:
        raise ValueError(f"invalid {what} time {value!r}: {e}") from None
    if ts is pd.NaT:
        raise ValueError(f"invalid {what} time {value!r}")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def time_range(start: TimeLike, end: TimeLike) -> tuple[datetime | None, datetime | None]:
    """[start, end) as UTC datetimes (naive times are UTC); ValueError if invalid or empty."""
    lo, hi = _utc(start, "start"), _utc(end, "end")
    if lo is not None and hi is not None and lo >= hi:
        raise ValueError(f"start {lo.isoformat()} is not before end {hi.isoformat()}")
    return lo, hi


def warn_problems(problems: Sequence[str]) -> None:
    """Report skipped or partly read files as ReadWarnings (in the caller's thread); past
    `MAX_WARNINGS`, one summary, so a container shared with other data stays readable."""
    for problem in problems[:MAX_WARNINGS]:
        warnings.warn(problem, ReadWarning, stacklevel=3)
    if len(problems) > MAX_WARNINGS:
        warnings.warn(f"... and {len(problems) - MAX_WARNINGS} more files skipped or partly read",
                      ReadWarning, stacklevel=3)


def in_range(
    frame: pd.DataFrame, lo: datetime | None, hi: datetime | None, *, sort: bool = True
) -> pd.DataFrame:
    """Rows with event time in [lo, hi); with `sort`, ordered by event time (stable), index reset."""
    if len(frame) and (lo is not None or hi is not None):
        times = frame[TIME]
        mask = pd.Series(True, index=frame.index)
        if lo is not None:
            mask &= times >= lo
        if hi is not None:
            mask &= times < hi
        frame = frame[mask]
    if not sort:
        return frame
    return frame.sort_values(TIME, kind="stable").reset_index(drop=True)
