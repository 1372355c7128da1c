"""Reading many stored files in parallel threads, with an optional progress bar.

Reads are I/O bound for Blob (one HTTP round trip or more per file), so a
thread pool overlaps them; decoding holds the GIL, which is why the pool stays
small. The bar counts bytes, writes to stderr, and is shown only when asked
(the CLI asks when stderr is a terminal), so piped output stays clean.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tqdm import tqdm

from exporters.avro.reading import ForeignFileError
from exporters.storage import Storage

from .catalog import DataFile

T = TypeVar("T")

DEFAULT_WORKERS = 8


@dataclass
class Fetched(Generic[T]):
    """Per-file results in listing order, and messages about skipped or partly read files."""

    results: list[tuple[DataFile, T]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def fetch(
    storage: Storage,
    files: Sequence[DataFile],
    decode: Callable[[bytes], tuple[T, list[str]]],
    *,
    workers: int | None = None,
    progress: bool = False,
    description: str = "reading",
) -> Fetched[T]:
    """`decode(bytes)` of every file, read `workers` at a time.

    `decode` returns (value, problems); a file that is not ours or vanished
    since it was listed is skipped with a message; storage errors propagate.
    """
    out: Fetched[T] = Fetched()
    if not files:
        return out

    def one(f: DataFile) -> tuple[T | None, list[str]]:
        try:
            data = storage.read(f.path)
        except FileNotFoundError:
            return None, [f"skipped {f.path}: deleted while reading"]
        try:
            if not data:
                raise ForeignFileError("empty file")
            value, problems = decode(data)
        except ForeignFileError as e:
            return None, [f"skipped {f.path}: {e}"]
        return value, [f"{f.path}: {p}" for p in problems]

    bar = tqdm(total=sum(f.size for f in files), unit="B", unit_scale=True, desc=description,
               disable=not progress, leave=False, file=sys.stderr, dynamic_ncols=True)
    with bar, ThreadPoolExecutor(max(1, min(workers or DEFAULT_WORKERS, len(files)))) as pool:
        for f, (value, problems) in zip(files, pool.map(one, files), strict=True):
            bar.update(f.size)
            out.problems.extend(problems)
            if value is not None:
                out.results.append((f, value))
    return out
