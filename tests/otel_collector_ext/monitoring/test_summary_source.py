"""The profile seam: a `SummarySource` answers summaries (and the feature list) instead of rows;
the monitor reads rows only for what it cannot answer."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

import otel_collector_ext as oce
from otel_collector_ext.monitoring import ColumnSummary, summarize_column
from otel_collector_ext.monitoring.summaries import monitored_columns
from tests.support.monitoring_data import DEPLOYMENT, ENDPOINT, START, collect, hourly, make_frame

H = timedelta(hours=1)


class FrameSource:
    """Answers from frames held in memory, as merged ingest profiles would, and counts calls."""

    def __init__(self, frames: dict[str, pd.DataFrame], *, answer: bool = True,
                 keep_values: bool = True) -> None:
        self.frames, self.answer, self.keep_values = frames, answer, keep_values
        self.calls = 0

    def columns(self, collection, start, end):
        return monitored_columns(self.frames[collection]) if self.answer else None

    def summarize(self, collection, feature, start, end, *, like) -> ColumnSummary | None:
        self.calls += 1
        if not self.answer or collection not in self.frames:
            return None
        frame = self.frames[collection]
        frame = frame[(frame["_time"] >= start) & (frame["_time"] < end)]
        return summarize_column(frame[feature], like=like, keep_values=self.keep_values)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("source")
    collect(root, hourly(2, 1500, seed=4))  # stored: no drift
    return root


def _drifted() -> pd.DataFrame:
    frame = make_frame(3000, 9, drift=True)
    frame["_time"] = [START + timedelta(seconds=2 * i) for i in range(len(frame))]
    return frame


def run(root, **kw):
    return oce.monitor(str(root), endpoint=ENDPOINT, deployment=DEPLOYMENT, start=START,
                       end=START + 2 * H, reference=make_frame(3000, 8),
                       collections=["model_inputs"], **kw)


def breached(result) -> set[str]:
    return {s.feature for s in result.signals if s.signal == "data_drift"
            and s.status == "breached"}


def test_a_source_that_answers_is_used_and_no_row_is_read(root):
    assert breached(run(root)) == set()  # the stored rows have no drift
    source = FrameSource({"model_inputs": _drifted()})
    result = run(root, summaries=source)
    assert breached(result) == {"income", "country"}  # the source's drifted data
    assert result.window["rows"] == {}  # no collection's rows were loaded
    assert source.calls > 0


def test_rows_are_read_for_what_the_source_cannot_answer(root):
    plain = run(root)
    unanswered = run(root, summaries=FrameSource({}, answer=False))
    assert [s.as_dict() for s in unanswered.signals] == [s.as_dict() for s in plain.signals]
    # a histogram-only summary cannot give the Wasserstein distance: rows are read for it
    histograms = FrameSource({"model_inputs": _drifted()}, keep_values=False)
    result = run(root, summaries=histograms)
    assert result.window["rows"] == {"model_inputs": 3000}
    values = {(s.feature, s.metric): s.value for s in result.signals}
    expected = {(s.feature, s.metric): s.value for s in plain.signals}
    assert values[("income", "normalized_wasserstein_distance")] == pytest.approx(
        expected[("income", "normalized_wasserstein_distance")])
