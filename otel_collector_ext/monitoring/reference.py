"""Reading a reference (training or validation) set, or ground-truth labels, from a file.

Parquet, CSV, JSON Lines (``.jsonl``, ``.ndjson``) and JSON (an array of
records, or JSON Lines) are read by pandas; the extension decides. Only a
local regular file is read (no URL, no device or FIFO), and a file that does
not parse is a `ReferenceFileError` naming it, never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

READERS = (".parquet", ".pq", ".csv", ".jsonl", ".ndjson", ".json")


class ReferenceFileError(ValueError):
    """A reference or labels file that cannot be read."""


def read_table(path: str | os.PathLike[str], what: str = "reference") -> pd.DataFrame:
    """The rows of a Parquet, CSV, JSON Lines or JSON file."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"the {what} path must be a non-empty string, not {path!r}")
    text = str(path)
    if "://" in text:
        raise ReferenceFileError(f"{what} {text!r}: only local files are read; download it first")
    p = Path(text)
    suffix = p.suffix.lower()
    if suffix not in READERS:
        raise ReferenceFileError(f"{what} {text!r}: unknown file type {suffix or '(none)'!r}; "
                             f"use one of {', '.join(READERS)}")
    if not p.is_file():
        raise ReferenceFileError(f"{what} {text!r} " + (
            "is not a regular file" if p.exists() else "does not exist"))
    try:
        if suffix in (".parquet", ".pq"):
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ReferenceFileError(f"{what} {text!r}: reading Parquet needs pyarrow: "
                                     "pip install 'otel-collector-ext[parquet]'") from None
            frame = pd.read_parquet(p)
        elif suffix == ".csv":
            frame = pd.read_csv(p)
        elif suffix in (".jsonl", ".ndjson"):
            frame = pd.read_json(p, lines=True)
        else:
            with p.open("rb") as f:
                first = f.read(4096).lstrip()[:1]
            frame = pd.read_json(p, lines=first != b"[")
    except ReferenceFileError:
        raise
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise ReferenceFileError(f"{what} {text!r} cannot be read: {str(e).splitlines()[0][:300]}"
                             ) from None
    except Exception as e:  # pyarrow's own errors on a damaged file
        raise ReferenceFileError(f"{what} {text!r} cannot be read: {type(e).__name__}: "
                             f"{str(e).splitlines()[0][:300] if str(e) else ''}") from None
    if not isinstance(frame, pd.DataFrame) or (
            isinstance(frame.columns, pd.RangeIndex) and suffix != ".csv"):
        raise ReferenceFileError(f"{what} {text!r} does not hold a table of records (objects "
                                 "with named fields)")
    frame.columns = [str(c) for c in frame.columns]
    return frame
