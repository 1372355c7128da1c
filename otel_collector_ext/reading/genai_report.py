"""The report's GenAI section: what an LLM endpoint's `gen_ai` rows say, per model.

Self-contained (its own small CSS, charts from `svg`): tokens per hour (input and
output, per model), and a table per model of calls, error rate, latency and
time-to-first-token percentiles, tokens, finish reasons and calls without usage.
`summarize` is the numbers alone, for code that wants them without HTML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from typing import Any

import pandas as pd

from exporters.avro.schema import TIME

from ..genai import record as R
from . import svg

MODEL, REQUEST_MODEL = R.RESPONSE_MODEL, R.REQUEST_MODEL
INPUT_TOKENS, OUTPUT_TOKENS = R.INPUT_TOKENS, R.OUTPUT_TOKENS
DURATION, TTFT = R.DURATION, R.TIME_TO_FIRST_TOKEN
FINISH_REASONS, ERROR_TYPE, FLAGS = R.FINISH_REASONS, R.ERROR_TYPE, R.FLAGS
PERCENTILES = (0.5, 0.9, 0.99)


@dataclass
class ModelSummary:
    model: str
    calls: int
    errors: int
    input_tokens: int
    output_tokens: int
    latency: dict[float, float | None]  # percentile → seconds
    ttft: dict[float, float | None]
    finish_reasons: dict[str, int] = field(default_factory=dict)
    usage_missing: int = 0

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series([None] * len(frame),
                                                                index=frame.index, dtype=object)


def _models(frame: pd.DataFrame) -> pd.Series:
    model = _column(frame, MODEL).astype(object)
    model = model.where(model.notna(), _column(frame, REQUEST_MODEL).astype(object))
    return model.fillna("(unknown)").astype(str)


def _list(value: Any) -> list[Any]:
    if isinstance(value, str):  # a list column read from JSON text
        try:
            value = json.loads(value)
        except ValueError:
            return [value]
    return list(value) if isinstance(value, (list, tuple)) else []


def _percentiles(values: pd.Series) -> dict[float, float | None]:
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    return {p: (float(numbers.quantile(p)) if len(numbers) else None) for p in PERCENTILES}


def _tokens(values: pd.Series) -> int:
    return int(pd.to_numeric(values, errors="coerce").fillna(0).sum())


def summarize(frame: pd.DataFrame) -> list[ModelSummary]:
    """One summary per model (the response's model, else the requested one), busiest first."""
    if frame.empty:
        return []
    models = _models(frame)
    out = []
    for model, rows in frame.groupby(models, sort=False):
        reasons: dict[str, int] = {}
        for value in _column(rows, FINISH_REASONS):
            for reason in _list(value):
                reasons[str(reason)] = reasons.get(str(reason), 0) + 1
        flags = [_list(v) for v in _column(rows, FLAGS)]
        out.append(ModelSummary(
            model=str(model), calls=len(rows), errors=int(_column(rows, ERROR_TYPE).notna().sum()),
            input_tokens=_tokens(_column(rows, INPUT_TOKENS)),
            output_tokens=_tokens(_column(rows, OUTPUT_TOKENS)),
            latency=_percentiles(_column(rows, DURATION)), ttft=_percentiles(_column(rows, TTFT)),
            finish_reasons=dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
            usage_missing=sum(R.FLAG_USAGE_MISSING in f for f in flags)))
    return sorted(out, key=lambda s: -s.calls)


def tokens_per_hour(frame: pd.DataFrame) -> dict[str, list[tuple[Any, int]]]:
    """Series "<model> in" / "<model> out": tokens per hour, for the chart."""
    if frame.empty:
        return {}
    hours = pd.to_datetime(frame[TIME], utc=True).dt.floor("h")
    models = _models(frame)
    series: dict[str, list[tuple[Any, int]]] = {}
    for column, label in ((INPUT_TOKENS, "in"), (OUTPUT_TOKENS, "out")):
        tokens = pd.to_numeric(_column(frame, column), errors="coerce").fillna(0)
        grouped = tokens.groupby([models, hours]).sum()
        for model in dict.fromkeys(models):
            points = (grouped.loc[model] if model in grouped.index.get_level_values(0)
                      else pd.Series(dtype="float64"))
            series[f"{model} {label}"] = [(pd.Timestamp(h).to_pydatetime(), int(n))  # type: ignore[arg-type]  # an hour label
                                          for h, n in points.items()]
    return series


def _seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _row(s: ModelSummary) -> str:
    reasons = ", ".join(f"{escape(k)} {v:,}" for k, v in s.finish_reasons.items()) or "–"
    cells = [escape(s.model), f"{s.calls:,}", f"{s.error_rate:.1%}",
             *(_seconds(s.latency[p]) for p in PERCENTILES),
             *(_seconds(s.ttft[p]) for p in PERCENTILES),
             f"{s.input_tokens:,}", f"{s.output_tokens:,}", reasons, f"{s.usage_missing:,}"]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


_HEAD = ["model", "calls", "errors", "latency p50", "p90", "p99", "TTFT p50", "p90", "p99",
         "input tokens", "output tokens", "finish reasons", "no usage"]

_CSS = """
section.gen-ai table { border-collapse:collapse; width:100%; font-size:13px; margin:8px 0 4px; }
section.gen-ai th, section.gen-ai td { text-align:right; padding:5px 8px;
  border-bottom:1px solid #e4e7eb; white-space:nowrap; }
section.gen-ai th:first-child, section.gen-ai td:first-child,
section.gen-ai td:nth-last-child(2) { text-align:left; }
section.gen-ai th { color:#616e7c; font-weight:600; font-size:12px; }
"""


def gen_ai_section(frame: pd.DataFrame) -> str:
    """The HTML of the GenAI section for a loaded `gen_ai` frame ("" when it is empty)."""
    if frame.empty:
        return ""
    summaries = summarize(frame)
    series = tokens_per_hour(frame)
    chart = svg.time_series(series, unit="tokens")
    legend = "".join(f'<span><i style="background:{svg.PALETTE[i % len(svg.PALETTE)]}"></i>'
                     f'{escape(name)}</span>' for i, name in enumerate(series))
    head = "".join(f"<th>{escape(h)}</th>" for h in _HEAD)
    rows = "".join(_row(s) for s in summaries)
    calls = sum(s.calls for s in summaries)
    return f"""
<style>{_CSS}</style>
<section class="collection gen-ai" id="gen-ai">
  <h2>GenAI calls <small>{calls:,} calls · {len(summaries)} model(s)</small></h2>
  <div class="panel">
    <h2>Tokens per hour</h2>
    <div class="legend">{legend}</div>
    {chart}
    <table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
    <p class="note">Errors: calls with an error.type. Latency: request to last byte;
      TTFT: request to the first output chunk (streamed calls only).</p>
  </div>
</section>"""
