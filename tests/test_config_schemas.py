"""The published JSON Schemas: generated from the configuration models, and every shipped
configuration file is valid under its schema (checked by `jsonschema`) and accepted by the
models."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from otel_collector_ext.cli.commands.schema import schema_text, schemas
from otel_collector_ext.cli.main import main
from otel_collector_ext.pipeline.config import load_config
from otel_collector_ext.service.config import load_service_config
from tests.conftest import ROOT

SCHEMAS = ROOT / "schemas"
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
_SCHEMA_LINE = re.compile(r"# yaml-language-server: \$schema=(\S+)")


def test_the_committed_schemas_are_the_generated_ones() -> None:
    generated = schemas()
    assert sorted(generated) == sorted(p.name for p in SCHEMAS.glob("*.json"))
    for name, schema in generated.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert (SCHEMAS / name).read_text(encoding="utf-8") == schema_text(schema), (
            f"schemas/{name} is stale: run `otel-collector-ext schema --write schemas`")


def test_the_command_prints_and_writes_them(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "service"]) == 0
    assert json.loads(capsys.readouterr().out)["title"].startswith("otel-collector-ext service")
    assert main(["schema", "--write", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(schemas())


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_names_its_schema_and_is_valid(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = _SCHEMA_LINE.match(text)
    assert found, f"{path.name}: the first line names its schema for editors"
    schema_path = (path.parent / found[1]).resolve()
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    jsonschema.validate(yaml.safe_load(text), schema, cls=jsonschema.Draft202012Validator)
    if schema_path.name.startswith("service"):
        load_service_config(path)
    else:
        load_config(path)


@pytest.mark.parametrize(("name", "document"), [
    ("scoring-config.schema.json", {"endpoint": "../x"}),
    ("scoring-config.schema.json", {"data_collector": {"sampling_rate": 2}}),
    ("scoring-config.schema.json", {"data_collector": {"request_logging": {"capture_querry": 1}}}),
    ("scoring-config.schema.json", {"batch": {"max_queue_size": 0}}),
    ("service-config.schema.json", {"service": {"pipelines": {}}, "receivers": {"kafka": {}}}),
    ("service-config.schema.json", {"service": {"pipelines": {}},
                                    "processors": {"batch": {"timeout": "soon"}}}),
])
def test_the_schemas_refuse_what_the_models_refuse(name: str, document: dict) -> None:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(("name", "document"), [
    ("scoring-config.schema.json", {"exporter": {"type": "avro", "codec": "lz4"}}),
    ("scoring-config.schema.json", {"exporter": {"type": "otlp", "protocol": "udp"}}),
    ("scoring-config.schema.json", {"exporter": {"type": "console", "destination": "/x"}}),
    ("scoring-config.schema.json", {"exporter": {"storage_options": {"spool_max_byte": 1}}}),
    ("service-config.schema.json", {"service": {"pipelines": {}},
                                    "exporters": {"avro/blob": {"codex": "deflate"}}}),
])
def test_the_schemas_know_each_exporters_options(name: str, document: dict) -> None:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    fine = {"exporter": {"type": "avro", "destination": "az://c/p", "codec": "null",
                         "storage_options": {"mode": "roll", "spool_max_bytes": 1 << 20}}}
    jsonschema.validate(fine, json.loads((SCHEMAS / "scoring-config.schema.json").read_text()),
                        cls=jsonschema.Draft202012Validator)
