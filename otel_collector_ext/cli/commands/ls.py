"""`ls`: what was collected where: collections per endpoint and deployment, or a
collection's partitions (or files) with file and row counts and bytes.

Rows are counted from the Avro block headers (no decoding), so they are exact
for every intact block; counting reads the files, so at the collection level it
is opt-in (--rows) and at the partition level always on.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from typing import Any

from exporters.avro.reading import count_records
from otel_collector_ext.reading.catalog import DataFile, list_tree
from otel_collector_ext.reading.fetch import fetch
from otel_collector_ext.reading.readback import warn_problems

from ._reading import (
    UsageError,
    add_scope_arguments,
    add_storage_arguments,
    describe,
    existing,
    format_bytes,
    opened,
    print_table,
    run_command,
    show_progress,
    window,
)

PROG = "otel-collector-ext ls"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_storage_arguments(parser)
    add_scope_arguments(parser, required=False)
    parser.add_argument("--rows", action="store_true",
                        help="count rows for every collection too (reads every file)")
    parser.add_argument("--files", action="store_true", help="list every file of a collection")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _time(f: DataFile) -> str:
    return f"{f.start:%Y-%m-%d %H:%M}"


def _count_rows(storage: Any, files: list[DataFile], args: argparse.Namespace) -> dict[str, int]:
    fetched = fetch(storage, files, count_records, workers=args.workers,
                    progress=show_progress(args), description="counting")
    warn_problems(fetched.problems)
    return {f.path: n for f, n in fetched.results}


def _collections(files: list[DataFile], rows: dict[str, int] | None) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str, str], list[DataFile]] = defaultdict(list)
    for f in files:
        groups[(f.endpoint, f.deployment, f.collection)].append(f)
    out = []
    for (endpoint, deployment, collection), members in sorted(groups.items()):
        entry: dict[str, Any] = {
            "endpoint": endpoint, "deployment": deployment, "collection": collection,
            "partitions": len({f.partition for f in members}), "files": len(members),
            "bytes": sum(f.size for f in members),
            "first": _time(members[0]), "last": _time(max(members, key=lambda f: f.start)),
        }
        if rows is not None:
            entry["rows"] = sum(rows.get(f.path, 0) for f in members)
        out.append(entry)
    return out


def _partitions(files: list[DataFile], rows: dict[str, int], each_file: bool) -> list[dict[str, Any]]:
    groups: dict[str, list[DataFile]] = defaultdict(list)
    for f in files:
        groups[f.path if each_file else f.partition].append(f)
    return [
        {("file" if each_file else "partition"): key, "start": _time(members[0]),
         "files": len(members), "rows": sum(rows.get(f.path, 0) for f in members),
         "bytes": sum(f.size for f in members)}
        for key, members in groups.items()
    ]


def _ls(args: argparse.Namespace) -> int:
    lo, hi = window(args)
    if args.collection and not (args.endpoint and args.deployment):
        raise UsageError("--collection needs --endpoint and --deployment")
    with opened(args) as storage:
        listing = list_tree(storage, args.endpoint, args.deployment, args.collection, lo, hi)
        warn_problems(listing.skipped)
        files = listing.files
        if not files:
            scope = ", ".join(f"{k} {v!r}" for k, v in (("endpoint", args.endpoint),
                              ("deployment", args.deployment), ("collection", args.collection)) if v)
            if scope or lo or hi:
                raise UsageError(f"no collected data for {scope or 'that time range'} in "
                                 f"{describe(args)}; {existing(storage, args)}")
            print(f"no collected data in {describe(args)}", file=sys.stderr)
            return 0
        detail = bool(args.collection)
        rows = _count_rows(storage, files, args) if detail or args.rows else None
    if detail:
        assert rows is not None
        entries = _partitions(files, rows, args.files)
        key = "file" if args.files else "partition"
        if args.json:
            print(json.dumps(entries, indent=2))
            return 0
        table = [[e[key] if args.files else e["start"], e["files"], f"{e['rows']:,}",
                  f"{e['bytes']:,}"] for e in entries]
        table.append(["total", sum(e["files"] for e in entries),
                      f"{sum(e['rows'] for e in entries):,}", f"{sum(e['bytes'] for e in entries):,}"])
        print_table(table, ["FILE" if args.files else "PARTITION (UTC)", "FILES", "ROWS", "BYTES"],
                    right={1, 2, 3})
        return 0
    entries = _collections(files, rows)
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    header = ["ENDPOINT", "DEPLOYMENT", "COLLECTION", "PARTITIONS", "FILES", "BYTES", "FIRST (UTC)",
              "LAST (UTC)"] + (["ROWS"] if rows is not None else [])
    table = [[e["endpoint"], e["deployment"], e["collection"], e["partitions"], e["files"],
              format_bytes(e["bytes"]), e["first"], e["last"]]
             + ([f"{e['rows']:,}"] if rows is not None else []) for e in entries]
    print_table(table, header, right={3, 4, 5, 8})
    return 0


def run(args: argparse.Namespace) -> int:
    return run_command(PROG, lambda: _ls(args))
