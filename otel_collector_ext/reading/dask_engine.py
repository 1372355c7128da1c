"""`load(..., engine="dask")`: a lazy Dask DataFrame over the same files, read through fsspec.

The client lists the files (with the same partition pruning as the pandas path)
and reads only their headers to fix the frame's columns and dtypes; each Dask
partition is one storage partition (an hour folder, say) and is read by a
worker through fsspec: the local filesystem, or adlfs for Azure Blob, so a
Dask cluster reads Blob directly. Dask needs `dask[dataframe]` (with pyarrow)
and, for Blob, `adlfs`.

Dtypes come from the schemas alone (nothing is decoded up front): a column
missing from some files is nullable (Int64, boolean), and columns typed
differently across files follow the pandas path's promotion rules. The one
difference: the pandas path ignores a file whose column is entirely null when
choosing a dtype, which the schemas cannot tell.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from exporters.avro.reading import (
    ForeignFileError,
    Header,
    frame_from_containers,
    pandas_schema,
    parse_header,
    read_tolerant,
    reads_all,
)
from exporters.avro.schema import ENVELOPE_FIELDS
from exporters.avro.tabular import restore_frame, restore_frames

from .catalog import DataFile
from .readback import ReadWarning, in_range

HEADER_PROBE = 64 * 1024


def fsspec_location(destination: str, options: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """(root URL ending with '/', fsspec storage options) of a destination for fsspec/adlfs."""
    options = dict(options or {})
    scheme = urlparse(destination).scheme.lower()
    if scheme not in ("az", "https", "http"):
        path = unquote(urlparse(destination).path) if scheme == "file" else destination
        return "file://" + os.path.abspath(os.path.expanduser(path)).rstrip("/") + "/", {}
    from exporters.storage.blob import parse_destination

    dest = parse_destination(destination)
    root = f"az://{dest.container}/{dest.prefix}"
    if dest.account_url is None:
        conn = options.get("connection_string") or os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if not conn:
            raise ValueError(f"{destination} needs a connection string (connection_string option "
                             "or AZURE_STORAGE_CONNECTION_STRING)")
        return root, {"connection_string": conn}
    parsed = urlparse(dest.account_url)
    host = parsed.hostname or ""
    standard = ".blob." in host
    account = host.split(".")[0] if standard else parsed.path.strip("/").split("/")[-1]
    sas = options.get("sas_token") or dest.sas_token
    key = options.get("account_key")
    if key or sas:
        secret = f"AccountKey={key}" if key else f"SharedAccessSignature={sas.lstrip('?')}"
        return root, {"connection_string": f"AccountName={account};{secret};"
                                           f"BlobEndpoint={dest.account_url};"}
    fs_options: dict[str, Any] = {"account_name": account, "anon": False}
    if options.get("credential") is not None:
        fs_options["credential"] = options["credential"]
    if not standard:
        fs_options["account_host"] = parsed.netloc
    return root, fs_options


def _filesystem(root: str, fs_options: Mapping[str, Any]) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(root, **dict(fs_options))


def _read_header(fs: Any, path: str) -> Header:
    with fs.open(path, "rb") as f:
        head = f.read(HEADER_PROBE)
        try:
            return parse_header(head)
        except ForeignFileError:
            if len(head) < HEADER_PROBE:
                raise
            return parse_header(head + f.read())  # a header larger than the probe


def union_meta(schemas: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The empty frame whose columns and dtypes every partition is made to match."""
    frame = restore_frames([([], s) for s in schemas])
    column_sets = [set(restore_frame([], s).columns) for s in schemas]
    for column in frame.columns:
        dtype = frame[column].dtype
        everywhere = all(column in columns for columns in column_sets)
        if not everywhere and isinstance(dtype, np.dtype) and dtype.kind in "iub":
            frame[column] = frame[column].astype("boolean" if dtype.kind == "b" else "Int64")
    return frame


def conform(frame: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """`frame` with exactly `meta`'s columns (missing ones null) and dtypes."""
    columns = {}
    for column in meta.columns:
        dtype = meta[column].dtype
        if column in frame.columns:
            values = frame[column]
            columns[column] = values if values.dtype == dtype else values.astype(dtype)
        else:
            columns[column] = pd.Series([None] * len(frame), index=frame.index, dtype=object).astype(dtype)
    return pd.DataFrame(columns, index=frame.index)


class ReadPartition:
    """Reads the files of one storage partition (picklable, for Dask workers)."""

    def __init__(self, root: str, fs_options: Mapping[str, Any], lo: datetime | None,
                 hi: datetime | None, meta: pd.DataFrame,
                 reader_schema: dict[str, Any] | None = None) -> None:
        self.root, self.fs_options, self.lo, self.hi, self.meta = root, dict(fs_options), lo, hi, meta
        self.reader_schema = reader_schema

    def __call__(self, paths: Sequence[str]) -> pd.DataFrame:
        fs, _ = _filesystem(self.root, self.fs_options)
        containers = []
        for path in paths:
            try:
                container = read_tolerant(fs.cat_file(path))
            except ForeignFileError as e:
                warnings.warn(f"skipped {path}: {e}", ReadWarning, stacklevel=2)
                continue
            for problem in container.problems:
                warnings.warn(f"{path}: {problem}", ReadWarning, stacklevel=2)
            containers.append(container)
        frame = in_range(frame_from_containers(containers, self.reader_schema), self.lo, self.hi)
        return conform(frame, self.meta)


def dask_frame(
    destination: str,
    storage_options: Mapping[str, Any] | None,
    files: Sequence[DataFile],
    lo: datetime | None,
    hi: datetime | None,
    *,
    workers: int | None = None,
    reader_schema: dict[str, Any] | None = None,
) -> Any:
    """A lazy Dask DataFrame over `files`, one Dask partition per storage partition;
    `reader_schema`: the collection's published schema (see `load`)."""
    import dask
    import dask.dataframe as dd

    root, fs_options = fsspec_location(destination, storage_options)
    fs, base = _filesystem(root, fs_options)
    base = base.rstrip("/") + "/"
    paths = [base + f.path for f in files]
    headers: dict[str, Header] = {}

    def header(path: str) -> tuple[str, Header | str]:
        try:
            return path, _read_header(fs, path)
        except (ForeignFileError, EOFError) as e:
            return path, f"skipped {path}: {e}"

    with ThreadPoolExecutor(max(1, min(workers or 8, len(paths) or 1))) as pool:
        for path, got in pool.map(header, paths):
            if isinstance(got, str):
                warnings.warn(got, ReadWarning, stacklevel=3)
            else:
                headers[path] = got
    schemas: dict[str, dict[str, Any]] = {}
    for h in headers.values():
        schema = pandas_schema(h)
        schemas.setdefault(repr(schema), schema)
    if not reads_all(reader_schema, headers.values()):
        reader_schema = None
    # The collection's published schema first: its columns and order, as the eager load.
    meta = union_meta(([reader_schema] if reader_schema else []) + list(schemas.values())
                      or [{"fields": ENVELOPE_FIELDS}])
    groups: dict[str, list[str]] = {}
    for f, path in zip(files, paths, strict=True):
        if path in headers:
            groups.setdefault(f.partition, []).append(path)
    if not groups:
        with dask.config.set({"dataframe.convert-string": False}):
            return dd.from_pandas(meta, npartitions=1)
    reader = ReadPartition(root, fs_options, lo, hi, meta, reader_schema)
    # Dask's default turns object columns into strings, which would flatten the dicts,
    # lists and bytes of payload and JSON columns; pandas' own str columns stay as they are.
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_map(reader, list(groups.values()), meta=meta,
                           label="otel-collector-ext-load", enforce_metadata=False)
