"""Finding collected files: the partition layout, time-range pruning, and what is not ours.

Layout: ``{endpoint}/{deployment}/{collection}/yyyy/MM/dd[/HH[/mm]]/{instance}.{seq}.avro``
(day, hour or minute partitions). A time-range read lists only the month and
day folders that overlap the range, never the whole collection; an open range
(no start or no end) has no such bound and lists the collection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from exporters.avro.partitioning import collection_prefix, safe_segment
from exporters.avro.schema_store import SCHEMA_DIR
from exporters.profiles import PROFILE_SUFFIX
from exporters.storage import ObjectInfo, Storage

PARTITION_SPAN = {3: timedelta(days=1), 4: timedelta(hours=1), 5: timedelta(minutes=1)}
_WIDTHS = (4, 2, 2, 2, 2)
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class DataFile:
    """One Avro file of a partition."""

    path: str
    size: int
    endpoint: str
    deployment: str
    collection: str
    start: datetime  # UTC start of its partition
    end: datetime  # UTC end (exclusive) of its partition

    @property
    def partition(self) -> str:
        """The partition folder, relative to the storage root."""
        return self.path.rpartition("/")[0]

    def overlaps(self, lo: datetime | None, hi: datetime | None) -> bool:
        """Whether the partition may hold events in [lo, hi)."""
        return (hi is None or self.start < hi) and (lo is None or self.end > lo)


@dataclass
class Listing:
    """Files found under a prefix, and messages about the objects that were skipped."""

    files: list[DataFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: Column profiles seen beside the files (path -> size), see `exporters.profiles`.
    profiles: dict[str, int] = field(default_factory=dict)


def classify(info: ObjectInfo) -> DataFile | str | None:
    """A DataFile for a partition file; a message for an object that is not ours; None for
    objects we wrote beside the data (large payload bodies, published schemas, profiles)."""
    parts = info.path.split("/")
    if parts[-1].endswith(".avro" + PROFILE_SUFFIX):
        return None
    if len(parts) >= 2 and parts[-2].endswith(".bodies") and parts[-1].endswith(".bin"):
        return None
    if len(parts) == 5 and parts[3] == SCHEMA_DIR and parts[4].endswith(".avsc"):
        return None  # the collection's published schemas
    if not parts[-1].endswith(".avro"):
        return f"skipped {info.path}: not an .avro file"
    numbers = parts[3:-1]
    depth = len(numbers)
    if depth not in PARTITION_SPAN or not all(
        _DIGITS.fullmatch(n) and len(n) == w for n, w in zip(numbers, _WIDTHS, strict=False)
    ):
        return f"skipped {info.path}: not in a yyyy/MM/dd[/HH[/mm]] partition folder"
    try:
        start = datetime(*(int(n) for n in numbers), tzinfo=UTC)  # type: ignore[misc]
    except ValueError:
        return f"skipped {info.path}: not a valid partition date"
    return DataFile(info.path, info.size, parts[0], parts[1], parts[2], start,
                    start + PARTITION_SPAN[depth])


def range_prefixes(prefix: str, lo: datetime, hi: datetime) -> list[str]:
    """The folders under a collection `prefix` to list for partitions overlapping [lo, hi):
    whole months inside the range as one month folder, every other day as a day folder."""
    out: list[str] = []
    day = datetime(lo.year, lo.month, lo.day, tzinfo=UTC)
    while day < hi:
        next_month = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
        if day.day == 1 and next_month <= hi:
            out.append(f"{prefix}{day:%Y/%m}/")
            day = next_month
        else:
            out.append(f"{prefix}{day:%Y/%m/%d}/")
            day += timedelta(days=1)
    return out


def _gather(storage: Storage, prefixes: Iterable[str], workers: int) -> Listing:
    prefixes = list(prefixes)
    listing = Listing()

    def one(prefix: str) -> list[ObjectInfo]:
        return list(storage.list(prefix))

    if len(prefixes) > 1:
        with ThreadPoolExecutor(min(workers, len(prefixes))) as pool:
            batches = list(pool.map(one, prefixes))
    else:
        batches = [one(p) for p in prefixes]
    for batch in batches:
        for info in batch:
            if info.path.endswith(PROFILE_SUFFIX):
                listing.profiles[info.path] = info.size
            got = classify(info)
            if isinstance(got, DataFile):
                listing.files.append(got)
            elif got is not None:
                listing.skipped.append(got)
    listing.files.sort(key=lambda f: (f.start, f.path))
    return listing


def list_collection(
    storage: Storage,
    endpoint: str,
    deployment: str,
    collection: str,
    lo: datetime | None = None,
    hi: datetime | None = None,
    *,
    workers: int = 8,
) -> Listing:
    """The files of one collection whose partitions overlap [lo, hi), oldest first."""
    prefix = collection_prefix(endpoint, deployment, collection)
    prefixes = [prefix] if lo is None or hi is None else range_prefixes(prefix, lo, hi)
    listing = _gather(storage, prefixes, workers)
    listing.files = [f for f in listing.files if f.overlaps(lo, hi)]
    return listing


def list_tree(
    storage: Storage,
    endpoint: str | None = None,
    deployment: str | None = None,
    collection: str | None = None,
    lo: datetime | None = None,
    hi: datetime | None = None,
) -> Listing:
    """Every file under the storage root, or under an endpoint, deployment or collection."""
    if collection is not None and endpoint is not None and deployment is not None:
        return list_collection(storage, endpoint, deployment, collection, lo, hi)
    names = [endpoint, deployment]
    prefix = ""
    for name in names:
        if name is None:
            break
        prefix += safe_segment(name) + "/"
    listing = _gather(storage, [prefix], 1)
    listing.files = [
        f for f in listing.files
        if f.overlaps(lo, hi)
        and (endpoint is None or f.endpoint == safe_segment(endpoint))
        and (deployment is None or f.deployment == safe_segment(deployment))
        and (collection is None or f.collection == safe_segment(collection))
    ]
    return listing


def has_collection(storage: Storage, endpoint: str, deployment: str, collection: str) -> bool:
    """Whether any object exists under the collection's folder (one listing call, first item)."""
    return next(iter(storage.list(collection_prefix(endpoint, deployment, collection))), None) is not None
