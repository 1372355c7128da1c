"""Checked by mypy (`scripts/test`), never run: the public API's types as a user sees them.

`load` and `join_inputs_outputs` are imported lazily at run time; type checkers must
still see their signatures, not `Any`.
"""

from typing import assert_type

import pandas as pd

import otel_collector_ext as oce


def _as_a_user_calls_them() -> None:
    frame = oce.load("./collected", endpoint="e", deployment="d", collection="model_inputs")
    assert_type(frame, pd.DataFrame)
    joined = oce.join_inputs_outputs("./collected", endpoint="e", deployment="d")
    assert_type(joined, pd.DataFrame)
    context = oce.Collector(name="model_inputs").collect(frame)
    assert_type(context, oce.CorrelationContext)
