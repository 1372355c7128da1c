"""`read`: a slice of a collection (or inputs joined to outputs) as a table, CSV, JSON Lines
or Parquet, on stdout or in a file."""

from __future__ import annotations

import argparse
import sys

from otel_collector_ext.reading import output
from otel_collector_ext.reading.readback import join_inputs_outputs, load

from ._reading import (
    UsageError,
    add_scope_arguments,
    add_storage_arguments,
    opened,
    require_collection,
    run_command,
    show_progress,
    window,
)

PROG = "otel-collector-ext read"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_storage_arguments(parser)
    add_scope_arguments(parser)
    g = parser.add_argument_group("join")
    g.add_argument("--join", action="store_true",
                   help="inputs joined to outputs (and request/response metadata) instead of "
                        "one collection")
    g.add_argument("--inputs", default="model_inputs", help="inputs collection (--join)")
    g.add_argument("--outputs", default="model_outputs", help="outputs collection (--join)")
    g.add_argument("--fetch-bodies", action="store_true",
                   help="read payload bodies stored apart (too large to inline) into 'body'")
    o = parser.add_argument_group("output")
    o.add_argument("--columns", help="comma-separated columns to keep (in that order)")
    o.add_argument("-n", "--limit", type=int, help="at most N rows (the earliest)")
    o.add_argument("--tail", type=int, help="the latest N rows")
    o.add_argument("-o", "--output", help="write to this file instead of stdout")
    o.add_argument("-f", "--format", choices=output.FORMATS,
                   help="default: from --output's extension, else a table on a terminal and "
                        "CSV when piped; parquet needs pyarrow and --output")


def _read(args: argparse.Namespace) -> int:
    lo, hi = window(args)
    if not args.join and not args.collection:
        raise UsageError("give --collection, or --join for inputs joined to outputs")
    for flag in ("limit", "tail"):
        if getattr(args, flag) is not None and getattr(args, flag) < 0:
            raise UsageError(f"--{flag} must be 0 or more")
    fmt = args.format or output.format_for(args.output, "table" if sys.stdout.isatty() else "csv")
    if fmt == "parquet" and not args.output:
        raise UsageError("Parquet is binary: give --output FILE.parquet")
    if fmt == "parquet":
        output.require_parquet()
    common = {"endpoint": args.endpoint, "deployment": args.deployment, "start": lo, "end": hi,
              "workers": args.workers, "progress": show_progress(args)}
    with opened(args) as storage:
        if args.join:
            require_collection(storage, args, args.inputs)
            frame = join_inputs_outputs(storage, inputs=args.inputs, outputs=args.outputs, **common)
        else:
            require_collection(storage, args, args.collection)
            frame = load(storage, collection=args.collection, fetch_bodies=args.fetch_bodies,
                         **common)
    if args.columns:
        wanted = [c.strip() for c in args.columns.split(",") if c.strip()]
        by_text = {str(c): c for c in frame.columns}
        missing = [c for c in wanted if c not in by_text]
        if missing:
            raise UsageError(f"no column(s) {', '.join(missing)}; columns are: "
                             f"{', '.join(by_text)}")
        frame = frame[[by_text[c] for c in wanted]]
    if args.limit is not None:
        frame = frame.head(args.limit)
    if args.tail is not None:
        frame = frame.tail(args.tail)
    output.write(frame, fmt, args.output or sys.stdout)
    if args.output:
        print(f"wrote {len(frame):,} rows to {args.output}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    return run_command(PROG, lambda: _read(args))
