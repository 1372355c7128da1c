"""Reading GenAI rows: join_inputs_outputs and the HTML report's GenAI section."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

import otel_collector_ext as oce
from otel_collector_ext import BasicCorrelationContext, Collector
from otel_collector_ext.cli import main
from otel_collector_ext.genai import record as R
from otel_collector_ext.reading.genai_report import summarize
from tests.conftest import local_config

HOUR0 = datetime(2026, 3, 2, 10, tzinfo=UTC).timestamp()


def _calls(data_dir: Path) -> None:
    oce.configure(local_config(data_dir, data_collector={"collections": {
        "gen_ai": {"enabled": True}, "model_inputs": {"enabled": True}}}))
    gen_ai = Collector(name="gen_ai")
    for i in range(40):
        model = "big" if i % 4 == 0 else "small"
        gen_ai.collect({
            R.OPERATION: "chat", R.REQUEST_MODEL: model, R.RESPONSE_MODEL: model,
            R.INPUT_TOKENS: 10 + i, R.OUTPUT_TOKENS: 100, R.DURATION: 0.1 * (i + 1),
            R.TIME_TO_FIRST_TOKEN: 0.01 * (i + 1), R.STATUS: 500 if i == 5 else 200,
            R.ERROR_TYPE: "500" if i == 5 else None,
            R.FINISH_REASONS: ["length"] if i % 10 == 0 else ["stop"],
        }, BasicCorrelationContext(id=f"call-{i}", timestamp=HOUR0 + 900 * i))
    Collector(name="model_inputs").collect(
        {"feature": 1.5}, BasicCorrelationContext(id="call-3", timestamp=HOUR0 + 2700))
    assert oce.flush()


def test_join_inputs_outputs_keeps_one_row_per_call(data_dir: Path) -> None:
    _calls(data_dir)
    joined = oce.join_inputs_outputs(str(data_dir), endpoint="ep", deployment="blue")
    assert len(joined) == 40 and joined["_correlation_id"].is_unique
    call = joined[joined["_correlation_id"] == "call-3"].iloc[0]
    assert call["feature"] == 1.5 and call[R.INPUT_TOKENS] == 13
    assert joined[R.INPUT_TOKENS].dtype.name in ("int64", "Int64")
    assert joined["_time"].is_monotonic_increasing and joined["_time"].notna().all()
    only = oce.join_inputs_outputs(str(data_dir), endpoint="ep", deployment="blue",
                                   gen_ai=None)
    assert list(only["_correlation_id"]) == ["call-3"]


def test_report_shows_the_gen_ai_section(data_dir: Path, tmp_path: Path) -> None:
    _calls(data_dir)
    frame = oce.load(str(data_dir), endpoint="ep", deployment="blue", collection="gen_ai")
    big, small = sorted(summarize(frame), key=lambda s: s.model)
    assert (big.calls, small.calls) == (10, 30)
    assert small.errors == 1 and small.error_rate == 1 / 30
    assert big.finish_reasons == {"stop": 8, "length": 2}  # i = 0 and 20 stopped at length
    durations = pd.Series([0.1 * (i + 1) for i in range(40) if i % 4 == 0])
    assert abs(big.latency[0.5] - durations.quantile(0.5)) < 1e-9
    assert big.ttft[0.99] is not None and big.input_tokens == sum(10 + i for i in range(0, 40, 4))
    out = tmp_path / "report.html"
    assert main(["report", "-d", str(data_dir), "-e", "ep", "-p", "blue", "-c", "gen_ai",
                 "-o", str(out), "--no-progress"]) == 0
    page = out.read_text()
    section = page[page.index('id="gen-ai"'):]
    assert "40 calls · 2 model(s)" in section
    assert "<td>small</td><td>30</td><td>3.3%</td>" in section
    assert "tokens per hour" in section.lower() and "big in" in section
