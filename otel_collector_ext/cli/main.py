"""The command line: `python -m otel_collector_ext <command>` or `otel-collector-ext <command>`.

Each command lives in its own module under `otel_collector_ext.cli.commands` with
`add_arguments(parser)` and `run(args) -> int`; they are imported only when used.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

COMMANDS: dict[str, str] = {
    "demo": "run an end-to-end demo on a local folder and print what was collected",
    "serve": "run the collector service: OTLP in, Avro files out",
    "ls": "list endpoints, deployments, collections and partitions with files, rows and bytes",
    "read": "print or write (CSV, JSON Lines, Parquet) a slice of a collection",
    "stats": "rows per hour per collection; null rates and distributions per column",
    "report": "write a self-contained HTML report with plots of what was collected",
    "monitor": "compare collected data with a reference: drift, data quality, model "
               "performance; exit 1 when a threshold is breached",
    "schema": "print or write the JSON Schemas of the scoring and service configurations",
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"otel_collector_ext.cli.commands.{name}")


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="otel-collector-ext",
        description="Inference data collection on OpenTelemetry.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((a for a in args_list if not a.startswith("-")), None)
    for name, help_text in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # import only the command that runs
            _module(name).add_arguments(command_parser)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 2
    return int(_module(args.command).run(args) or 0)
