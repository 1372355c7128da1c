"""`monitor --report`: one offline HTML page with the verdict, drift over time, feature and
prediction drift apart, data quality and traffic, rendered by headless Chromium with the
demo's drifted features shown as drifted; sample-size guards instead of verdicts."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import otel_collector_ext as oce
from exporters import contract as A
from otel_collector_ext import Collector
from otel_collector_ext.cli.commands.demo import DRIFTED
from otel_collector_ext.cli.main import main
from otel_collector_ext.monitoring import monitor
from otel_collector_ext.reading.monitor_report import render_monitoring
from tests.conftest import local_config
from tests.support import png
from tests.support.browser import chromium, console_errors
from tests.support.monitoring_data import DEPLOYMENT, ENDPOINT, START, collect, hourly, make_frame

WINDOW = (1300, 2400)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--dir", str(root / "data"), "--requests", "2400"]) == 0
    times = oce.load(str(root / "data"), endpoint="credit-endpoint", deployment="blue",
                     collection="model_inputs")["_time"]
    first, last = times.min(), times.max() + timedelta(seconds=1)
    split = first + (last - first) * 2 / 3  # where the demo's drift begins
    page, result = root / "report.html", root / "result.json"
    code = main(["monitor", "-d", str(root / "data"), "-e", "credit-endpoint", "-p", "blue",
                 "--reference-start", first.isoformat(), "--reference-end", split.isoformat(),
                 "--start", split.isoformat(), "--end", last.isoformat(),
                 "--json", str(result), "--report", str(page)])
    assert code == 1  # a threshold is breached
    return page, json.loads(result.read_text())


def card_status(page: str, feature: str) -> str:
    found = re.search(rf'<article class="card" data-name="{feature}" data-level="[^"]+"\s+'
                      r'data-status="([^"]+)"', page)
    assert found is not None, feature
    return found.group(1)


def test_the_page_shows_the_verdict_and_the_drifted_features(demo_report):
    path, result = demo_report
    page = path.read_text()
    outside = re.findall(r'(?:src|href)\s*=\s*"(?!#)[^"]*"|https?://(?!www\.w3\.org/2000/svg)', page)
    assert outside == []  # one offline file
    assert f'<p class="verdict">{result["verdict"]}</p>' in page
    assert re.match(r"\d+ of \d+ features drifted", result["verdict"])
    assert 'data-breached="true"' in page
    for feature in DRIFTED:
        assert card_status(page, feature) == "breached"
    assert card_status(page, "age") == card_status(page, "tenure_years") == "ok"
    # Predictions apart from features; then data quality and the model performance note.
    features, predictions = page.index('id="data_drift"'), page.index('id="prediction_drift"')
    assert features < page.index('data-name="debt_ratio"') < predictions
    assert predictions < page.index('data-name="probability"') < page.index('id="data-quality"')
    assert card_status(page, "probability") == "breached"
    assert "No ground truth was given" in page
    # Every metric with its value and threshold, as in the JSON.
    for s in result["signals"]:
        if s["feature"] == "debt_ratio" and s["signal"] == "data_drift":
            assert f"<td>{s['metric']}</td><td class=\"num\">" in page
    assert page.count('class="cell ') >= len(result["series"]["windows"])  # drift over time


def test_the_page_renders_in_headless_chromium_with_drift_in_red(demo_report, tmp_path):
    path, _ = demo_report
    shot = tmp_path / "report.png"
    run = chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                   "--hide-scrollbars", path.as_uri())
    assert shot.exists(), run.stderr[-2000:]
    pixels = png.decode(shot.read_bytes())
    rgb = pixels[..., :3].reshape(-1, 3).astype(int)
    assert len(np.unique(rgb, axis=0)) > 200
    for colour in ((0xC6, 0x28, 0x28), (0x6B, 0x8F, 0xC7), (0xF2, 0x8E, 0x2B)):
        # the breached verdict's red border, reference bars, current outlines are on screen
        assert (np.abs(rgb - colour).sum(axis=1) < 30).sum() > 200, colour
    dom = chromium(tmp_path, "--dump-dom", path.as_uri())
    charts = int(re.search(r'data-charts="(\d+)"', dom.stdout).group(1))
    assert charts >= 6 and f'data-charts-drawn="{charts}"' in dom.stdout
    assert 'data-report="ready"' in dom.stdout
    assert console_errors(dom.stderr) == [] and console_errors(run.stderr) == []


def test_too_few_values_give_no_verdict_on_the_page(tmp_path):
    collect(tmp_path, [(START + timedelta(minutes=5), make_frame(3, 1, drift=True))])
    result = monitor(str(tmp_path), endpoint=ENDPOINT, deployment=DEPLOYMENT,
                     reference=make_frame(1, 2), start=START, end=START + timedelta(hours=1))
    page = render_monitoring(result.to_dict())
    drift = [s for s in result.signals if s.signal == "data_drift"]
    assert drift and all(s.status == "insufficient_data" for s in drift)
    assert "insufficient data (1 vs 3 values)" in page
    assert 'data-status="breached"' not in page and "PSI" not in page


def test_traffic_from_the_response_collection(tmp_path):
    oce.configure(local_config(tmp_path, deployment=DEPLOYMENT))
    responses = Collector(name="response")
    rng = np.random.default_rng(4)
    latencies = rng.lognormal(3, 0.5, 400)
    statuses = rng.choice([200, 200, 200, 404, 503], 400)
    for i, (status, latency) in enumerate(zip(statuses, latencies, strict=True)):
        when = START + timedelta(hours=i // 200, seconds=i)
        responses.collect(b"{}", oce.BasicCorrelationContext(timestamp=when.timestamp()),
                          attributes={A.HTTP_STATUS: int(status), A.HTTP_LATENCY_MS: latency,
                                      A.HTTP_METHOD: "POST", A.HTTP_PATH: "/score"})
    assert oce.flush()
    oce.shutdown()
    collect(tmp_path, hourly(2, 50, 3))
    result = monitor(str(tmp_path), endpoint=ENDPOINT, deployment=DEPLOYMENT,
                     reference=make_frame(500, 9), start=START, end=START + timedelta(hours=2),
                     profiles=True)
    traffic = result.to_dict()["traffic"]
    assert [w["requests"] for w in traffic["windows"]] == [200, 200]
    total = traffic["total"]
    assert total["requests"] == 400
    assert total["server_error_rate"] == pytest.approx((statuses == 503).mean())
    assert total["client_error_rate"] == pytest.approx((statuses == 404).mean())
    exact = np.sort(latencies)[int(0.95 * 399)]
    assert total["latency_ms_p95"] == pytest.approx(exact, rel=0.011)
    page = render_monitoring(result.to_dict())
    assert 'id="traffic"' in page and "400 responses" in page
    frame = pd.DataFrame(traffic["windows"])
    assert (frame["requests"] > 0).all()
