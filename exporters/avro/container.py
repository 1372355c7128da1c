"""Avro object container encoding as bytes: a header once, then appendable blocks.

A container file stays valid after every complete block, so a writer can append
blocks to a local file or an append blob. Encoding to bytes (not to a file) keeps
this module ignorant of where the bytes go.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Mapping
from typing import Any

import fastavro
from fastavro.write import Writer

CODECS = ("null", "deflate", "snappy", "zstandard")


def check_codec(codec: str) -> str:
    """`codec` if this installation can write it (snappy and zstandard need extra packages)."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, not {codec!r}")
    try:  # fastavro knows which libraries it needs; ask it with one tiny block
        fastavro.writer(io.BytesIO(), {"type": "record", "name": "probe", "fields": []}, [{}],
                        codec=codec)
    except ValueError as e:
        raise ValueError(f"codec {codec} is not available: {e} "
                         "(pip install 'otel-collector-ext[codecs]')") from None
    return codec


def sync_marker_for(path: str) -> bytes:
    """A deterministic 16-byte sync marker, so re-encoding the same file gives the same bytes."""
    return hashlib.blake2b(path.encode(), digest_size=16).digest()


class ContainerEncoder:
    """Encodes records of one schema into the header and blocks of one container file."""

    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        codec: str = "deflate",
        sync_marker: bytes,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self._schema = fastavro.parse_schema(dict(schema))
        self._codec = codec
        self._sync = sync_marker
        self._metadata = dict(metadata or {})
        self.header = self._encode(())

    def _encode(self, records: Iterable[Mapping[str, Any]]) -> bytes:
        buf = io.BytesIO()
        fastavro.writer(
            buf,
            self._schema,
            records,
            codec=self._codec,
            sync_marker=self._sync,
            metadata=self._metadata,
            validator=False,
        )
        return buf.getvalue()

    def encodes(self, record: Mapping[str, Any]) -> bool:
        """Whether `record` fits the schema (used to find the one bad record of a batch)."""
        try:
            fastavro.schemaless_writer(io.BytesIO(), self._schema, record)
        except Exception:
            return False
        return True

    def blocks(self, records: Iterable[Mapping[str, Any]]) -> bytes:
        """Complete data blocks for `records`, to follow the header (or earlier blocks).

        Records are handed to fastavro's C writer one by one from a Python loop, not as
        one iterable: `fastavro.writer` would encode a whole batch (milliseconds) without
        ever releasing the GIL, and the scoring threads of this process would wait that
        long in collect(). Between two records the interpreter can switch threads.
        """
        buf = io.BytesIO()
        writer = Writer(buf, self._schema, codec=self._codec, sync_marker=self._sync,
                        metadata=self._metadata, validator=False)
        write = writer.write
        for record in records:
            write(record)
        writer.flush()
        return buf.getvalue()[len(self.header):]
