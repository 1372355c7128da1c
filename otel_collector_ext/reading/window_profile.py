"""The column profile of a collection over a time window, from the profiles stored beside
its files (`exporters.profiles`), reading rows only for the files they cannot answer.

A file's stored profile answers when it is readable, describes the file at its
current size (`file_bytes`), and all of the file's events lie in the window (its
partition does, or the profile's own time bounds do). Otherwise the file's rows
are read, the rows in the window are profiled the same way the writer does, and
merged in. So a window aligned on partitions costs one small JSON file per data
file; a window that cuts through a partition reads that partition's files.
A profile that is damaged or hostile is skipped and counted (`skipped`), never raised.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from exporters.avro.reading import read_tolerant
from exporters.avro.schema import CORRELATION_ID, MODEL_VERSION, ROW, SPAN_ID, TIME, TRACE_ID
from exporters.profiles import FileProfile, ProfileError, profile_path
from exporters.storage import Storage, StorageError

from .catalog import DataFile, list_collection
from .fetch import DEFAULT_WORKERS, fetch

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NOT_PROFILED = (CORRELATION_ID, ROW, MODEL_VERSION, TRACE_ID, SPAN_ID)


@dataclass
class WindowProfile:
    """The merged profile of a window, and how it was made."""

    profile: FileProfile = field(default_factory=FileProfile)
    from_profiles: int = 0  # files answered by their stored profile
    from_rows: int = 0  # files whose rows were read
    skipped: Counter[str] = field(default_factory=Counter)  # profiles not used, by reason
    problems: list[str] = field(default_factory=list)  # files skipped or read in part


def _micros(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1)


def _inside(f: DataFile, profile: FileProfile | None, lo: datetime | None,
            hi: datetime | None) -> bool:
    """Whether every event of `f` lies in [lo, hi)."""
    if (lo is None or f.start >= lo) and (hi is None or f.end <= hi):
        return True
    if profile is None or profile.time_min is None or profile.time_max is None:
        return profile is not None and profile.rows == 0
    return ((lo is None or profile.time_min >= _micros(lo))
            and (hi is None or profile.time_max < _micros(hi)))


def _stored(storage: Storage, f: DataFile, sizes: Mapping[str, int]) -> tuple[
        FileProfile | None, str | None]:
    """(the stored profile of `f` if usable, else the reason it is not)."""
    path = profile_path(f.path)
    if path not in sizes:
        return None, "missing"
    try:
        profile = FileProfile.from_json(storage.read(path))
    except FileNotFoundError:
        return None, "missing"
    except (StorageError, OSError):
        return None, "unreadable"
    except ProfileError:
        return None, "invalid"
    if profile.file_bytes != f.size:
        return None, "stale"  # rows were appended after it was written
    return profile, None


def _profile_rows(data: bytes, lo: datetime | None, hi: datetime | None) -> tuple[
        FileProfile, list[str]]:
    container = read_tolerant(data)
    records = container.records
    if lo is not None or hi is not None:
        records = [r for r in records if isinstance(r.get(TIME), datetime)
                   and (lo is None or r[TIME] >= lo) and (hi is None or r[TIME] < hi)]
    profile = FileProfile()
    profile.add_datums(container.header.schema, records, skip=_NOT_PROFILED)
    return profile, container.problems


def window_profile(
    storage: Storage,
    endpoint: str,
    deployment: str,
    collection: str,
    lo: datetime | None = None,
    hi: datetime | None = None,
    *,
    workers: int | None = None,
) -> WindowProfile:
    """The profile of the collection's rows with event time in [lo, hi) (see the module)."""
    listing = list_collection(storage, endpoint, deployment, collection, lo, hi)
    out = WindowProfile(problems=list(listing.skipped))
    to_read: list[DataFile] = []

    def stored(f: DataFile) -> tuple[FileProfile | None, str | None]:
        return _stored(storage, f, listing.profiles)

    with ThreadPoolExecutor(max(1, min(workers or DEFAULT_WORKERS, len(listing.files)))) as pool:
        found = list(pool.map(stored, listing.files))
    for f, (profile, reason) in zip(listing.files, found, strict=True):
        if profile is not None and _inside(f, profile, lo, hi):
            out.profile.merge(profile)
            out.from_profiles += 1
            continue
        out.skipped[reason or "window_cuts_the_file"] += 1
        to_read.append(f)

    def profile_file(data: bytes) -> tuple[FileProfile, list[str]]:
        return _profile_rows(data, lo, hi)

    if to_read:
        fetched = fetch(storage, to_read, profile_file, workers=workers, progress=False,
                        description=collection)
        for _, profile in fetched.results:
            out.profile.merge(profile)
            out.from_rows += 1
        out.problems.extend(fetched.problems)
    return out


def describe(result: WindowProfile) -> dict[str, Any]:
    """How the profile was made, JSON-ready (for results and logs)."""
    return {"files_from_profiles": result.from_profiles, "files_from_rows": result.from_rows,
            "profiles_skipped": dict(result.skipped)}
