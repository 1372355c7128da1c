"""Where a record lands: {endpoint}/{deployment}/{collection}/yyyy/MM/dd/HH[/mm].

The time is the record's own event time (UTC), not the export time, so late or
replayed data lands in the hour it belongs to. Segments come from record
attributes, which may arrive from any OTLP client: anything that is not a plain
name is percent-escaped, so no value can climb out of the storage root.
"""

from __future__ import annotations

import functools
import hashlib
import re
from datetime import UTC, datetime

ROLLING_DEPTH = {"day": 3, "hour": 4, "minute": 5}
_MAX_ESCAPED = 120  # well under the 255-byte file-name limit
ROLLING_SPAN_US = {"day": 86_400_000_000, "hour": 3_600_000_000, "minute": 60_000_000}
_SAFE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,126}[A-Za-z0-9_\-])?")


@functools.lru_cache(maxsize=4096)
def safe_segment(value: str) -> str:
    """`value` if it is a safe path segment, else an escaped form of it, at most 120 chars.

    Escaping (percent-encoding anything but letters, digits, '_' and '-') keeps distinct
    values distinct; a form that would be too long for a file name is cut and followed by
    a hash of the whole value, so it stays distinct and bounded.
    """
    if _SAFE.fullmatch(value):
        return value
    escaped = "".join(
        c if (c.isascii() and (c.isalnum() or c in "_-")) else "".join(
            f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass")
        )
        for c in value
    ) or "%00"
    if len(escaped) <= _MAX_ESCAPED:
        return escaped
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{escaped[:_MAX_ESCAPED - 17]}~{digest}"


def time_path(time_us: int, rolling_rate: str = "hour") -> str:
    """yyyy/MM/dd[/HH[/mm]] of a UTC time in microseconds since the epoch."""
    t = datetime.fromtimestamp(time_us / 1_000_000, UTC)
    parts = (f"{t.year:04d}", f"{t.month:02d}", f"{t.day:02d}", f"{t.hour:02d}", f"{t.minute:02d}")
    return "/".join(parts[: ROLLING_DEPTH[rolling_rate]])


def collection_prefix(endpoint: str, deployment: str, collection: str) -> str:
    """The folder of one collection, ending with '/'."""
    return "/".join(safe_segment(s) for s in (endpoint, deployment, collection)) + "/"


def partition_dir(
    endpoint: str, deployment: str, collection: str, time_us: int, rolling_rate: str = "hour"
) -> str:
    """The folder of the partition a record at `time_us` belongs to."""
    return collection_prefix(endpoint, deployment, collection) + time_path(time_us, rolling_rate)


def partition_start(path: str, prefix: str) -> datetime | None:
    """The UTC start of the partition a stored `path` under `prefix` lies in, or None."""
    rest = path[len(prefix):].split("/")[:-1]
    try:
        numbers = [int(p) for p in rest[:5]]
        return datetime(*numbers, tzinfo=UTC) if len(numbers) >= 3 else None  # type: ignore[misc]
    except (ValueError, TypeError):
        return None
