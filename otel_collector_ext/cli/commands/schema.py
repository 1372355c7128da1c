"""`schema`: the JSON Schemas of the configuration files, generated from their models.

The files in ``schemas/`` are this command's output (``schema --write schemas``); a
test checks that they match the models, so editors complete and check what the code
accepts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SCORING_FILE = "scoring-config.schema.json"
SERVICE_FILE = "service-config.schema.json"


def schemas() -> dict[str, dict[str, Any]]:
    """File name → JSON Schema, for the scoring and the service configuration."""
    from exporters.registry import exporter_options
    from otel_collector_ext.pipeline.config_model import scoring_json_schema
    from otel_collector_ext.service.config_model import service_json_schema

    exporters = exporter_options()
    return {SCORING_FILE: scoring_json_schema(exporters),
            SERVICE_FILE: service_json_schema(exporters)}


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("which", nargs="?", choices=("scoring", "service"), default="scoring",
                        help="the configuration whose schema is printed (default: scoring)")
    parser.add_argument("--write", metavar="DIR",
                        help=f"write {SCORING_FILE} and {SERVICE_FILE} into DIR instead")


def run(args: argparse.Namespace) -> int:
    generated = schemas()
    if args.write:
        folder = Path(args.write)
        folder.mkdir(parents=True, exist_ok=True)
        for name, schema in generated.items():
            (folder / name).write_text(schema_text(schema), encoding="utf-8")
            print(folder / name)
        return 0
    sys.stdout.write(schema_text(generated[SCORING_FILE if args.which == "scoring"
                                           else SERVICE_FILE]))
    return 0
