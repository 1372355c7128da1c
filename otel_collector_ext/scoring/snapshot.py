"""What collect() does on the caller's thread: classify the payload and snapshot it.

Cheap by design: no conversion happens here. A DataFrame snapshot is a shallow
copy, which under pandas' Copy-on-Write later changes to the caller's frame
cannot alter; without Copy-on-Write (pandas 2 unless the application turned it on)
a shallow copy shares the caller's arrays, so the snapshot is a deep copy there.
Containers are copied one level deep; JSON values are serialised now, because that
is the only way to freeze an arbitrary nested value.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import Any

import numpy as np
import pandas as pd

from exporters import contract as A

_SCALARS = (str, int, float, bool, dt.datetime, dt.date, dt.time, dt.timedelta,
            decimal.Decimal, bytes, np.generic, type(None), pd.Timestamp, pd.Timedelta)
_SEQUENCES = (list, tuple, np.ndarray, pd.Series, pd.Index)


if int(pd.__version__.split(".", 1)[0]) >= 3:
    def copy_on_write() -> bool:
        """Whether pandas' Copy-on-Write is on: always, from pandas 3."""
        return True
else:  # pandas 2: an option the application may turn on or off at any time
    from pandas._config import using_copy_on_write as copy_on_write


class EmptyPayload(Exception):
    """Nothing to record (an empty frame, list or dict): counted, not an error."""


def frame_snapshot(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` that later in-place changes to `frame` cannot alter."""
    return _shallow_copy(frame) if copy_on_write() else frame.copy(deep=True)


def _shallow_copy(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame.copy(deep=False)` at half the cost (this is most of collect()'s time).

    The new frame shares the blocks under Copy-on-Write, like copy(deep=False), and
    shares the axes, which are immutable, instead of making views of them. It uses
    pandas internals, so any surprise falls back to the public call.
    """
    try:
        mgr = frame._mgr
        blocks = tuple(block.copy(deep=False) for block in mgr.blocks)
        new = type(mgr)(blocks, mgr.axes, verify_integrity=False)
        return frame._constructor_from_mgr(new, axes=new.axes)
    except Exception:
        return frame.copy(deep=False)


def snapshot(data: Any) -> tuple[str, Any]:
    """(payload kind, an immutable-enough copy of `data`) for one collect() call.

    Raises TypeError for a type that cannot be collected, ValueError for a malformed
    value (columns of unequal length, a 3-D array), EmptyPayload for empty data.
    """
    if isinstance(data, pd.DataFrame):
        if data.shape[0] == 0 or data.shape[1] == 0:
            raise EmptyPayload
        return A.KIND_DATAFRAME, frame_snapshot(data)
    if isinstance(data, pd.Series):
        if len(data) == 0:
            raise EmptyPayload
        frame = data.to_frame(name=data.name if data.name is not None else "value")
        return A.KIND_DATAFRAME, frame if copy_on_write() else frame.copy(deep=True)
    if isinstance(data, str):
        return A.KIND_TEXT, data
    if isinstance(data, (bytes, bytearray, memoryview)):
        return A.KIND_BYTES, bytes(data)
    if isinstance(data, np.ndarray):
        if data.ndim not in (1, 2):
            raise ValueError(f"an ndarray must be 1-D or 2-D, not {data.ndim}-D")
        if data.size == 0:
            raise EmptyPayload
        return A.KIND_NDARRAY, data.copy()
    if isinstance(data, dict):
        if not data:
            raise EmptyPayload
        values = data.values()
        if all(isinstance(v, _SCALARS) for v in values):
            return A.KIND_ROW, dict(data)
        if all(isinstance(v, _SEQUENCES) for v in values):
            lengths = {len(v) for v in values}
            if len(lengths) > 1:
                raise ValueError(
                    f"a dict of columns needs equal-length columns, got lengths {sorted(lengths)}"
                )
            if lengths == {0}:
                raise EmptyPayload
            return A.KIND_COLUMNS, {k: list(v) for k, v in data.items()}
    if isinstance(data, list):
        if not data:
            raise EmptyPayload
        if all(isinstance(r, dict) for r in data):
            return A.KIND_ROWS, [dict(r) for r in data]
    try:
        return A.KIND_JSON, json.dumps(data, allow_nan=True, separators=(",", ":")).encode()
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"cannot collect {type(data).__name__}: supported are pandas DataFrame/Series, "
            "dict, list of dicts, numpy ndarray, str, bytes and JSON-serialisable values "
            f"({e})"
        ) from None
