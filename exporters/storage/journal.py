"""A storage whose writes take effect at `commit(token)`, all of them or none, across crashes.

Why: a consumer of a write-ahead log (serve's) must know, after a crash, exactly
which log records are in storage. Writing the data and then a checkpoint leaves
a window between the two in which a crash would make the next start store the
same records twice; an undo log cannot undo an append blob. So the order is
reversed (a redo log): the appends of one transaction are held in memory, and
`commit(token)` writes them together with the token as ONE checksummed record
of a local journal, fsyncs it, and only then applies them to the inner storage.
After a crash the journal's last record says both what is stored (its token)
and what may be half applied (its appends), which are applied again.

Applying again is idempotent by position, as every append carries the size the
object must have: an append whose bytes are already there (the object is
already at its end size, or holds a prefix of it after a torn local write) is
skipped or completed, never written twice. A spool as inner storage does the
same check at upload. Puts (whole objects) are held too and simply put again.
Nothing fails while a batch is being written: what the inner storage cannot
take yet fails the commit, which is retried, so a writer never drops data it was
handed because storage is down or full.

The journal file keeps only what matters: when it grows past `max_journal_bytes`
it is replaced (atomically) by one record holding the last token.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import AppendConflict, ObjectInfo, Storage, StorageError
from .paths import check_relative_path
from .record_log import frame, read_records
from .spool import _datasync, _fsync_dir, _read_range

__all__ = ["CommittingStorage"]

_Op = tuple[int, str, int, bytes]  # kind, path, expected size (appends), data

log = logging.getLogger(__name__)

_MAGIC = b"JRN1"
_TOKEN = struct.Struct("<HI")  # token length, number of appends
_OP = struct.Struct("<BHQQ")  # kind, path length, expected size, data length
_APPEND, _PUT = 1, 2


class CommittingStorage(Storage):
    """Wraps `inner`: appends wait for `commit(token)`; `token` is the last committed one."""

    def __init__(self, inner: Storage, journal: str | os.PathLike[str], *,
                 max_journal_bytes: int = 64 * 1024 * 1024) -> None:
        self.inner = inner
        self.max_appends = inner.max_appends
        self.journal = Path(journal)
        self.max_journal_bytes = max_journal_bytes
        self._check_path = getattr(inner, "check_path", check_relative_path)
        self._lock = threading.RLock()
        self._staged: list[_Op] = []
        self._staged_end: dict[str, int] = {}
        self._unapplied: list[_Op] = []  # committed, not yet in `inner`
        self._sizes: dict[str, int] = {}  # object sizes this writer made (bounded)
        self.counts = {"commits": 0, "appends_applied": 0, "appends_already_stored": 0,
                       "appends_completed": 0, "appends_conflicting": 0, "apply_failures": 0}
        self.token: bytes | None = None
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        if self.journal.exists():
            records, _ = read_records(self.journal, _MAGIC, repair=True)
            if records:
                self.token, self._unapplied = _decode(records[-1][1])
        self._fd = os.open(self.journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self._unapplied:
            log.debug("journal %s: applying the %d appends of the last commit again",
                     self.journal, len(self._unapplied))
            try:
                self._apply()
            except StorageError as e:  # kept: the next commit (or retry) applies them
                log.warning("journal %s: cannot apply the last commit yet: %s", self.journal, e)

    # -- transactions --------------------------------------------------------------

    def commit(self, token: bytes) -> None:
        """Make the appends since the last commit durable with `token`, then apply them.

        StorageError if the journal cannot be written or the inner storage refuses for
        now: nothing is lost, call `commit` again (with the same or a later token)."""
        with self._lock:
            self._apply()  # an earlier commit that could not be applied goes first
            staged = self._staged
            record = frame(_MAGIC, _encode(token, staged))
            size = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                view = memoryview(record)
                while view:
                    view = view[os.write(self._fd, view):]
                _datasync(self._fd)
            except OSError as e:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, size)
                raise StorageError(f"cannot write the journal {self.journal}: {e}") from None
            self.token = token
            self._unapplied, self._staged = staged, []
            self._staged_end.clear()
            self.counts["commits"] += 1
            self._apply()
            if size + len(record) > self.max_journal_bytes:
                self._compact()

    @property
    def pending(self) -> bool:
        """Whether committed appends still wait to be applied."""
        with self._lock:
            return bool(self._unapplied)

    def _apply(self) -> None:
        while self._unapplied:
            kind, path, expected, data = self._unapplied[0]
            try:
                if kind == _PUT:
                    self.inner.put(path, data)
                else:
                    self._apply_one(path, expected, data)
            except StorageError:
                self.counts["apply_failures"] += 1
                raise
            except OSError as e:  # a local disk full or failing: kept, retried
                self.counts["apply_failures"] += 1
                raise StorageError(f"cannot apply to {path}: {e}") from None
            self._unapplied.pop(0)
            self._remember(path, expected + len(data))

    def _apply_one(self, path: str, expected: int, data: bytes) -> None:
        try:
            self.inner.append(path, data, expected_size=expected)
            self.counts["appends_applied"] += 1
            return
        except AppendConflict as e:
            actual = e.actual_size
        except ValueError as e:  # the storage refuses the name: it never will take it
            log.error("journal %s: %s refused (%s): %d bytes dropped", self.journal, path, e,
                      len(data))
            self.counts["appends_conflicting"] += 1
            return
        end = expected + len(data)
        if actual > expected:  # already (partly) there if those bytes are these
            held = min(actual, end) - expected
            try:
                there = _read_range(self.inner, path, expected, held)
            except FileNotFoundError:
                there = b""
            if there == data[:held]:
                if actual < end:  # a torn write before the crash: finish it
                    self.inner.append(path, data[actual - expected:], expected_size=actual)
                    self.counts["appends_completed"] += 1
                else:
                    self.counts["appends_already_stored"] += 1
                return
        log.error("journal %s: %s is %d bytes, this commit expected %d: its %d bytes are not "
                  "applied (another writer uses the same name?)", self.journal, path, actual,
                  expected, len(data))
        self.counts["appends_conflicting"] += 1

    def _compact(self) -> None:
        assert self.token is not None
        tmp = self.journal.with_name(self.journal.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(frame(_MAGIC, _encode(self.token, self._unapplied)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.journal)
        _fsync_dir(self.journal.parent)
        os.close(self._fd)
        self._fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND)

    def _remember(self, path: str, size: int) -> None:
        self._sizes[path] = size
        if len(self._sizes) > 10_000:
            for old in list(self._sizes)[:5_000]:
                del self._sizes[old]

    def _known_size(self, path: str) -> int | None:
        with self._lock:
            if path in self._staged_end:
                return self._staged_end[path]
            for kind, p, expected, data in reversed(self._unapplied):
                if p == path:
                    return expected + len(data) if kind == _APPEND else len(data)
            if path in self._sizes:
                return self._sizes[path]
        return None

    # -- Storage interface ------------------------------------------------------------

    def append(self, path: str, data: bytes, *, expected_size: int) -> int:
        self._check_path(path)
        current = self._known_size(path)
        if current is None:
            try:
                current = self.inner.size(path) or 0
            except (StorageError, OSError):
                current = expected_size  # cannot tell now: the commit reconciles
        if current != expected_size:
            raise AppendConflict(path, expected_size, current)
        with self._lock:
            self._staged.append((_APPEND, path, expected_size, bytes(data)))
            self._staged_end[path] = expected_size + len(data)
        return expected_size + len(data)

    def put(self, path: str, data: bytes) -> None:
        self._check_path(path)
        with self._lock:
            self._staged.append((_PUT, path, 0, bytes(data)))
            self._staged_end[path] = len(data)

    def size(self, path: str) -> int | None:
        known = self._known_size(path)
        return known if known is not None else self.inner.size(path)

    def read(self, path: str) -> bytes:
        """What the inner storage holds (appends not yet applied are not included)."""
        return self.inner.read(path)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The inner storage's objects, and those that exist only in held appends so far
        (so a writer never picks the name of an object about to be created)."""
        seen = set()
        for info in self.inner.list(prefix):
            seen.add(info.path)
            yield info
        with self._lock:
            held = {p: e + len(d) if k == _APPEND else len(d)
                    for k, p, e, d in [*self._unapplied, *self._staged]}
        for path, size in held.items():
            if path.startswith(prefix) and path not in seen:
                yield ObjectInfo(path, size)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        self.inner.close()

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"journal.{k}": v for k, v in self.counts.items()}
        inner_stats = getattr(self.inner, "stats", None)
        if callable(inner_stats):
            out.update(inner_stats())
        return out

    def describe(self) -> str:
        return self.inner.describe()


def _encode(token: bytes, ops: list[_Op]) -> bytes:
    parts = [_TOKEN.pack(len(token), len(ops)), token]
    for kind, path, expected, data in ops:
        encoded = path.encode()
        parts += [_OP.pack(kind, len(encoded), expected, len(data)), encoded, data]
    return b"".join(parts)


def _decode(body: bytes) -> tuple[bytes, list[_Op]]:
    token_len, count = _TOKEN.unpack_from(body)
    pos = _TOKEN.size
    token = body[pos: pos + token_len]
    pos += token_len
    ops = []
    for _ in range(count):
        kind, plen, expected, dlen = _OP.unpack_from(body, pos)
        pos += _OP.size
        path = body[pos: pos + plen].decode()
        pos += plen
        ops.append((kind, path, expected, body[pos: pos + dlen]))
        pos += dlen
    return token, ops
