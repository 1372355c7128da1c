"""Partitioned Avro files in a Storage: one open file per partition and instance.

Each write appends complete Avro blocks to the partition's current file, so the
file is valid after every write. A new file starts when the schema changes, when
the file reaches `max_file_bytes`, or before the storage's append limit. Names
are `{partition}/{instance}.{seq:04d}.avro`; `seq` continues after the highest
one already stored, so a restarted writer never touches an earlier file.

Beside each file the writer keeps a column profile (`exporters.profiles`) of the
rows it appended, stored as ``<file>.profile.json`` through the same storage
(a whole-object put; the data file's appends are untouched). It is written when
the file closes (a new file starts, the partition is forgotten, the writer
closes), on every `flush`, and otherwise at most every `PROFILE_INTERVAL` seconds
while rows keep coming, so it may lag its file by that much. It records the
file size it describes: a reader uses it only while the file has that size.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..profiles import FileProfile, profile_path
from ..settings import DEFAULT_MAX_FILE_BYTES, DEFAULT_PROFILE_INTERVAL_SECONDS
from ..storage.base import AppendConflict, Storage, StorageError
from ..telemetry import LimitedLog, Tally
from .container import ContainerEncoder, check_codec, sync_marker_for
from .schema import CORRELATION_ID, MODEL_VERSION, ROW, SPAN_ID, TRACE_ID, fingerprint

_log = logging.getLogger(__name__)
_limited = LimitedLog(_log)

_CONFLICT_ATTEMPTS = 8  # files tried in turn when others keep writing the same names
_MAX_OPEN = 512  # partitions kept open; older ones are simply forgotten (files stay valid)
#: Seconds between writes of the profile of a file that is still being appended to.
PROFILE_INTERVAL = DEFAULT_PROFILE_INTERVAL_SECONDS
#: Envelope fields that are ids, not features: profiles leave them out.
_NOT_PROFILED = (CORRELATION_ID, ROW, MODEL_VERSION, TRACE_ID, SPAN_ID)


@dataclass
class _OpenFile:
    path: str
    fingerprint: str
    encoder: ContainerEncoder
    size: int = 0
    appends: int = 0
    profile: FileProfile | None = None
    profile_dirty: bool = False
    profile_written: float = 0.0  # time.monotonic() of the last write


class AvroFileWriter:
    """Appends records to partitioned Avro container files in `storage`."""

    def __init__(
        self,
        storage: Storage,
        *,
        codec: str = "deflate",
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        profiles: bool = True,
        tally: Tally | None = None,
    ) -> None:
        self.storage = storage
        self.profiles = profiles
        self.tally = tally
        self.codec = check_codec(codec)
        if max_file_bytes < 1024:
            raise ValueError("max_file_bytes must be at least 1024")
        self.max_file_bytes = max_file_bytes
        self._open: OrderedDict[tuple[str, str], _OpenFile] = OrderedDict()
        self._next_seq: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def write(
        self,
        directory: str,
        instance: str,
        schema: Mapping[str, Any],
        rows: Sequence[Mapping[str, Any]],
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Append `rows` to the current file of (`directory`, `instance`); returns its path."""
        key = (directory, instance)
        fp = fingerprint(dict(schema))
        with self._lock:
            current = self._open.get(key)
            if current is None or current.fingerprint != fp or self._full(current):
                current = self._start(key, schema, fp, metadata)
            self._open.move_to_end(key)
            data = current.encoder.blocks(rows)
            if current.size == 0:
                data = current.encoder.header + data
            for attempt in range(_CONFLICT_ATTEMPTS):
                try:
                    current.size = self.storage.append(current.path, data,
                                                       expected_size=current.size)
                    break
                except AppendConflict:
                    # Someone else writes there too (a second writer with this instance id,
                    # or a lost retry): never append to bytes we do not know; move on to the
                    # next file and write the whole batch there.
                    if attempt == _CONFLICT_ATTEMPTS - 1:
                        raise
                    current = self._start(key, schema, fp, metadata)
                    data = current.encoder.header + current.encoder.blocks(rows)
            current.appends += 1
            if current.profile is not None:
                self._profile(current, schema, rows)
            while len(self._open) > _MAX_OPEN:
                self._store_profile(self._open.popitem(last=False)[1])
            self._store_due_profiles()
            return current.path

    def split_encodable(
        self, schema: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
    ) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
        """(rows Avro can encode with `schema`, rows it cannot), in order."""
        encoder = ContainerEncoder(schema, codec="null", sync_marker=bytes(16))
        good: list[Mapping[str, Any]] = []
        bad: list[Mapping[str, Any]] = []
        for row in rows:
            (good if encoder.encodes(row) else bad).append(row)
        return good, bad

    def _full(self, f: _OpenFile) -> bool:
        limit = self.storage.max_appends
        return f.size >= self.max_file_bytes or (limit is not None and f.appends >= limit - 1)

    def _start(
        self,
        key: tuple[str, str],
        schema: Mapping[str, Any],
        fp: str,
        metadata: Mapping[str, str] | None,
    ) -> _OpenFile:
        previous = self._open.get(key)
        if previous is not None:
            self._store_profile(previous)
        seq = self._next_seq.get(key)
        if seq is None:
            seq = self._first_free_seq(*key)
        self._next_seq[key] = seq + 1
        path = f"{key[0]}/{key[1]}.{seq:04d}.avro"
        encoder = ContainerEncoder(
            schema, codec=self.codec, sync_marker=sync_marker_for(path), metadata=metadata
        )
        opened = self._open[key] = _OpenFile(path, fp, encoder,
                                             profile=FileProfile() if self.profiles else None)
        opened.profile_written = time.monotonic()
        return opened

    def _profile(self, f: _OpenFile, schema: Mapping[str, Any],
                 rows: Sequence[Mapping[str, Any]]) -> None:
        assert f.profile is not None
        try:
            f.profile.add_datums(schema, rows, skip=_NOT_PROFILED)
        except Exception as e:  # a profile must never cost the data: this file goes without
            f.profile = None
            if self.tally is not None:
                self.tally.add("profiles.failed")
            _limited.warning("profile", "profiling %s failed; it gets no profile (readers "
                             "read its rows): %s: %s", f.path, type(e).__name__, e)
            return
        f.profile.file_bytes = f.size
        f.profile_dirty = True

    def _store_due_profiles(self) -> None:
        """Store the profiles of open files that changed PROFILE_INTERVAL ago or more."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + PROFILE_INTERVAL / 4
        for f in self._open.values():
            if f.profile_dirty and now - f.profile_written >= PROFILE_INTERVAL:
                self._store_profile(f)

    def _store_profile(self, f: _OpenFile) -> None:
        """Put `f`'s profile beside it. A failure is logged and counted, never raised:
        the data is stored, and a reader without the profile reads the rows."""
        if f.profile is None or not f.profile_dirty:
            return
        try:
            self.storage.put(profile_path(f.path), f.profile.to_json().encode())
        except (StorageError, OSError, ValueError) as e:
            if self.tally is not None:
                self.tally.add("profiles.failed")
            _limited.warning("profile", "storing the profile of %s failed (readers will read "
                             "its rows instead): %s: %s", f.path, type(e).__name__, e)
            return
        f.profile_dirty = False
        f.profile_written = time.monotonic()
        if self.tally is not None:
            self.tally.add("profiles.written")

    def _first_free_seq(self, directory: str, instance: str) -> int:
        pattern = re.compile(re.escape(f"{directory}/{instance}.") + r"(\d+)\.avro")
        seqs = [
            int(m.group(1))
            for info in self.storage.list(f"{directory}/{instance}.")
            if (m := pattern.fullmatch(info.path))
        ]
        return max(seqs, default=-1) + 1

    def flush(self) -> None:
        with self._lock:
            for f in self._open.values():
                self._store_profile(f)
        self.storage.flush()

    def close(self) -> None:
        with self._lock:
            for f in self._open.values():
                self._store_profile(f)
            self._open.clear()
        self.storage.close()
