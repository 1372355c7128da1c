"""`serve`: the collector service (OTLP receiver → the same Avro exporter)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="service configuration (YAML)")


def run(args: argparse.Namespace) -> int:
    from otel_collector_ext.service.app import serve

    serve(args.config)
    return 0
