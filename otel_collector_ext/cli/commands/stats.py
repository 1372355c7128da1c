"""`stats`: rows per hour per collection, and per column the null rate and a short
distribution summary (mean, spread and quartiles, or the most frequent values)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pandas as pd

from otel_collector_ext.reading.catalog import list_tree
from otel_collector_ext.reading.profile import ColumnSummary, rows_per_hour, summarize_frame
from otel_collector_ext.reading.readback import load

from ._reading import (
    UsageError,
    add_scope_arguments,
    add_storage_arguments,
    describe,
    existing,
    opened,
    print_table,
    require_collection,
    run_command,
    show_progress,
    window,
)

PROG = "otel-collector-ext stats"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_storage_arguments(parser)
    add_scope_arguments(parser, multiple=True)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def load_collections(storage: Any, args: argparse.Namespace) -> dict[str, pd.DataFrame]:
    """The frames of the requested collections (default: every collection of the deployment)."""
    lo, hi = window(args)
    names = args.collection
    if names:
        for name in names:
            require_collection(storage, args, name)
    else:
        listing = list_tree(storage, args.endpoint, args.deployment)
        names = sorted({f.collection for f in listing.files})
        if not names:
            raise UsageError(f"no collected data for endpoint {args.endpoint!r}, deployment "
                             f"{args.deployment!r} in {describe(args)}; "
                             f"{existing(storage, args)}")
    return {
        name: load(storage, endpoint=args.endpoint, deployment=args.deployment, collection=name,
                   start=lo, end=hi, workers=args.workers, progress=show_progress(args))
        for name in names
    }


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _summary_row(s: ColumnSummary) -> list[str]:
    top = ", ".join(f"{v} ({n / max(s.count - s.nulls, 1):.0%})" for v, n in s.top[:3])
    return [s.name, s.dtype, f"{s.null_rate:.1%}", _number(s.distinct), _number(s.mean),
            _number(s.std), _number(s.min), _number(s.p50), _number(s.max), top]


def _stats(args: argparse.Namespace) -> int:
    with opened(args) as storage:
        frames = load_collections(storage, args)
    hourly = rows_per_hour(frames)
    summaries = {name: summarize_frame(frame) for name, frame in frames.items()}
    if args.json:
        print(json.dumps({
            "rows_per_hour": [
                {"hour": hour.isoformat(), **{k: int(v) for k, v in row.items()}}
                for hour, row in hourly.iterrows()
            ],
            "collections": {
                name: {"rows": len(frames[name]), "columns": [s.as_dict() for s in summaries[name]]}
                for name in frames
            },
        }, indent=2, default=str))
        return 0
    print("Rows per hour (UTC)")
    table = [[f"{hour:%Y-%m-%d %H:00}", *(f"{int(v):,}" for v in row)] for hour, row in hourly.iterrows()]
    table.append(["total", *(f"{len(frames[c]):,}" for c in hourly.columns)])
    print_table(table, ["HOUR", *hourly.columns], right=set(range(1, len(hourly.columns) + 1)))
    for name, frame in frames.items():
        print(f"\n{name}: {len(frame):,} rows")
        if not len(frame):
            continue
        print_table([_summary_row(s) for s in summaries[name]],
                    ["COLUMN", "DTYPE", "NULLS", "DISTINCT", "MEAN", "STD", "MIN", "MEDIAN", "MAX",
                     "TOP VALUES"], right={2, 3, 4, 5, 6, 7, 8})
    return 0


def run(args: argparse.Namespace) -> int:
    return run_command(PROG, lambda: _stats(args))
