"""`report`: a self-contained HTML page with plots of what was collected: rows per hour per
collection, and per column a baseline window compared with a current one."""

from __future__ import annotations

import argparse
import sys

from otel_collector_ext.reading.report import Window, default_windows, render

from ._reading import (
    UsageError,
    add_scope_arguments,
    add_storage_arguments,
    describe,
    format_bytes,
    opened,
    parse_time,
    run_command,
    window,
)
from .stats import load_collections

PROG = "otel-collector-ext report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_storage_arguments(parser)
    add_scope_arguments(parser, multiple=True)
    g = parser.add_argument_group("windows compared (default: the data's time range in halves)")
    g.add_argument("--split", help="baseline before this time, current from it")
    g.add_argument("--baseline", metavar="START/END", help="the baseline window, e.g. "
                   "2026-03-01/2026-03-02")
    g.add_argument("--current", metavar="START/END", help="the current window, e.g. '1d ago/now'")
    parser.add_argument("-o", "--output", default="report.html", help="HTML file to write "
                        "(default report.html; '-' for stdout)")
    parser.add_argument("--title", help="page title")


def _window(text: str, label: str) -> Window:
    start, sep, end = text.partition("/")
    if not sep:
        raise UsageError(f"--{label} must be START/END, e.g. 2026-03-01/2026-03-02")
    lo, hi = parse_time(start, label), parse_time(end, label)
    assert lo is not None and hi is not None
    if lo >= hi:
        raise UsageError(f"--{label}: {start} is not before {end}")
    return Window(label, lo, hi)


def _windows(args: argparse.Namespace, frames: dict) -> tuple[Window, Window]:
    base, cur = default_windows(frames)
    if args.split:
        split = parse_time(args.split, "split")
        assert split is not None
        # Outside the data one window is empty (or inverted) and every comparison is "n/a".
        if not base.start < split < cur.end:
            raise UsageError(f"--split {args.split} ({split:%Y-%m-%d %H:%M} UTC) is outside the "
                             f"data read ({base.start:%Y-%m-%d %H:%M} – {cur.end:%Y-%m-%d %H:%M} "
                             "UTC): a window would be empty; split inside it, or give "
                             "--baseline and --current")
        base, cur = Window("baseline", base.start, split), Window("current", split, cur.end)
    if args.baseline:
        base = _window(args.baseline, "baseline")
    if args.current:
        cur = _window(args.current, "current")
    return base, cur


def _report(args: argparse.Namespace) -> int:
    lo, hi = window(args)
    with opened(args) as storage:
        frames = load_collections(storage, args)
    base, cur = _windows(args, frames)
    rows = sum(len(f) for f in frames.values())
    first = min((f["_time"].min() for f in frames.values() if len(f)), default=None)
    last = max((f["_time"].max() for f in frames.values() if len(f)), default=None)
    facts = {
        "endpoint": args.endpoint,
        "deployment": args.deployment,
        "destination": describe(args),
        "rows": f"{rows:,}",
        "collections": str(len(frames)),
        "data from": "–" if first is None else f"{first:%Y-%m-%d %H:%M} UTC",
        "data to": "–" if last is None else f"{last:%Y-%m-%d %H:%M} UTC",
    }
    if lo or hi:
        facts["range read"] = f"{lo or '…'} – {hi or '…'}"
    title = args.title or f"{args.endpoint} / {args.deployment}: collected data"
    page = render(frames, title=title, facts=facts, baseline=base, current=cur)
    if args.output == "-":
        sys.stdout.write(page)
        return 0
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(page)
    print(f"wrote {args.output} ({format_bytes(len(page.encode()))}, {rows:,} rows)",
          file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    return run_command(PROG, lambda: _report(args))
