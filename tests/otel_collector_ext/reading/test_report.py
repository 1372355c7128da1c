"""The HTML report: self-contained, and rendered by headless Chromium with its plots drawn.

These tests need Debian's `chromium` package and fail (never skip) without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from otel_collector_ext.cli.main import main
from tests.support import png
from tests.support.readback_data import DataSet

pytest_plugins = ["tests.support.readback_fixtures"]

WINDOW = (1200, 1500)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with a throw-away profile; fail clearly when it is missing."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("Chromium is not installed: `apt-get install -y chromium` (Debian's package) "
                    "is needed to check that the HTML report renders", pytrace=False)
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
           "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    """Chromium's log lines for page console messages at error level, and uncaught errors."""
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line and ("Uncaught" in line or ":ERROR:" in line or "Error" in line)]


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
