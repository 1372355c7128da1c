"""Reading our Avro container files back: tolerant of crashed writers, strict about ownership.

A container file is a header (magic, metadata, sync marker) followed by blocks,
each ``count, size, data, sync``. A writer that crashed mid-append leaves a
partial last block; a damaged disk may leave garbage in the middle. The block
framing is walked here without decoding, so every block whose framing and sync
marker are intact is read, damaged stretches are skipped up to the next sync
marker, and each problem is reported with the byte range it covers. Files
without our ``otel_collector_ext.*`` metadata, or that are not Avro at all, are
refused with `ForeignFileError`: the caller decides to skip and warn.

Frames are rebuilt by `exporters.avro.tabular.restore_frames`; payload files
(request/response, text, bytes, JSON) get explicit pandas dtypes first, so both
shapes share one set of union and promotion rules.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fastavro
import pandas as pd

from .schema import ENVELOPE_NAMES, META_SHAPE, NAMESPACE, SHAPE_PAYLOAD
from .schema_evolution import fit
from .tabular import ATTR_ORIGINAL_NAME, ATTR_PANDAS_DTYPE, restore_frame, restore_frames

MAGIC = b"Obj\x01"
SYNC_SIZE = 16
META_PREFIX = NAMESPACE + "."

#: pandas dtypes of the payload record fields (see `avro_schema.PAYLOAD_FIELDS`).
PAYLOAD_DTYPES = {
    "kind": "str",
    "method": "str",
    "path": "str",
    "query": "str",
    "status": "Int64",
    "latency_ms": "float64",
    "headers": "object",
    "content_type": "str",
    "body": "object",
    "body_ref": "str",
    "body_size": "int64",
    "truncated": "bool",
    "flags": "object",
}


class ForeignFileError(ValueError):
    """The file is not an Avro container written by this project."""


@dataclass(frozen=True)
class Header:
    """The parsed header of a container file; `end` is the offset of the first block."""

    schema: dict[str, Any]
    metadata: dict[str, str]
    codec: str
    sync: bytes
    end: int

    @property
    def shape(self) -> str | None:
        """``tabular`` or ``payload`` for our files."""
        return self.metadata.get(META_SHAPE)


@dataclass(frozen=True)
class Block:
    """One intact block: `count` records in bytes ``[offset, end)`` of the file."""

    offset: int
    end: int
    count: int


@dataclass(frozen=True)
class Damage:
    """Bytes ``[offset, end)`` that could not be read as blocks."""

    offset: int
    end: int


@dataclass
class Container:
    """What was read from one file: header, records of the intact blocks, and problems."""

    header: Header
    records: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    """A zig-zag varint at `pos`: (value, position after it)."""
    shift = result = 0
    while True:
        if pos >= len(data):
            raise EOFError("unexpected end of file")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def parse_header(data: bytes) -> Header:
    """The header of a container file; ForeignFileError unless it is one of ours."""
    if data[:4] != MAGIC:
        raise ForeignFileError("not an Avro container file")
    meta: dict[str, bytes] = {}
    try:
        pos = 4
        while True:
            count, pos = _read_long(data, pos)
            if count == 0:
                break
            if count < 0:  # a block of -count entries preceded by its size in bytes
                count = -count
                _, pos = _read_long(data, pos)
            for _ in range(count):
                key_len, pos = _read_long(data, pos)
                key = data[pos:pos + key_len].decode("utf-8")
                pos += key_len
                value_len, pos = _read_long(data, pos)
                meta[key] = data[pos:pos + value_len]
                pos += value_len
        sync = data[pos:pos + SYNC_SIZE]
        if len(sync) < SYNC_SIZE or pos > len(data):
            raise EOFError("unexpected end of file")
        schema = json.loads(meta["avro.schema"])
        codec = meta.get("avro.codec", b"null").decode("utf-8")
        metadata = {k: v.decode("utf-8", "replace") for k, v in meta.items()}
    except (EOFError, ValueError, KeyError, UnicodeDecodeError) as e:
        raise ForeignFileError(f"unreadable Avro header ({type(e).__name__}: {e})") from None
    if not any(k.startswith(META_PREFIX) for k in metadata):
        raise ForeignFileError(f"an Avro file without {META_PREFIX}* metadata (not written by us)")
    return Header(schema, metadata, codec, sync, pos + SYNC_SIZE)


def iter_blocks(data: bytes, header: Header) -> Iterator[Block | Damage]:
    """The blocks of a file in order, and the damaged stretches between them.

    After damage, reading resumes after the next sync marker, so one bad block
    costs only itself. A partial last block (a crashed writer's tail) is damage
    running to the end of the file.
    """
    pos, size, sync = header.end, len(data), header.sync
    while pos < size:
        try:
            count, p = _read_long(data, pos)
            length, p = _read_long(data, p)
            end = p + length + SYNC_SIZE
            intact = count >= 0 and length >= 0 and end <= size and data[end - SYNC_SIZE:end] == sync
        except (EOFError, ValueError):
            intact = False
        if intact:
            yield Block(pos, end, count)
            pos = end
            continue
        found = data.find(sync, pos)
        if found < 0:
            yield Damage(pos, size)
            return
        yield Damage(pos, found + SYNC_SIZE)
        pos = found + SYNC_SIZE


def count_records(data: bytes) -> tuple[int, list[str]]:
    """Records in the intact blocks of a file, without decoding them; and the problems."""
    header = parse_header(data)
    total, problems = 0, []
    for item in iter_blocks(data, header):
        if isinstance(item, Block):
            total += item.count
        else:
            problems.append(_damage_text(item, len(data)))
    return total, problems


def read_tolerant(data: bytes) -> Container:
    """Every record of the intact blocks of one of our files; ForeignFileError if not ours."""
    header = parse_header(data)
    items = list(iter_blocks(data, header))
    if all(isinstance(i, Block) for i in items):
        try:  # the common case: one fastavro pass over the whole file
            return Container(header, list(fastavro.reader(io.BytesIO(data))))
        except Exception:  # a block that frames well but does not decode: salvage below
            pass
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    head = data[:header.end]
    for item in items:
        if isinstance(item, Damage):
            problems.append(_damage_text(item, len(data)))
            continue
        try:
            records.extend(fastavro.reader(io.BytesIO(head + data[item.offset:item.end])))
        except Exception as e:  # skip this block, keep the others
            problems.append(f"block at bytes {item.offset}-{item.end} does not decode "
                            f"({type(e).__name__}: {e}); its {item.count} records skipped")
    return Container(header, records, problems)


def _damage_text(item: Damage, size: int) -> str:
    where = "truncated or corrupt tail" if item.end == size else "corrupt stretch"
    return f"{where} at bytes {item.offset}-{item.end} skipped"


def _payload_schema_for_pandas(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a payload file's schema with the dtype attributes `restore_frame` applies."""
    annotated = copy.deepcopy(schema)
    for f in annotated["fields"]:
        dtype = PAYLOAD_DTYPES.get(f["name"])
        if f["name"] not in ENVELOPE_NAMES and dtype is not None:
            f.setdefault(ATTR_ORIGINAL_NAME, f["name"])
            f.setdefault(ATTR_PANDAS_DTYPE, dtype)
    return annotated


def pandas_schema(header: Header) -> dict[str, Any]:
    """The schema `restore_frame` should use for a file (payload files get their dtypes)."""
    if header.shape == SHAPE_PAYLOAD:
        return _payload_schema_for_pandas(header.schema)
    return header.schema


def _headers_as_dicts(records: list[dict[str, Any]]) -> None:
    """Payload headers are stored as name/value records; callers want a dict."""
    for record in records:
        headers = record.get("headers")
        if isinstance(headers, list):
            record["headers"] = {h["name"]: h["value"] for h in headers}


def reads_all(reader_schema: dict[str, Any] | None, headers: Iterable[Header]) -> bool:
    """Whether `reader_schema` (a collection's published one) reads every column of
    these tabular files (it may lag behind a writer that could not publish)."""
    if reader_schema is None:
        return False
    fields = {f["name"]: f for f in reader_schema.get("fields", ())}
    return all(
        h.shape != SHAPE_PAYLOAD and all(
            f["name"] in fields and fit(fields[f["name"]], f) in ("same", "cast_double")
            for f in h.schema["fields"] if f["name"] not in ENVELOPE_NAMES)
        for h in headers
    )


def frame_from_containers(
    containers: Iterable[Container], reader_schema: dict[str, Any] | None = None
) -> pd.DataFrame:
    """One DataFrame from the files of one collection, whatever their schemas and shapes.

    With the collection's published `reader_schema` (``_schema/latest.avsc``) and
    tabular files it reads, every record is restored with that one schema (the
    collection's newest types and dtypes). Otherwise files with the same schema
    are decoded as one part; parts are combined by
    `exporters.avro.tabular.restore_frames` (union of columns, promotion, nulls for
    missing). Row order: by file, then within a file; callers sort as they need.
    """
    containers = list(containers)
    if reader_schema is not None and reads_all(reader_schema, (c.header for c in containers)):
        return restore_frame([r for c in containers for r in c.records], reader_schema)
    groups: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
    for c in containers:
        if c.header.shape == SHAPE_PAYLOAD:
            _headers_as_dicts(c.records)
        schema = pandas_schema(c.header)
        key = json.dumps(schema, sort_keys=True)
        records, _ = groups.setdefault(key, ([], schema))
        records.extend(c.records)
    return restore_frames(list(groups.values()))
