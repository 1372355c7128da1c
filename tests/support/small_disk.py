"""A real full disk for tests: a small tmpfs mounted for the test (tests run as root, CI too)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def mounted_tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "20m") at `mount`: writes beyond it fail with ENOSPC, as on a
    full disk. Unmounted afterwards (lazily, in case a file is still open)."""
    if os.geteuid() != 0:
        pytest.fail("the disk-full tests mount a tmpfs and must run as root (CI does)",
                    pytrace=False)
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 20 MiB full-disk stand-in, for the test's duration."""
    with mounted_tmpfs(tmp_path / "small-disk", "20m") as mount:
        yield mount


__all__ = ["mounted_tmpfs", "small_disk"]
