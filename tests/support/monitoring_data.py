"""Collected data with a known drift, for the monitoring tests, made through the real pipeline.

`make_frame` draws rows of a small tabular model: ``age`` and ``income``
(numeric), ``country`` (categorical), ``level`` (an integer column holding one
constant value, which crashed Azure's own drift monitor), ``note`` (all null).
With ``drift=True``, ``income`` moves by one standard deviation and ``country``
gains a category the reference never had; the rest is drawn as before. The
outputs are ``prediction`` (0/1) and ``score``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

import otel_collector_ext as oce
from otel_collector_ext import Collector
from tests.conftest import local_config
from tests.support.readback_data import ExactContext

ENDPOINT, DEPLOYMENT = "ep", "blue"
START = datetime(2026, 3, 1, tzinfo=UTC)
COUNTRIES = ["no", "pe", "in", "fr"]


def make_frame(n: int, seed: int, drift: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    countries = COUNTRIES + (["br"] if drift else [])
    weights = np.array([0.4, 0.3, 0.2, 0.1] + ([0.25] if drift else []))
    return pd.DataFrame({
        "age": rng.normal(40, 10, n).round(1),
        "income": rng.normal(50_000 + (10_000 if drift else 0), 10_000, n),
        "country": rng.choice(countries, n, p=weights / weights.sum()),
        "level": np.full(n, 7, dtype="int64"),
        "note": pd.Series([None] * n, dtype="object"),
    })


def outputs_of(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 1000)
    score = 1 / (1 + np.exp(-(frame["income"] - 55_000) / 5_000))
    return pd.DataFrame({"prediction": (score > 0.5).astype("int64"),
                         "score": (score + rng.normal(0, 0.05, len(frame))).clip(0, 1)})


def collect(root: Path, frames: list[tuple[datetime, pd.DataFrame]], seed: int = 0,
            deployment: str = DEPLOYMENT) -> list[str]:
    """Collect each (time, inputs frame) as one call with its outputs; the correlation ids."""
    oce.configure(local_config(root, deployment=deployment,
                               batch={"max_queue_size": 100_000}))
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")
    ids = []
    for i, (when, frame) in enumerate(frames):
        ctx = ExactContext(when, f"{deployment}-{i:05d}")
        inputs.collect(frame, ctx)
        outputs.collect(outputs_of(frame, seed + i), ctx)
        ids.append(ctx.id)
    assert oce.flush()
    oce.shutdown()
    return ids


def hourly(hours: int, rows_per_hour: int, seed: int, drift_from: int | None = None,
           start: datetime = START) -> list[tuple[datetime, pd.DataFrame]]:
    """One call an hour; from hour `drift_from` on, drifted rows."""
    return [(start + timedelta(hours=h, minutes=5),
             make_frame(rows_per_hour, seed * 1000 + h,
                        drift=drift_from is not None and h >= drift_from))
            for h in range(hours)]
