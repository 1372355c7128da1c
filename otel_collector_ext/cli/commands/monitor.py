"""`monitor`: compare a window of collected data with a reference and give verdicts.

Exit code 0 when no threshold is breached, 1 when one is, 2 for usage or
configuration errors (bad arguments, a configuration or reference file that
cannot be used), 3 when the collected data cannot be read (storage down), so
cron, CI and Kubernetes CronJobs can act on it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from exporters.storage import StorageError

from ._reading import (
    UsageError,
    add_scope_arguments,
    add_storage_arguments,
    opened,
    parse_time,
    print_table,
    run_command,
    window,
)

PROG = "otel-collector-ext monitor"
EXIT_READ_ERROR = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_storage_arguments(parser)
    add_scope_arguments(parser, multiple=True)
    g = parser.add_argument_group("reference (a file, or a window of collected data)")
    g.add_argument("--reference", metavar="FILE",
                   help="training or validation set: .parquet, .csv, .jsonl or .json")
    g.add_argument("--reference-start", metavar="T", help="start of a reference window")
    g.add_argument("--reference-end", metavar="T", help="end of a reference window (exclusive)")
    g.add_argument("--reference-deployment", metavar="D",
                   help="deployment whose data is the reference window (default: -p's)")
    g = parser.add_argument_group("ground truth (for model_performance)")
    g.add_argument("--ground-truth", metavar="FILE", help="labels file, matched on "
                   "correlation_id by default (see the config's ground_truth)")
    g.add_argument("--labels-collection", metavar="NAME",
                   help="a collection of this deployment that holds the labels")
    parser.add_argument("--config", metavar="monitor.yaml",
                        help="signals, features, thresholds (a monitoring: block, or Azure ML "
                             "monitor YAML)")
    parser.add_argument("--json", metavar="OUT.json", help="write the JSON result ('-': stdout)")
    parser.add_argument("--report", metavar="OUT.html", help="write an HTML report")
    parser.add_argument("--no-profiles", dest="profiles", action="store_false",
                        help="read every row of the window instead of answering from the column "
                             "profiles written at ingest (exact Wasserstein distances; slower)")


def _write(path: str, text: str, what: str) -> None:
    if path == "-":
        sys.stdout.write(text)
        return
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"--{what} {path} is a folder; give a file name")
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write --{what} {path}: {e.strerror}") from None


def _print(result: object) -> None:
    from ...monitoring import MonitorResult

    assert isinstance(result, MonitorResult)
    print(("BREACHED: " if result.breached else "ok: ") + result.verdict())
    shown = [s for s in result.signals if s.status != "ok"]
    if shown:
        print_table([[s.signal, s.collection, s.feature, s.metric,
                      "–" if s.value is None else f"{s.value:.4g}",
                      "–" if s.threshold is None else f"{s.threshold:.4g}", s.status,
                      s.reason or ""] for s in shown],
                    ["signal", "collection", "feature", "metric", "value", "threshold",
                     "status", "note"], right={4, 5})
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)


def _monitor(args: argparse.Namespace) -> int:
    try:
        from ...monitoring import monitor
        from ...monitoring.html import render
    except ImportError as e:  # scipy is the `monitor` extra
        raise UsageError(f"monitor needs scipy: pip install 'otel-collector-ext[monitor]' ({e})"
                         ) from None
    lo, hi = window(args)
    ref_lo = parse_time(args.reference_start, "reference-start")
    ref_hi = parse_time(args.reference_end, "reference-end")
    has_window = ref_lo is not None or ref_hi is not None or args.reference_deployment
    if args.reference and has_window:
        raise UsageError("give --reference FILE or --reference-start/--reference-end, not both")
    if has_window and (ref_lo is None or ref_hi is None):
        raise UsageError("a reference window needs both --reference-start and --reference-end")
    if not args.reference and not has_window and not args.config:
        raise UsageError("no reference: give --reference FILE or --reference-start T "
                         "--reference-end T (or a config with monitoring.reference)")
    if args.ground_truth and args.labels_collection:
        raise UsageError("give --ground-truth or --labels-collection, not both")
    with opened(args) as storage:
        result = monitor(
            storage, endpoint=args.endpoint, deployment=args.deployment,
            collections=args.collection, reference=args.reference,
            reference_start=ref_lo, reference_end=ref_hi,
            reference_deployment=args.reference_deployment, start=lo, end=hi,
            config=args.config, ground_truth=args.ground_truth,
            labels_collection=args.labels_collection, workers=args.workers,
            profiles=args.profiles)
    if args.json:
        _write(args.json, result.to_json() + "\n", "json")
    if args.report:
        _write(args.report, render(result), "report")
    if args.json != "-":
        _print(result)
    _flush_metrics()
    return result.exit_code


def _flush_metrics() -> None:
    """A short-lived process: push the gauges out before exit (when an SDK is configured,
    e.g. under opentelemetry-instrument)."""
    from opentelemetry import metrics

    flush = getattr(metrics.get_meter_provider(), "force_flush", None)
    if callable(flush):
        flush()


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        try:
            return _monitor(args)
        except (StorageError, OSError) as e:
            print(f"{PROG}: error: cannot read the collected data: {e}", file=sys.stderr)
            return EXIT_READ_ERROR

    return run_command(PROG, body)
