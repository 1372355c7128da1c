"""The HTML report: self-contained, and rendered by headless Chromium with its plots drawn.

These tests need Debian's `chromium` package and fail (never skip) without it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from otel_collector_ext.cli.main import main
from tests.support import png
from tests.support.browser import chromium, console_errors
from tests.support.readback_data import DataSet

pytest_plugins = ["tests.support.readback_fixtures"]

WINDOW = (1200, 1500)


@pytest.fixture(scope="module")
def report(collected: DataSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    code = main(["report", "-d", str(collected.root), "-e", "ep", "-p", "blue",
                 "--split", "2026-03-02T12:00", "-o", str(out), "--no-progress"])
    assert code == 0
    return out


def test_report_is_self_contained_with_a_chart_per_column(report: Path) -> None:
    page = report.read_text()
    outside = re.findall(r'(?:src|href)\s*=\s*"(?!#)[^"]*"|https?://(?!www\.w3\.org/2000/svg)', page)
    assert outside == []  # nothing fetched from anywhere: works offline
    assert page.count('<svg class="chart"') == 1 + page.count('<article class="card"')
    # x grows over time in the data set, so it has moved most and comes first.
    inputs = page[page.index("<h2>model_inputs"):]
    first_card = re.search(r'<article class="card" data-name="([^"]+)" data-level="([^"]+)"', inputs)
    assert first_card is not None and first_card.groups() == ("x", "large")
    for name in ("model_inputs", "model_outputs", "request", "response"):
        assert f"<h2>{name} <small>" in page


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    run = chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                   "--hide-scrollbars", report.as_uri())
    assert shot.exists(), run.stderr[-2000:]
    pixels = png.decode(shot.read_bytes())
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    colours = np.unique(pixels[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 200, "a blank or unstyled page has a handful of colours"
    # The chart colours are on screen: baseline blue bars and the orange current series.
    rgb = pixels[..., :3].reshape(-1, 3).astype(int)
    for colour in ((0x6B, 0x8F, 0xC7), (0xF2, 0x8E, 0x2B)):
        assert (np.abs(rgb - colour).sum(axis=1) < 30).sum() > 500, colour

    dom = chromium(tmp_path, "--dump-dom", report.as_uri())
    html = dom.stdout
    charts = int(re.search(r'data-charts="(\d+)"', html).group(1))
    assert charts == html.count('<svg class="chart"') > 10
    assert f'data-charts-drawn="{charts}"' in html and 'data-report="ready"' in html
    assert console_errors(dom.stderr) == [] and console_errors(run.stderr) == []


def test_console_errors_would_be_caught(tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<!doctype html><p>x</p><script>missingFunction();</script>")
    run = chromium(tmp_path, "--dump-dom", broken.as_uri())
    assert any("missingFunction" in line for line in console_errors(run.stderr)), run.stderr[-2000:]


def test_a_handful_of_values_gets_no_psi_level(tmp_path: Path) -> None:
    import pandas as pd

    from otel_collector_ext.reading.profile import compare
    from otel_collector_ext.reading.report import _card

    # 3 values against 1: the PSI is huge, but it means nothing.
    tiny = compare("x", pd.Series([1.0, 2.0, 3.0]), pd.Series([50.0]))
    assert tiny is not None and tiny.psi > 1 and tiny.level == "n/a"
    card = _card(tiny)
    assert "too few values for PSI" in card and "large" not in card
    enough = compare("x", pd.Series(np.arange(40.0)), pd.Series(np.arange(40.0) + 30))
    assert enough is not None and enough.level == "large"
