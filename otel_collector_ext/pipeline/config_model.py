"""The scoring configuration file as a typed model: every key, its default and its rule.

`ScoringConfigFile` is what a YAML file (or a dict given to `configure()`) may hold;
`config.parse_config` validates with it and builds the `Config` the pipeline uses.
The JSON Schema in ``schemas/scoring-config.schema.json`` is generated from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema

from exporters.config_model import (
    ConfigModel,
    Flag,
    Name,
    Rate,
    between,
    json_schema,
    nonblank,
    strings,
)
from exporters.settings import (
    DEFAULT_INLINE_LIMIT_BYTES,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_EXPORT_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_ROLLING_RATE,
    DEFAULT_SCHEDULE_DELAY_MILLIS,
)

ROLLING_RATES = ("minute", "hour", "day")
# The other keys of an Azure ML online deployment YAML (managed and Kubernetes): a whole
# deployment file is accepted as the configuration, and these are Azure's business.
AZURE_DEPLOYMENT_KEYS = frozenset({
    "$schema", "name", "endpoint_name", "description", "tags", "properties", "model",
    "model_mount_path", "code_configuration", "environment", "environment_variables",
    "instance_type", "instance_count", "app_insights_enabled", "scale_settings",
    "request_settings", "liveness_probe", "readiness_probe", "egress_public_network_access",
    "type", "resources", "private_network_connection", "code_path", "scoring_script",
})
MAX_BYTES_SETTING = 1024**3

ByteCount = Annotated[int, between(0, MAX_BYTES_SETTING, "a number of bytes")]
#: A folder, file:// URL, az:// or http(s):// URL; checked further when the config is built.
DestinationText = Annotated[str, nonblank("must be a folder, az:// or https:// URL")]


def _rolling_rate(value: Any) -> str:
    rate = str(value).lower()
    if rate not in ROLLING_RATES:
        raise ValueError(f"must be one of {', '.join(ROLLING_RATES)}, not {value!r}")
    return rate


RollingRate = Annotated[str, BeforeValidator(_rolling_rate), WithJsonSchema(
    {"enum": ["minute", "hour", "day", "Minute", "Hour", "Day"]})]


def _model_version(value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or len(str(value)) > 256:
        raise ValueError("must be a string of at most 256 characters")
    return str(value)


class DataAsset(ConfigModel):
    """Azure ML's `data:` of a collection: the data asset its files form."""

    name: str | None = None
    path: DestinationText | None = Field(
        default=None, description="Where this collection's files go: a folder, az:// or https:// URL, "
        "or azureml://datastores/<name>/paths/<path> (mapped through `datastores`)")
    version: str | int | float | None = None


#: {column: type name or {type: ..., ...}}, or that mapping as JSON text; checked by
#: `exporters.avro.declared_schema.parse_declared`, which names the column at fault.
DeclaredColumns = Annotated[Any, WithJsonSchema({"anyOf": [
    {"type": "object", "additionalProperties": {"type": ["string", "object"]}},
    {"type": "string"},
]})]


class Collection(ConfigModel):
    """One collection (model_inputs, model_outputs, request, response or custom)."""

    enabled: Flag = True
    sampling_rate: Rate | None = Field(
        default=None, description="Share of correlation ids kept; default: data_collector.sampling_rate")
    data: DataAsset | None = None
    # `schema` would shadow a BaseModel attribute: the field has another name.
    declared_schema: DeclaredColumns | None = Field(
        default=None, alias="schema", description="Declared columns and types (docs: Declared "
        "schemas): files are written with exactly this schema")
    # The gen_ai collection only (docs/genai.md); refused on any other collection.
    capture_content: Flag | None = Field(
        default=None, description="gen_ai only: store message text (default off)")
    max_content_bytes: ByteCount | None = Field(
        default=None, description="gen_ai only: message text kept per message column")
    provider_name: Name | None = Field(
        default=None, description="gen_ai only: gen_ai.provider.name of middleware rows")


class RequestLogging(ConfigModel):
    """Payload logging: which headers, query strings and how much of each body."""

    capture_headers: Annotated[list[str], strings("must be a list of header names")] = Field(
        default_factory=list, description="Header names to record; credential headers "
        "(authorization, cookie, ...) never are")
    capture_query: Flag = False
    inline_limit_bytes: ByteCount = Field(
        default=DEFAULT_INLINE_LIMIT_BYTES, description="Bodies up to this size stay in the record; "
        "larger ones are stored as an object of their own")
    max_body_bytes: ByteCount = Field(
        default=DEFAULT_MAX_BODY_BYTES, description="Bytes beyond this are not recorded (truncated)")
    exclude_paths: Annotated[list[str], strings("must be a list of paths starting with '/'",
                               lambda p: p.startswith("/"))] = Field(
        default_factory=list, description="Paths never recorded; a trailing '*' matches a prefix")


class DataCollector(ConfigModel):
    """Azure ML's `data_collector:` block, plus per-collection sampling and payload options."""

    collections: dict[Name, Collection | None] | None = Field(
        default=None, description="Only the collections listed with enabled: true are collected; "
        "without this block every collection is")
    sampling_rate: Rate = 1.0
    rolling_rate: RollingRate = DEFAULT_ROLLING_RATE
    request_logging: RequestLogging | None = None


NonEmptyNames = Annotated[list[str], strings("must be a list of non-empty strings")]


class RedactionRule(ConfigModel):
    fields: NonEmptyNames = Field(default_factory=list,
                                  description="Field paths in records, e.g. customer.email")
    columns: NonEmptyNames = Field(default_factory=list, description="DataFrame column names")


class Redaction(ConfigModel):
    """Values masked or hashed in collect(), before anything is queued."""

    mask: RedactionRule | None = None
    hash: RedactionRule | None = None
    mask_value: str = "***"
    hash_key_env: Annotated[str, nonblank("must name an environment variable")] | None = Field(
        default=None, description="Environment variable holding the HMAC key of hashed values")


class Batch(ConfigModel):
    """The in-process queue between collect() and the exporter."""

    max_queue_size: Annotated[int, between(1, 1_000_000)] = DEFAULT_MAX_QUEUE_SIZE
    max_queue_bytes: Annotated[int, between(1024, 2**40)] = DEFAULT_MAX_QUEUE_BYTES
    max_export_batch_size: Annotated[int, between(1, 100_000)] = DEFAULT_MAX_EXPORT_BATCH_SIZE
    schedule_delay_millis: Annotated[int, between(1, 3_600_000)] = DEFAULT_SCHEDULE_DELAY_MILLIS


def _exporter(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping, not {type(value).__name__}")
    kind = value.get("type", "avro")
    if not isinstance(kind, str) or not kind:
        raise ValueError("type must be a name such as avro, otlp or console")
    return value


ExporterBlock = Annotated[dict[str, Any], BeforeValidator(_exporter)]


class ScoringConfigFile(ConfigModel):
    """The scoring process's configuration (OTEL_COLLECTOR_EXT_CONFIG or configure())."""

    datastores: dict[Annotated[str, nonblank("names must be non-empty strings")], DestinationText] \
        | None = Field(default=None, description="Azure ML datastore name: the folder or Blob URL its "
                       "azureml:// paths map to")
    endpoint: Name = "default"
    deployment: Name = "default"
    instance_id: Name | None = Field(default=None, description="Default: {host}-{pid}")
    model_version: Annotated[str, BeforeValidator(_model_version), WithJsonSchema(
        {"type": ["string", "number"], "maxLength": 256})] | None = None
    data_collector: DataCollector | None = None
    exporter: ExporterBlock | None = Field(
        default=None, description="{type: avro | otlp | console, ...options}; default: "
        "$OTEL_LOGS_EXPORTER, else avro to $OTEL_COLLECTOR_EXT_DESTINATION or ./collected")
    batch: Batch | None = None
    redaction: Redaction | None = None


def scoring_json_schema(exporters: Mapping[str, type[BaseModel] | None]) -> dict[str, Any]:
    """The published JSON Schema of the scoring configuration (schemas/); `exporters` gives
    each exporter type's options model, for the `exporter:` block."""
    parts = {kind: model for kind, model in exporters.items() if model is not None}
    schema, _ = json_schema(ScoringConfigFile, title="otel-collector-ext scoring configuration",
                            parts=parts)
    azure = {"description": "Azure ML deployment key: a whole deployment file is accepted; "
                            "endpoint_name is the endpoint, name the deployment"}
    for key in sorted(AZURE_DEPLOYMENT_KEYS):
        schema["properties"].setdefault(key, azure)
    choices: list[dict[str, Any]] = []
    for kind, model in parts.items():
        options = schema["$defs"].pop(model.__name__)
        choices.append({
            "type": "object", "title": f"{kind} exporter", "additionalProperties": False,
            "properties": {"type": {"const": kind}, **options["properties"]},
            # An exporter block without a type is an avro one.
            "required": [] if kind == "avro" else ["type"]})
    schema["properties"]["exporter"] = {
        "anyOf": [*choices, {"type": "null"}],
        "description": schema["properties"]["exporter"].get("description", "")}
    return schema
