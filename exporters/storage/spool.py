"""A durable local spool in front of another Storage: accepted means fsynced to local disk.

`SpooledStorage.append` / `put` write the operation to a spool file and fsync
it before returning, so `flush()` never waits for the network and data
survives a crash or a storage outage.  A background thread uploads the
operations to the inner storage in order (per object), with retries.

Exactly once after a crash: every spooled operation carries its object path
and, for appends, the object size it expects.  On start-up the spool replays
what it holds; an append whose bytes are already in the object (its
``expected_size + len`` is within the object's real size, and the last such
bytes read back equal the spooled ones) is skipped, so nothing is written
twice, and objects keep their names so nothing is written elsewhere.

Torn writes: each record is ``magic | length | crc32 | body``; a record that
is short or fails its checksum ends the segment (a SIGKILL mid-write leaves
such a tail) and is discarded, never replayed.

Layout: ``<directory>/slot-<n>/seg-<number>.spool``.  A process locks the first
free slot (``flock``), so several worker processes on one host can share one
spool directory and a restarted process takes over the slot its predecessor
left.  Slots left by processes that did not come back (scale-down) are
adopted, moved atomically under the adopter's slot and uploaded.

Failed writes: every write and fsync the spool makes goes through `file_ops` (a
seam tests replace to inject ENOSPC, EIO or short writes). A failed append is
refused and counted (``spool_full`` when the disk is full, ``write_failed``
otherwise) and leaves nothing behind: the segment and the name index are cut back
to where they were (a segment that cannot be cut back is closed and never written
again), so later uploads read the right bytes and a restart replays only what was
accepted. An object's name goes into the index before its record goes into a
segment, so the index never misses a name whose data was accepted.

Lookups on the writer's path (listing a new partition, an object's size) use the
storage's short lookup timeout (`Storage.for_lookups`), and after one fails they
are not tried again until an upload has worked: an unresponsive endpoint costs the
writer one lookup timeout, then names come from what the spool remembers.

Bounded: at most `max_bytes` of segment files and `max_ops` pending
operations per slot.  When full, ``full_policy="drop"`` (default) refuses the
newest operation with `SpoolFull` and counts it; ``"block"`` waits up to
`block_timeout` seconds for room, then does the same.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import shutil
import struct
import threading
import time
import uuid
import weakref
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .base import AppendConflict, ObjectInfo, ObjectRejected, SpoolFull, Storage, StorageError
from .paths import check_relative_path

__all__ = ["FileOps", "SpoolFull", "SpooledStorage", "file_ops", "write_file_durably"]

log = logging.getLogger(__name__)

_MAGIC = b"SPL1"
_HEADER = struct.Struct("<4sII")  # magic, body length, crc32 of body
_BODY = struct.Struct("<BQH")  # kind, expected size, path length
_APPEND, _PUT = 1, 2
_SEG_PREFIX, _SEG_SUFFIX = "seg-", ".spool"
_MAX_RECORD = 0xFFFF_FFFF - _BODY.size - 4096
_MAX_KNOWN_SIZES = 10_000
_MAX_INDEX = 20_000  # object names remembered per slot for listings while storage is down
_INDEX = "names.idx"
_UNKNOWN = object()


class _Op:
    __slots__ = ("kind", "path", "expected", "length", "log", "seg", "data_off", "t", "log_dir")

    def __init__(self, kind: int, path: str, expected: int, length: int, log_dir: Path,
                 seg: int, data_off: int, t: float) -> None:
        self.kind = kind
        self.path = path
        self.expected = expected
        self.length = length
        self.log_dir = log_dir
        self.seg = seg
        self.data_off = data_off
        self.t = t

    @property
    def end(self) -> int:
        return self.expected + self.length if self.kind == _APPEND else self.length

    @property
    def key(self) -> tuple[Path, int]:
        return (self.log_dir, self.seg)


def _seg_name(n: int) -> str:
    return f"{_SEG_PREFIX}{n:012d}{_SEG_SUFFIX}"


def _seg_numbers(directory: Path) -> list[int]:
    out = []
    for p in directory.glob(f"{_SEG_PREFIX}*{_SEG_SUFFIX}"):
        with contextlib.suppress(ValueError):
            out.append(int(p.name[len(_SEG_PREFIX): -len(_SEG_SUFFIX)]))
    return sorted(out)


_datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class FileOps:
    """Every write, sync, truncation, creation and rename the spool makes, by what it is
    for (`what`: "segment", "index", "marker", "directory"): the seam through which tests
    inject disk faults. Each method does one system call, as the os module would."""

    def create(self, what: str, path: Path, flags: int, mode: int = 0o600) -> int:
        return os.open(path, flags, mode)

    def write(self, what: str, fd: int, buffers: list[bytes]) -> int:
        if hasattr(os, "writev"):
            return os.writev(fd, buffers)
        return os.write(fd, b"".join(buffers))

    def sync(self, what: str, fd: int) -> None:
        _datasync(fd)

    def truncate(self, what: str, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def replace(self, what: str, source: Path, target: Path) -> None:
        os.replace(source, target)


#: The file operations in use; tests swap it for one that fails on purpose.
file_ops = FileOps()


def _write_all(what: str, fd: int, buffers: list[bytes]) -> int:
    """Write all of `buffers` (a short write continues where it stopped); the bytes written."""
    total = sum(len(b) for b in buffers)
    written = 0
    while written < total:
        n = file_ops.write(what, fd, buffers)
        if n <= 0:
            raise OSError(errno.EIO, f"{what}: write returned {n}")
        written += n
        buffers = _advance(buffers, n)
    return total


def _fsync_dir(directory: Path, *, strict: bool = False) -> None:
    """Make a directory's entries durable; `strict`: raise when that fails."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        if strict and os.name != "nt":
            raise
        return  # e.g. Windows: directories cannot be opened
    try:
        file_ops.sync("directory", fd)
    except OSError:
        if strict:
            raise
    finally:
        os.close(fd)


def write_file_durably(path: Path, data: bytes, what: str) -> None:
    """Replace `path` by a file holding `data`, atomically and fsynced; on failure the old
    file (if any) stays and no temporary file is left."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = file_ops.create(what, tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(what, fd, [data])
            file_ops.sync(what, fd)
        finally:
            os.close(fd)
        file_ops.replace(what, tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent, strict=True)


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on `path`, or None if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            os.close(fd)
            return None
    except OSError:
        os.close(fd)
        return None
    try:
        # The slot may have been adopted (renamed away) between open and lock.
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            os.close(fd)
            return None
    except FileNotFoundError:
        os.close(fd)
        return None
    return fd


# -- metrics: one set of instruments per process, observing every live spool --

_SPOOLS: weakref.WeakSet[SpooledStorage] = weakref.WeakSet()
_metrics_lock = threading.Lock()
_histogram: Any = None


def _observe(key: str) -> Callable[[Any], Iterable[Any]]:
    def callback(options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        for spool in list(_SPOOLS):
            stats = spool.stats()
            attrs = {"destination": spool.destination}
            if key == "dropped":
                for name, value in stats.items():
                    if name.startswith("dropped_") and name != "dropped_total":
                        yield Observation(value, {**attrs, "reason": name[len("dropped_"):]})
            else:
                yield Observation(stats[key], attrs)

    return callback


def _forget_spools_after_fork() -> None:
    # A forked child has no uploader threads: inherited spools are not its own, and their
    # locks may have been held at the fork, so metrics must not touch them.
    global _metrics_lock
    _SPOOLS.clear()
    _metrics_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_spools_after_fork)


def _register_metrics(spool: SpooledStorage) -> None:
    global _histogram
    with _metrics_lock:
        _SPOOLS.add(spool)
        if _histogram is not None:
            return
        from opentelemetry.metrics import get_meter

        meter = get_meter("otel_collector_ext.exporters.storage")
        prefix = "otel_collector_ext.storage"
        meter.create_observable_counter(f"{prefix}.uploaded.bytes", [_observe("uploaded_bytes")],
                                        unit="By", description="Bytes uploaded from the spool")
        meter.create_observable_counter(f"{prefix}.uploaded.appends", [_observe("uploaded_appends")],
                                        unit="{append}", description="Appends (record batches) uploaded")
        meter.create_observable_counter(f"{prefix}.uploaded.puts", [_observe("uploaded_puts")],
                                        unit="{object}", description="Whole objects uploaded")
        meter.create_observable_counter(f"{prefix}.upload.retries", [_observe("retries")],
                                        unit="{retry}", description="Upload attempts that failed and were retried")
        meter.create_observable_counter(f"{prefix}.dropped", [_observe("dropped")],
                                        unit="{operation}", description="Operations dropped, by reason")
        meter.create_observable_gauge(f"{prefix}.spool.size", [_observe("spool_bytes")],
                                      unit="By", description="Bytes held in the local spool")
        meter.create_observable_gauge(f"{prefix}.spool.operations", [_observe("spool_ops")],
                                      unit="{operation}", description="Operations waiting for upload")
        _histogram = meter.create_histogram(f"{prefix}.upload.duration", unit="s",
                                            description="Latency of one upload to the storage")


class SpooledStorage(Storage):
    """Wraps `inner` with a durable, bounded local spool and a background uploader.

    `window_seconds` / `window_bytes` hold an object's appends in the spool until
    the oldest is that old or they add up to that many bytes, then upload them as
    one append (how roll mode uploads rarely); 0 / None upload at once.
    """

    def __init__(
        self,
        inner: Storage,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = 1 << 30,
        max_ops: int = 100_000,
        full_policy: str = "drop",
        block_timeout: float = 5.0,
        segment_bytes: int | None = None,
        window_seconds: float = 0.0,
        window_bytes: int | None = None,
        coalesce_bytes: int = 4 * 1024 * 1024,
        max_backoff: float = 30.0,
        close_timeout: float = 10.0,
    ) -> None:
        if full_policy not in ("drop", "block"):
            raise ValueError(f"full_policy must be 'drop' or 'block', not {full_policy!r}")
        if max_bytes <= 0 or max_ops <= 0:
            raise ValueError("max_bytes and max_ops must be positive")
        self.inner = inner
        self.max_appends = inner.max_appends
        self.max_bytes = max_bytes
        self.max_ops = max_ops
        self.full_policy = full_policy
        self.block_timeout = block_timeout
        self.segment_bytes = segment_bytes or max(4096, min(16 << 20, max_bytes // 8))
        self.window_seconds = window_seconds
        self.window_bytes = window_bytes
        # A window's appends go up as one request, however many the writer made.
        windowed = bool(window_seconds or window_bytes)
        self.coalesce_bytes = max(coalesce_bytes, window_bytes or 0) if windowed else coalesce_bytes
        self.max_backoff = max_backoff
        self.close_timeout = close_timeout
        self.destination = inner.describe()
        self._check_path: Callable[[str], Any] = getattr(inner, "check_path", check_relative_path)
        # Lookups the writer waits for: short timeout, one attempt (see the module docstring).
        for_lookups = getattr(inner, "for_lookups", None)
        self._lookups: Storage = for_lookups() if callable(for_lookups) else inner
        self._lookup_failed = False  # since the last upload that worked

        self._cond = threading.Condition()
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._pending: OrderedDict[str, deque[_Op]] = OrderedDict()
        self._pending_bytes: dict[str, int] = {}
        self._outstanding: dict[tuple[Path, int], int] = {}
        self._seg_sizes: dict[tuple[Path, int], int] = {}
        self._read_fds: dict[tuple[Path, int], int] = {}
        self._spool_bytes = 0
        self._ops = 0
        self._force = 0
        self._closed = False
        self._stopping = False
        self._retry_at = 0.0
        self._failures = 0
        self._last_error: str | None = None
        self._last_logged = 0.0
        self._counts: dict[str, float] = {
            "accepted_appends": 0, "accepted_puts": 0, "accepted_bytes": 0,
            "uploaded_appends": 0, "uploaded_puts": 0, "uploaded_bytes": 0,
            "upload_requests": 0, "upload_seconds": 0.0, "retries": 0, "skipped_replayed": 0,
        }
        self._dropped: dict[str, int] = {"spool_full": 0, "too_large": 0, "write_failed": 0,
                                         "conflict": 0, "rejected": 0, "corrupt": 0}

        root = Path(directory).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.slot, self._lock_fd = self._take_slot(root)
        self._adopted: list[Path] = self._adopt_orphans(root)
        self._logs: list[Path] = [*self._adopted, self.slot]
        self._active: int | None = None
        self._active_fd: int | None = None
        self._active_size = 0
        self._next_seg = 1
        self._indexed: dict[str, None] = {}
        self._index_size = 0  # bytes of the index file known to be whole lines
        self._index_torn = False  # a failed index write could not be cut back
        self._unindexed: dict[str, None] = {}  # recovered names the index could not take
        self._index_fd = self._load_index()
        self._recover()
        _register_metrics(self)
        self._thread = threading.Thread(target=self._run, name=f"spool-uploader-{self.slot.name}",
                                        daemon=True)
        self._thread.start()

    # -- Storage interface ----------------------------------------------------

    def append(self, path: str, data: bytes, *, expected_size: int) -> int:
        self._check_path(path)
        data = bytes(data)
        with self._cond:
            known = self._sizes.get(path)
        if known is None and expected_size != 0:
            # Not seen yet: ask the storage; if it cannot answer, trust the caller and let the
            # uploader reconcile.
            remote = self._remote_size(path)
            known = expected_size if remote is _UNKNOWN else (remote or 0)
        with self._cond:
            self._check_open()
            self._check_size(path, expected_size, known)
            self._reserve(path, _HEADER.size + _BODY.size + len(path.encode()) + len(data))
            self._check_size(path, expected_size, known)
            if data:
                self._write(_APPEND, path, expected_size, data)
            self._counts["accepted_appends"] += 1
            self._set_size(path, expected_size + len(data))
            return expected_size + len(data)

    def put(self, path: str, data: bytes) -> None:
        self._check_path(path)
        data = bytes(data)
        with self._cond:
            self._check_open()
            self._reserve(path, _HEADER.size + _BODY.size + len(path.encode()) + len(data))
            self._write(_PUT, path, 0, data)
            self._counts["accepted_puts"] += 1
            self._set_size(path, len(data))

    def size(self, path: str) -> int | None:
        check_relative_path(path)
        with self._cond:
            if path in self._sizes:
                return self._sizes[path]
        size = self._remote_size(path, strict=True)
        return None if size is _UNKNOWN else size  # type: ignore[return-value]

    def read(self, path: str) -> bytes:
        """The object as it will be once uploaded: the stored bytes plus spooled operations."""
        check_relative_path(path)
        with self._cond:
            ops = list(self._pending.get(path, ()))
            fds = [self._fd_for(op) for op in ops]
            datas = [_pread(fd, op) for fd, op in zip(fds, ops, strict=True)]
        try:
            base = self.inner.read(path)
        except FileNotFoundError:
            if not ops:
                raise
            base = b""
        for op, data in zip(ops, datas, strict=True):
            if op.kind == _PUT:
                base = data
            elif op.expected == len(base):
                base += data
            # else: uploaded since the snapshot, already in `base`
        return base

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Stored objects and objects that exist only in the spool so far.

        While the storage cannot be listed, the names this spool slot has ever accepted
        stand in (sizes of already uploaded ones are then best effort), so a writer
        starting during an outage does not reuse the name of an object it wrote before."""
        try:
            self._check_lookups()
            found = {o.path: o.size for o in self._lookups.list(prefix)}
        except StorageError as e:
            self._lookup_failed = True
            with self._cond:
                found = {p: self._sizes.get(p, 0) for p in self._indexed if p.startswith(prefix)}
            log.warning("cannot list %s (%s); using the %d names spool %s remembers",
                        prefix or "/", e, len(found), self.slot)
        with self._cond:
            for path in self._pending:
                if path.startswith(prefix):
                    found[path] = self._sizes.get(path, found.get(path, 0))
        return iter([ObjectInfo(p, found[p]) for p in sorted(found)])

    def flush(self) -> None:
        """Returns at once: every accepted operation was fsynced before `append`/`put` returned."""
        with self._cond:
            pass

    def drain(self, timeout: float | None = None) -> bool:
        """Upload everything spooled so far, windows included; True if done before `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._force += 1
            self._retry_at = 0.0
            self._cond.notify_all()
            try:
                while self._ops:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    if not self._thread.is_alive():
                        return False
                    self._cond.wait(remaining if remaining is not None else 1.0)
                return True
            finally:
                self._force -= 1

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting, upload for up to `timeout` (default `close_timeout`) seconds, stop.

        What is not uploaded by then stays in the spool for the next start."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
        drained = self.drain(self.close_timeout if timeout is None else timeout)
        if not drained:
            log.warning("closing spool %s with %d operations (%d bytes) not yet uploaded to %s; "
                        "they will be uploaded on the next start", self.slot, self._ops,
                        self._spool_bytes, self.destination)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        # An upload in flight may take up to the request timeouts: wait a little for it, and
        # if it is still running leave files and lock to the process exit (it is a daemon).
        self._thread.join(timeout=5.0)
        if self._thread.is_alive():
            log.warning("spool %s: an upload is still in flight at close; leaving it", self.slot)
            _SPOOLS.discard(self)
            return
        with self._cond:
            for fd in self._read_fds.values():
                os.close(fd)
            self._read_fds.clear()
            if self._active_fd is not None:
                os.close(self._active_fd)
                self._active_fd = None
            os.close(self._index_fd)
            os.close(self._lock_fd)
        _SPOOLS.discard(self)
        self.inner.close()

    def describe(self) -> str:
        return f"{self.destination} via spool {self.slot}"

    def stats(self) -> dict[str, Any]:
        """Counters: accepted/uploaded appends, puts and bytes, upload latency, retries,
        spool size, drops by reason (``dropped_<reason>``), the last upload error."""
        with self._cond:
            out: dict[str, Any] = dict(self._counts)
            out["spool_bytes"] = self._spool_bytes
            out["spool_ops"] = self._ops
            out["spool_max_bytes"] = self.max_bytes
            for reason, n in self._dropped.items():
                out[f"dropped_{reason}"] = n
            out["dropped_total"] = sum(self._dropped.values())
            out["last_error"] = self._last_error
        inner_stats = getattr(self.inner, "stats", None)
        if callable(inner_stats):
            out["retries"] += inner_stats().get("retries", 0)
        return out

    # -- accepting --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("spool is closed", transient=False)

    def _check_lookups(self) -> None:
        if self._failures or self._lookup_failed:
            # Storage is failing right now: do not make the writer (the export thread) wait
            # out timeouts for an answer that will not come.
            raise StorageError(f"storage is failing ({self._last_error or 'a lookup failed'})")

    def _remote_size(self, path: str, strict: bool = False) -> Any:
        """The stored size (None: absent), or _UNKNOWN if the storage cannot say now."""
        try:
            self._check_lookups()
            size = self._lookups.size(path)
        except StorageError as e:
            self._lookup_failed = True
            if strict:
                raise
            log.warning("cannot check the size of %s before spooling (%s)", path, e)
            return _UNKNOWN
        if size is not None:
            with self._cond:
                self._sizes.setdefault(path, size)
        return size

    def _check_size(self, path: str, expected: int, known: int | None) -> None:
        logical = self._sizes.get(path, known if known is not None else 0)
        if logical != expected:
            raise AppendConflict(path, expected, logical)

    def _set_size(self, path: str, size: int) -> None:
        self._sizes[path] = size
        self._sizes.move_to_end(path)
        if len(self._sizes) > _MAX_KNOWN_SIZES:
            for old in list(self._sizes)[: len(self._sizes) - _MAX_KNOWN_SIZES]:
                if old not in self._pending:
                    del self._sizes[old]

    def _reserve(self, path: str, n: int) -> None:
        """Wait for (policy "block") or refuse (policy "drop") when `n` bytes do not fit."""
        if n > self.max_bytes or n > _MAX_RECORD:
            self._dropped["too_large"] += 1
            raise SpoolFull(f"operation on {path} ({n} bytes) is larger than the spool "
                            f"({self.max_bytes} bytes): dropped")
        deadline = time.monotonic() + self.block_timeout
        while self._spool_bytes + n > self.max_bytes or self._ops >= self.max_ops:
            remaining = deadline - time.monotonic()
            if self.full_policy == "drop" or remaining <= 0:
                self._dropped["spool_full"] += 1
                raise SpoolFull(
                    f"spool {self.slot} is full ({self._spool_bytes} bytes, {self._ops} operations "
                    f"waiting for {self.destination}): operation on {path} dropped")
            self._cond.wait(remaining)
            self._check_open()

    def _write(self, kind: int, path: str, expected: int, data: bytes) -> None:
        """Write one record to the active segment and fsync it; on any failure refuse the
        operation (SpoolFull on a full disk, StorageError otherwise), counted, leaving the
        segment and the index as they were."""
        pathb = path.encode()
        head = _BODY.pack(kind, expected, len(pathb)) + pathb
        crc = zlib.crc32(data, zlib.crc32(head))
        header = _HEADER.pack(_MAGIC, len(head) + len(data), crc)
        try:
            self._remember(path)  # the name first: the index never misses accepted data
            if self._active_fd is None or self._active_size >= self.segment_bytes:
                self._rotate()
        except OSError as e:
            raise self._refuse(path, e) from None
        assert self._active_fd is not None and self._active is not None
        fd, start = self._active_fd, self._active_size
        synced = False
        try:
            total = _write_all("segment", fd, [header, head, data])
            synced = True
            file_ops.sync("segment", fd)
        except OSError as e:
            try:
                file_ops.truncate("segment", fd, start)
                cut = True
            except OSError:
                cut = False
            if synced or not cut:
                # Not written to again: a tail that could not be cut would shift every later
                # record, and after a failed fsync the kernel may have dropped pages it
                # reported written, earlier records' included.
                self._retire_active()
            raise self._refuse(path, e) from None
        key = (self.slot, self._active)
        op = _Op(kind, path, expected, len(data), self.slot, self._active,
                 start + _HEADER.size + len(head), time.monotonic())
        self._active_size += total
        self._seg_sizes[key] = self._active_size
        self._spool_bytes += total
        self._counts["accepted_bytes"] += len(data)
        self._enqueue(op)
        self._cond.notify_all()

    def _refuse(self, path: str, error: OSError) -> StorageError:
        """The exception that refuses an operation the disk did not take, counted."""
        if error.errno in _DISK_FULL:
            self._dropped["spool_full"] += 1
            return SpoolFull(f"the disk of spool {self.slot} is full ({error.strerror or error}): "
                             f"operation on {path} dropped")
        self._dropped["write_failed"] += 1
        return StorageError(f"cannot write to spool {self.slot} ({error.strerror or error}): "
                            f"operation on {path} dropped")

    def _retire_active(self) -> None:
        """Stop writing to the active segment; its records stay until they are uploaded."""
        if self._active_fd is not None:
            os.close(self._active_fd)
        self._active_fd, self._active, self._active_size = None, None, 0
        self._reclaim()

    def _rotate(self) -> None:
        """Start a new segment: created and its directory entry fsynced before it is used, so
        a failure leaves the current one active."""
        n = self._next_seg
        self._next_seg += 1
        path = self.slot / _seg_name(n)
        fd = file_ops.create("segment", path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND)
        try:
            _fsync_dir(self.slot, strict=True)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        if self._active_fd is not None:
            os.close(self._active_fd)
        self._active, self._active_fd, self._active_size = n, fd, 0
        self._seg_sizes[(self.slot, n)] = 0
        self._outstanding.setdefault((self.slot, n), 0)
        self._reclaim()

    def _load_index(self) -> int:
        """Open this slot's name index, merging adopted slots' and compacting when long.

        Compacting is best effort (a full disk keeps the old file, appended to)."""
        index = self.slot / _INDEX
        names: dict[str, None] = {}
        whole = True
        for log_dir in [*self._adopted, self.slot]:
            try:
                text = (log_dir / _INDEX).read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                continue
            # A torn last line (no newline) is dropped: its name is also in a segment.
            if log_dir == self.slot and text and not text.endswith("\n"):
                whole = False
            for line in text.split("\n")[:-1]:
                if line:
                    names.pop(line, None)
                    names[line] = None
        keep = list(names)[-_MAX_INDEX:]
        if len(keep) != len(names) or self._adopted or not index.exists() or not whole:
            try:
                write_file_durably(index, "".join(f"{n}\n" for n in keep).encode(), "index")
            except OSError as e:
                log.warning("spool %s: cannot rewrite its name index (%s); appending to it",
                            self.slot, e)
            else:
                whole = True
        self._indexed = dict.fromkeys(keep)
        fd = file_ops.create("index", index, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self._index_size = os.fstat(fd).st_size
        self._index_torn = not whole  # the next entry starts on a line of its own
        return fd

    def _remember(self, path: str) -> None:
        """Put `path` in the name index (fsynced) unless it is there; OSError if that fails."""
        if self._unindexed:
            with contextlib.suppress(OSError):
                self._append_index(list(self._unindexed))
                self._unindexed.clear()
        if path not in self._indexed:
            self._append_index([path])

    def _remember_recovered(self, path: str) -> None:
        """At start-up: a name read back from a segment; if the index cannot take it now
        (a full disk), it is written along with a later name."""
        if path in self._indexed or path in self._unindexed:
            return
        try:
            self._append_index([path])
        except OSError as e:
            self._unindexed[path] = None
            log.warning("spool %s: cannot add %s to its name index now (%s)", self.slot, path, e)

    def _append_index(self, names: list[str]) -> None:
        """Append lines to the index and fsync; on failure cut it back to its whole lines (or,
        if even that fails, start the next entry on a new line)."""
        data = (("\n" if self._index_torn else "") + "".join(f"{n}\n" for n in names)).encode()
        try:
            _write_all("index", self._index_fd, [data])
            file_ops.sync("index", self._index_fd)
        except OSError:
            try:
                file_ops.truncate("index", self._index_fd, self._index_size)
            except OSError:
                self._index_torn = True
            raise
        self._index_size += len(data)
        self._index_torn = False
        for name in names:
            self._indexed[name] = None
        if len(self._indexed) > 2 * _MAX_INDEX:
            for old in list(self._indexed)[:_MAX_INDEX]:
                del self._indexed[old]

    def _enqueue(self, op: _Op) -> None:
        queue = self._pending.get(op.path)
        if queue is None:
            queue = self._pending[op.path] = deque()
            self._pending_bytes[op.path] = 0
        queue.append(op)
        self._pending_bytes[op.path] += op.length
        self._outstanding[op.key] = self._outstanding.get(op.key, 0) + 1
        self._ops += 1

    # -- start-up ---------------------------------------------------------------

    def _take_slot(self, root: Path) -> tuple[Path, int]:
        for n in range(10_000):
            slot = root / f"slot-{n}"
            try:
                slot.mkdir(exist_ok=True)
                fd = _try_lock(slot / "lock")
            except FileNotFoundError:  # another process adopted this slot just now
                continue
            if fd is not None:
                return slot, fd
        raise StorageError(f"no free spool slot under {root}", transient=False)

    def _adopt_orphans(self, root: Path) -> list[Path]:
        """Move slots whose process is gone under our slot; returns every adopted log, oldest first.

        The move is one atomic rename, so a slot is uploaded by exactly one process."""
        for slot in sorted(root.glob("slot-*")):
            if slot == self.slot or not (_seg_numbers(slot) or (slot / "adopted").exists()):
                continue
            fd = _try_lock(slot / "lock")
            if fd is None:
                continue
            target = self.slot / "adopted" / f"{slot.name}-{uuid.uuid4().hex[:8]}"
            try:
                target.parent.mkdir(exist_ok=True)
                file_ops.replace("directory", slot, target)
                _fsync_dir(root)
                _fsync_dir(target.parent)
            except OSError as e:  # it stays where it is, for a later start to adopt
                log.warning("spool %s cannot adopt %s now (%s)", self.slot, slot, e)
                continue
            finally:
                os.close(fd)  # a late locker fails the inode check in _try_lock
            log.info("spool %s adopted %s, left by a process that is gone", self.slot, slot)
        # Adopted slots may hold adoptions of their own: the deepest are the oldest.
        logs = {p.parent for p in self.slot.glob("adopted/**/" + _SEG_PREFIX + "*")}
        logs |= {p for p in self.slot.glob("adopted/**/*") if p.is_dir() and p.name != "adopted"}
        return sorted(logs, key=lambda p: (-len(p.parts), str(p)))

    def _recover(self) -> None:
        for log_dir in self._logs:
            numbers = _seg_numbers(log_dir)
            for i, n in enumerate(numbers):
                self._scan_segment(log_dir, n, last=i == len(numbers) - 1)
            if log_dir == self.slot and numbers:
                self._next_seg = numbers[-1] + 1
        if self._ops:
            log.info("spool %s recovered %d operations (%d bytes) for %s", self.slot, self._ops,
                     self._spool_bytes, self.destination)
        self._reclaim()

    def _scan_segment(self, log_dir: Path, n: int, last: bool) -> None:
        path = log_dir / _seg_name(n)
        key = (log_dir, n)
        with open(path, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            pos = 0
            while pos < size:
                f.seek(pos)
                header = f.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    break
                magic, length, crc = _HEADER.unpack(header)
                if magic != _MAGIC or pos + _HEADER.size + length > size or length < _BODY.size:
                    break
                body = f.read(length)
                if zlib.crc32(body) != crc:
                    break
                kind, expected, plen = _BODY.unpack_from(body)
                op_path = body[_BODY.size: _BODY.size + plen].decode()
                op = _Op(kind, op_path, expected, length - _BODY.size - plen, log_dir, n,
                         pos + _HEADER.size + _BODY.size + plen, 0.0)
                self._enqueue(op)
                self._sizes[op_path] = op.end
                self._remember_recovered(op_path)
                pos += _HEADER.size + length
            if pos < size:
                if last:
                    log.warning("spool %s: discarding a torn record at the end (%d bytes)", path, size - pos)
                else:
                    log.error("spool %s: corrupt record at offset %d; the rest of this segment "
                              "(%d bytes) is skipped", path, pos, size - pos)
                    self._dropped["corrupt"] += 1
                try:  # never appended to again: a tail that stays is only skipped again
                    file_ops.truncate("segment", f.fileno(), pos)
                    file_ops.sync("segment", f.fileno())
                except OSError as e:
                    log.warning("spool %s: cannot cut the torn record off (%s)", path, e)
            self._seg_sizes[key] = pos
            self._outstanding.setdefault(key, 0)
            self._spool_bytes += pos

    # -- uploading ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                group = self._next_group()
                while group is None:
                    if self._stopping:
                        return
                    self._cond.wait(self._wait_time())
                    group = self._next_group()
            try:
                with self._cond:
                    fds = [self._fd_for(op) for op in group]
                # Segments with outstanding operations are never deleted, so the fds stay valid.
                datas = [_pread(fd, op) for fd, op in zip(fds, group, strict=True)]
            except OSError as e:
                self._drop(group, "corrupt", f"cannot read spooled data for {group[0].path}: {e}")
                continue
            try:
                self._upload(group, datas)
            except Exception:  # never let the uploader die: the data is safe in the spool
                log.exception("spool uploader: unexpected error; retrying later")
                with self._cond:
                    self._note_failure("unexpected error (see log)", transient=True)

    def _due(self, path: str, queue: deque[_Op], now: float) -> bool:
        if self._force or self._stopping or not (self.window_seconds or self.window_bytes):
            return True
        if queue[0].kind == _PUT or queue[0].t == 0.0:
            return True
        if self.window_bytes and self._pending_bytes[path] >= self.window_bytes:
            return True
        if self.window_seconds and now - queue[0].t >= self.window_seconds:
            return True
        # Under pressure close windows early rather than refuse new data.
        return self._spool_bytes > 0.8 * self.max_bytes or self._ops > 0.8 * self.max_ops

    def _next_group(self) -> list[_Op] | None:
        if self._stopping and not self._force:
            return None
        now = time.monotonic()
        if now < self._retry_at:
            return None
        for path, queue in self._pending.items():
            if not self._due(path, queue, now):
                continue
            first = queue[0]
            if first.kind == _PUT:
                return [first]
            group = [first]
            total = first.length
            for op in list(queue)[1:]:
                if op.kind != _APPEND or op.expected != group[-1].end or total + op.length > self.coalesce_bytes:
                    break
                group.append(op)
                total += op.length
            return group
        return None

    def _wait_time(self) -> float | None:
        now = time.monotonic()
        if self._retry_at > now:
            return self._retry_at - now
        if self._pending and (self.window_seconds or self.window_bytes):
            oldest = min(q[0].t for q in self._pending.values())
            return max(0.01, oldest + (self.window_seconds or 60.0) - now)
        return None

    def _fd_for(self, op: _Op) -> int:
        fd = self._read_fds.get(op.key)
        if fd is None:
            fd = self._read_fds[op.key] = os.open(op.log_dir / _seg_name(op.seg), os.O_RDONLY)
        return fd

    def _upload(self, group: list[_Op], datas: list[bytes]) -> None:
        first = group[0]
        data = datas[0] if len(datas) == 1 else b"".join(datas)
        start = time.monotonic()
        try:
            if first.kind == _PUT:
                self.inner.put(first.path, data)
            else:
                self.inner.append(first.path, data, expected_size=first.expected)
        except AppendConflict as e:
            self._settle_conflict(group, datas, e.actual_size)
            return
        except ValueError as e:
            self._drop(group, "rejected", f"{first.path} rejected: {e}")
            return
        except ObjectRejected as e:
            self._drop(group, "rejected", str(e))
            return
        except StorageError as e:
            with self._cond:
                self._note_failure(str(e), transient=e.transient)
            return
        elapsed = time.monotonic() - start
        if _histogram is not None:
            _histogram.record(elapsed, {"destination": self.destination})
        with self._cond:
            self._counts["upload_requests"] += 1
            self._counts["upload_seconds"] += elapsed
            self._counts["uploaded_bytes"] += len(data)
            self._counts["uploaded_puts" if first.kind == _PUT else "uploaded_appends"] += len(group)
            self._done(group)

    def _settle_conflict(self, group: list[_Op], datas: list[bytes], actual: int) -> None:
        """An append found the object at another size: skip what is already there, drop the rest
        of the object's operations if it cannot be continued."""
        covered = [(op, d) for op, d in zip(group, datas, strict=True) if op.end <= actual]
        if covered and covered[0][0].expected == group[0].expected:
            op, data = covered[-1]
            try:
                there = _read_range(self.inner, op.path, op.expected, op.length)
            except (StorageError, FileNotFoundError) as e:
                with self._cond:
                    self._note_failure(f"cannot check {op.path} after a size conflict: {e}", transient=True)
                return
            if there == data:
                with self._cond:
                    self._counts["skipped_replayed"] += len(covered)
                    self._done([op for op, _ in covered])
                    self._failures = 0
                log.info("%s already holds %d spooled appends (replay after a restart or lost "
                         "response): skipped", group[0].path, len(covered))
                return
        with self._cond:
            queue = list(self._pending.get(group[0].path, ()))
        self._drop(queue, "conflict",
                   f"{group[0].path} is {actual} bytes, the spool expected {group[0].expected}: "
                   f"{len(queue)} spooled operations for it cannot be applied and are dropped",
                   reset_size=actual)

    def _drop(self, ops: list[_Op], reason: str, message: str, reset_size: int | None = None) -> None:
        log.error("%s (%s)", message, self.destination)
        with self._cond:
            self._dropped[reason] += len(ops)
            self._last_error = message
            path = ops[0].path if ops else None
            self._done(ops)
            if reset_size is not None and path is not None and path not in self._pending:
                self._sizes[path] = reset_size

    def _note_failure(self, message: str, *, transient: bool) -> None:
        self._failures += 1
        self._counts["retries"] += 1
        if transient:
            delay = random.uniform(0.5, 1.0) * min(self.max_backoff, 0.25 * 2 ** min(self._failures, 20))
        else:
            delay = self.max_backoff  # e.g. credentials: retry slowly, keep the data
        self._retry_at = time.monotonic() + delay
        now = time.monotonic()
        if message != self._last_error or now - self._last_logged > 60:
            log.error("upload to %s failed (%s); %d operations kept in spool %s, retrying in %.1fs",
                      self.destination, message, self._ops, self.slot, delay)
            self._last_logged = now
        self._last_error = message

    def _done(self, ops: list[_Op]) -> None:
        if self._failures:
            log.info("uploads to %s work again", self.destination)
        self._failures = 0
        self._lookup_failed = False
        self._retry_at = 0.0
        for op in ops:
            queue = self._pending.get(op.path)
            if not queue or queue[0] is not op:
                continue
            queue.popleft()
            self._pending_bytes[op.path] -= op.length
            if not queue:
                del self._pending[op.path]
                del self._pending_bytes[op.path]
            self._outstanding[op.key] -= 1
            self._ops -= 1
        self._reclaim()
        self._cond.notify_all()

    def _reclaim(self) -> None:
        """Delete segments whose operations are all uploaded, and adopted slots left empty."""
        for key, count in list(self._outstanding.items()):
            if count:
                continue
            log_dir, n = key
            if log_dir == self.slot and n == self._active:
                if self._active_size == 0:
                    continue
                assert self._active_fd is not None
                os.close(self._active_fd)
                self._active_fd, self._active, self._active_size = None, None, 0
            fd = self._read_fds.pop(key, None)
            if fd is not None:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(log_dir / _seg_name(n))
            self._spool_bytes -= self._seg_sizes.pop(key, 0)
            del self._outstanding[key]
        for log_dir in list(self._adopted):
            busy = any(k[0] == log_dir or log_dir in k[0].parents for k in self._outstanding)
            if not busy:
                shutil.rmtree(log_dir, ignore_errors=True)
                self._adopted.remove(log_dir)


def _advance(buffers: list[bytes], n: int) -> list[bytes]:
    out = []
    for b in buffers:
        if n >= len(b):
            n -= len(b)
            continue
        out.append(b[n:] if n else b)
        n = 0
    return out


def _pread(fd: int, op: _Op) -> bytes:
    data = os.pread(fd, op.length, op.data_off)
    if len(data) != op.length:
        raise OSError(f"spool segment {op.log_dir / _seg_name(op.seg)} is shorter than recorded")
    return data


def _read_range(storage: Storage, path: str, offset: int, length: int) -> bytes:
    read_range = getattr(storage, "read_range", None)
    if callable(read_range):
        return read_range(path, offset, length)
    return storage.read(path)[offset: offset + length]
