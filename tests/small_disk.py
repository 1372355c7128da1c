"""A real full disk for tests: a small tmpfs mounted for the test (tests run as root, CI too)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MiB tmpfs: writes beyond it fail with ENOSPC, as on a full disk. Unmounted after
    the test (lazily, in case a file is still open)."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.fail("the disk-full tests mount a tmpfs and must run as root (CI does)",
                    pytrace=False)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


__all__ = ["small_disk"]
