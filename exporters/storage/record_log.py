"""Append-only logs of checksummed byte records, durable once fsynced.

A record on disk is ``magic | length | crc32 | body`` (the spool's framing). Reading
stops at the first record that is short or fails its checksum: a crash in the
middle of a write leaves such a tail, and it is cut off. A record is only ever
reported durable after the fsync that follows its write, so a cut-off tail was
never reported durable.

`SegmentLog` is a write-ahead log in numbered segment files with group commit:
many threads append, then wait in `sync()`; one of them runs the fsync for all
records written so far while the others wait, so concurrent writers share one
fsync. Every record has a position that only grows, across restarts too (a
restarted log starts a new segment), so a consumer can checkpoint "everything up
to position P is done" and `release(P)` frees the segments below it.

Knows nothing of what the records hold.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from .base import StorageError
from .spool import _datasync, _fsync_dir

__all__ = ["SegmentLog", "frame", "read_records"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<4sII")  # magic, body length, crc32 of body
_SEG_PREFIX, _SEG_SUFFIX = "wal-", ".log"
_OFFSET_BITS = 40  # a position is segment << 40 | offset: segments stay far below 1 TiB


def frame(magic: bytes, body: bytes) -> bytes:
    """`body` as one record."""
    return _HEADER.pack(magic, len(body), zlib.crc32(body)) + body


def read_records(path: Path, magic: bytes, *, repair: bool) -> tuple[list[tuple[int, bytes]], int]:
    """The intact records of `path` as (offset, body), and where they end.

    With `repair`, a torn or corrupt tail is cut off (and the cut made durable)."""
    records: list[tuple[int, bytes]] = []
    with open(path, "r+b" if repair else "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        pos = 0
        while pos + _HEADER.size <= size:
            found, length, crc = _HEADER.unpack(f.read(_HEADER.size))
            if found != magic or pos + _HEADER.size + length > size:
                break
            body = f.read(length)
            if zlib.crc32(body) != crc:
                break
            records.append((pos, body))
            pos += _HEADER.size + length
        if pos < size and repair:
            log.warning("%s: cutting off %d bytes of a torn or corrupt record", path, size - pos)
            f.truncate(pos)
            f.flush()
            os.fsync(f.fileno())
    return records, pos


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class SegmentLog:
    """A bounded write-ahead log in `directory`: `append`, `sync`, `replay`, `release`.

    `max_bytes` bounds the segment files together; `has_room` says whether a record
    fits. Not for several processes at once: the caller holds a lock on the folder.
    """

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int,
                 segment_bytes: int | None = None, magic: bytes = b"WAL1") -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(64 * 1024, min(64 << 20, max_bytes // 8))
        self.magic = magic
        self._cond = threading.Condition()
        # segment number -> [size in bytes, position of its last record or -1]
        self._segments: dict[int, list[int]] = {}
        self._recovered: list[int] = []
        for n in self._numbers():
            records, end = read_records(self._path(n), magic, repair=True)
            self._segments[n] = [end, (n << _OFFSET_BITS) | records[-1][0] if records else -1]
            self._recovered.append(n)
        self._next_segment = max(self._segments, default=0) + 1
        self._active: int | None = None
        self._fd: int | None = None
        self._last = -1  # position of the last record appended
        self._synced = -1  # every record up to this position is durable
        self._syncing = False
        self._closed = False

    # -- writing -----------------------------------------------------------------

    def has_room(self, nbytes: int) -> bool:
        return self.used_bytes + _HEADER.size + nbytes <= self.max_bytes

    @property
    def used_bytes(self) -> int:
        with self._cond:
            return sum(size for size, _ in self._segments.values())

    def append(self, body: bytes) -> int:
        """Write `body` (not yet durable: see `sync`); returns its position.

        StorageError if the write fails; the segment is then cut back to before it."""
        data = frame(self.magic, body)
        with self._cond:
            if self._closed:
                raise StorageError("the log is closed", transient=False)
            if self._fd is None or self._segments[self._active][0] >= self.segment_bytes:  # type: ignore[index]
                try:
                    self._rotate()
                except OSError as e:
                    raise StorageError(f"cannot start a log segment in {self.directory}: {e}") \
                        from None
            assert self._fd is not None and self._active is not None
            entry = self._segments[self._active]
            start = entry[0]
            try:
                _write_all(self._fd, data)
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)
                raise StorageError(f"cannot write to the log in {self.directory}: {e}") from None
            position = (self._active << _OFFSET_BITS) | start
            entry[0] = start + len(data)
            entry[1] = position
            self._last = position
            return position

    def _rotate(self) -> None:
        while self._syncing:  # the fsync in flight uses the current descriptor
            self._cond.wait()
        if self._fd is not None:
            _datasync(self._fd)
            self._synced = max(self._synced, self._last)
            os.close(self._fd)
            self._fd = None
        n = self._next_segment
        self._next_segment += 1
        self._fd = os.open(self._path(n), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        _fsync_dir(self.directory)
        self._active = n
        self._segments[n] = [0, -1]

    def sync(self, position: int) -> None:
        """Return once the record at `position` (and every one before it) is durable.

        Group commit: one caller runs the fsync for every record written so far, the
        others wait for it. StorageError if the fsync fails."""
        with self._cond:
            while self._synced < position:
                if self._syncing:
                    self._cond.wait()
                    continue
                fd, target = self._fd, self._last
                if fd is None:
                    return  # nothing written since the last rotation, which synced
                self._syncing = True
                self._cond.release()
                error: OSError | None = None
                try:
                    _datasync(fd)
                except OSError as e:
                    error = e
                finally:
                    self._cond.acquire()
                    self._syncing = False
                    self._cond.notify_all()
                if error is not None:
                    raise StorageError(f"cannot sync the log in {self.directory}: {error}")
                self._synced = max(self._synced, target)

    # -- reading and releasing -------------------------------------------------------

    def replay(self, after: int = -1) -> Iterator[tuple[int, bytes]]:
        """(position, body) of every record found at start-up with a position above `after`."""
        with self._cond:  # a copy: `release` may run meanwhile (the consumer commits)
            recovered = list(self._recovered)
        for n in recovered:
            if self._segments.get(n, [0, -1])[1] <= after:
                continue
            records, _ = read_records(self._path(n), self.magic, repair=False)
            for offset, body in records:
                position = (n << _OFFSET_BITS) | offset
                if position > after:
                    yield position, body

    def release(self, through: int) -> None:
        """Delete the segments (other than the one being written) whose records are all
        at or below position `through`: their records are no longer needed."""
        with self._cond:
            done = [n for n, (_, last) in self._segments.items()
                    if n != self._active and last <= through]
            for n in done:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path(n))
                del self._segments[n]
                if n in self._recovered:
                    self._recovered.remove(n)

    def close(self) -> None:
        with self._cond:
            while self._syncing:
                self._cond.wait()
            self._closed = True
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    _datasync(self._fd)
                os.close(self._fd)
                self._fd = None

    # -- files -------------------------------------------------------------------------

    def _path(self, n: int) -> Path:
        return self.directory / f"{_SEG_PREFIX}{n:012d}{_SEG_SUFFIX}"

    def _numbers(self) -> list[int]:
        out = []
        for p in self.directory.glob(f"{_SEG_PREFIX}*{_SEG_SUFFIX}"):
            with contextlib.suppress(ValueError):
                out.append(int(p.name[len(_SEG_PREFIX): -len(_SEG_SUFFIX)]))
        return sorted(out)
