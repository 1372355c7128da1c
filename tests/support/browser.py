"""Headless Chromium for the HTML page tests (Debian's `chromium` package; the tests fail,
never skip, without it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


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
