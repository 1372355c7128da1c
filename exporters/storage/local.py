"""The embedded default storage: a folder on the local filesystem."""

from __future__ import annotations

import contextlib
import os
import threading

try:
    import fcntl
except ImportError:  # Windows: one process per folder is then the rule
    fcntl = None  # type: ignore[assignment]
from collections.abc import Iterator
from pathlib import Path

from .base import AppendConflict, ObjectInfo, Storage
from .paths import check_relative_path


def _lock_file(fd: int) -> None:
    """An exclusive advisory lock on an open file, released when it is closed."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)


class LocalStorage(Storage):
    """Objects are files below `root`; nothing is ever written outside it."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.root = Path(root).expanduser().resolve()
        self.fsync = fsync
        self._lock = threading.Lock()
        self._folders: dict[str, Path] = {}

    def _resolve(self, path: str) -> Path:
        folder, _, name = check_relative_path(path).rpartition("/")
        # Resolving costs an lstat per path component; a writer appends to the same few
        # folders over and over, so their checked real paths are remembered.
        real = self._folders.get(folder)
        if real is None:
            real = (self.root / folder).resolve() if folder else self.root
            if real != self.root and self.root not in real.parents:
                raise ValueError(f"storage path escapes the root: {path!r}")
            if len(self._folders) > 4096:
                self._folders.clear()
            self._folders[folder] = real
        full = real / name
        if full.is_symlink():
            full = full.resolve()
            if self.root not in full.parents:
                raise ValueError(f"storage path escapes the root: {path!r}")
        return full

    def append(self, path: str, data: bytes, *, expected_size: int) -> int:
        full = self._resolve(path)
        full.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(full, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                _lock_file(fd)  # check-then-write must hold across processes (forked workers)
                actual = os.lseek(fd, 0, os.SEEK_END)
                if actual != expected_size:
                    raise AppendConflict(path, expected_size, actual)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    if self.fsync:
                        os.fsync(fd)
                except BaseException:
                    # A partial write (disk full) would leave a torn block that makes the
                    # whole file unreadable: cut the file back to what it was, and remove
                    # a file this append created (an empty file is no Avro file).
                    os.ftruncate(fd, actual)
                    if actual == 0:
                        with contextlib.suppress(OSError):
                            os.unlink(full)
                    raise
            finally:
                os.close(fd)
            return actual + len(data)

    def put(self, path: str, data: bytes) -> None:
        full = self._resolve(path)
        full.parent.mkdir(parents=True, exist_ok=True)
        tmp = full.with_name(f".{full.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, full)
        except BaseException:
            # A full disk must not leave a half-written temporary file taking space.
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def size(self, path: str) -> int | None:
        try:
            return self._resolve(path).stat().st_size
        except FileNotFoundError:
            return None

    def read(self, path: str) -> bytes:
        return self._resolve(path).read_bytes()

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Walk only the deepest folder the prefix names, not the whole root.
        folder, _, _ = prefix.rpartition("/")
        start = self._resolve(folder) if folder else self.root
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith("."):
                    continue  # temporary files of put()
                full = Path(dirpath) / name
                rel = full.relative_to(self.root).as_posix()
                if rel.startswith(prefix):
                    yield ObjectInfo(rel, full.stat().st_size)

    def describe(self) -> str:
        return f"file://{self.root}"
