"""Partitioned Avro files in a Storage: one open file per partition and instance.

Each write appends complete Avro blocks to the partition's current file, so the
file is valid after every write. A new file starts when the schema changes, when
the file reaches `max_file_bytes`, or before the storage's append limit. Names
are `{partition}/{instance}.{seq:04d}.avro`; `seq` continues after the highest
one already stored, so a restarted writer never touches an earlier file.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..settings import DEFAULT_MAX_FILE_BYTES
from ..storage.base import AppendConflict, Storage
from .container import ContainerEncoder, check_codec, sync_marker_for
from .schema import fingerprint

_CONFLICT_ATTEMPTS = 8  # files tried in turn when others keep writing the same names
_MAX_OPEN = 512  # partitions kept open; older ones are simply forgotten (files stay valid)


@dataclass
class _OpenFile:
    path: str
    fingerprint: str
    encoder: ContainerEncoder
    size: int = 0
    appends: int = 0


class AvroFileWriter:
    """Appends records to partitioned Avro container files in `storage`."""

    def __init__(
        self,
        storage: Storage,
        *,
        codec: str = "deflate",
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        self.storage = storage
        self.codec = check_codec(codec)
        if max_file_bytes < 1024:
            raise ValueError("max_file_bytes must be at least 1024")
        self.max_file_bytes = max_file_bytes
        self._open: OrderedDict[tuple[str, str], _OpenFile] = OrderedDict()
        self._next_seq: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

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
            while len(self._open) > _MAX_OPEN:
                self._open.popitem(last=False)
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
        seq = self._next_seq.get(key)
        if seq is None:
            seq = self._first_free_seq(*key)
        self._next_seq[key] = seq + 1
        path = f"{key[0]}/{key[1]}.{seq:04d}.avro"
        encoder = ContainerEncoder(
            schema, codec=self.codec, sync_marker=sync_marker_for(path), metadata=metadata
        )
        opened = self._open[key] = _OpenFile(path, fp, encoder)
        return opened

    def _first_free_seq(self, directory: str, instance: str) -> int:
        pattern = re.compile(re.escape(f"{directory}/{instance}.") + r"(\d+)\.avro")
        seqs = [
            int(m.group(1))
            for info in self.storage.list(f"{directory}/{instance}.")
            if (m := pattern.fullmatch(info.path))
        ]
        return max(seqs, default=-1) + 1

    def flush(self) -> None:
        self.storage.flush()

    def close(self) -> None:
        with self._lock:
            self._open.clear()
        self.storage.close()
