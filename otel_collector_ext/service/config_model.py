"""The `serve` configuration file as typed models: every component's keys, defaults and rules.

A component's model is chosen by the type in its name (`otlp`, `batch/big`, …), as in the
OpenTelemetry Collector; `config.parse_service_config` validates each block with its
model and checks what spans blocks (pipelines name defined components, capacity).
The JSON Schema in ``schemas/service-config.schema.json`` is generated from these models.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    WithJsonSchema,
    model_validator,
)

from exporters.config_model import (
    ConfigModel,
    Rate,
    between,
    json_schema,
    nonblank,
    one_of,
)

from .receiver.admission import DEFAULT_MAX_REQUESTS
from .receiver.core import Limits, MiB

DEFAULT_GRPC = "127.0.0.1:4317"
DEFAULT_HTTP = "127.0.0.1:4318"
DEFAULT_HEALTH = "127.0.0.1:13133"
ATTRIBUTE_ACTIONS = ("insert", "update", "upsert", "delete", "hash")
MATCH_FIELDS = ("collections", "endpoints", "deployments", "model_versions")
LOG_LEVELS = ("debug", "info", "warn", "error")
#: A component's name: its type, optionally `/` and a name of its own.
COMPONENT_NAME = r"[A-Za-z0-9_]+(/[A-Za-z0-9_.\-]+)?"

_ENDPOINT = re.compile(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]*):(\d+)")
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def host_port(value: Any) -> tuple[str, int]:
    """(host, port) of `host:port` (`[v6]:port`; `:port` binds every interface)."""
    match = _ENDPOINT.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"must be 'host:port', not {value!r}")
    host = match.group(1) or match.group(3) or ("::" if match.group(1) else "0.0.0.0")
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range")
    return ("127.0.0.1" if host == "localhost" else host), port


def _endpoint_text(value: Any) -> str:
    host_port(value)
    return value


EndpointText = Annotated[str, BeforeValidator(_endpoint_text),
                         WithJsonSchema({"type": "string", "pattern": r"^.*:\d+$",
                                         "description": "host:port"})]


def seconds(value: Any) -> float:
    """Seconds from '500ms', '2s', '1m', '1h' or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match and float(match.group(1)) > 0:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError(f"must be a positive duration such as 500ms, 2s or 1m, not {value!r}")


Duration = Annotated[float, BeforeValidator(seconds), WithJsonSchema({"anyOf": [
    {"type": "number", "exclusiveMinimum": 0},
    {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)\s*$"},
]})]


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as e:
        raise ValueError(f"invalid regex: {e}") from None
    return value


# --- receivers -------------------------------------------------------------------------


class Tls(ConfigModel):
    """PEM files; with client_ca_file, clients must present a certificate."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None


class GrpcProtocol(ConfigModel):
    endpoint: EndpointText = DEFAULT_GRPC
    tls: Tls | None = None
    max_recv_msg_size_mib: Annotated[int, between(1, 1024)] | None = Field(
        default=None, description="Request size limit in MiB (default 16), compressed and decompressed")
    max_workers: Annotated[int, between(1, 1024)] = 32


class HttpProtocol(ConfigModel):
    endpoint: EndpointText = DEFAULT_HTTP
    tls: Tls | None = None
    max_request_body_size: Annotated[int, between(1024, 1024 * MiB)] | None = Field(
        default=None, description="Request size limit in bytes; must equal grpc's when both are given")
    max_connections: Annotated[int, between(1, 100_000)] = 1024
    idle_timeout: Duration = 30.0


class Protocols(ConfigModel):
    """Which transports listen; `grpc:` with no value enables gRPC with its defaults."""

    grpc: GrpcProtocol | None = None
    http: HttpProtocol | None = None

    @model_validator(mode="after")
    def _some(self) -> Protocols:
        if not self.model_fields_set:
            raise ValueError("must enable grpc, http or both")
        return self


class BearerAuth(ConfigModel):
    """Where the bearer token clients must send is read from (exactly one of the two)."""

    bearer_token_env: Annotated[str, nonblank("must name an environment variable")] | None = None
    bearer_token_file: str | None = None

    @model_validator(mode="after")
    def _one(self) -> BearerAuth:
        if len(self.model_fields_set) != 1:
            raise ValueError("give exactly one of bearer_token_env, bearer_token_file")
        return self


class OtlpReceiver(ConfigModel):
    """OTLP logs over gRPC and/or HTTP (/v1/logs)."""

    protocols: Protocols
    auth: BearerAuth | None = None
    max_records_per_request: Annotated[int, between(1, 1_000_000)] = Limits.max_records
    max_nesting_depth: Annotated[int, between(1, 64)] = Limits.max_depth
    max_rows_per_record: Annotated[int, between(1, 100_000_000)] = Limits.max_rows_per_record
    max_cells_per_request: Annotated[int, between(1, 1_000_000_000)] = Limits.max_cells
    max_decoded_bytes_per_request: Annotated[int, between(MiB, 64 * 1024 * MiB)] = Limits.max_decoded_bytes
    max_concurrent_requests: Annotated[int, between(1, 1024)] = Field(
        default=DEFAULT_MAX_REQUESTS, description="Requests read and decoded at once, both protocols")


RECEIVERS: dict[str, type[ConfigModel]] = {"otlp": OtlpReceiver}


# --- processors ------------------------------------------------------------------------


class SamplingProcessor(ConfigModel):
    """Keeps a share of correlation ids, per collection when listed."""

    sampling_rate: Rate = 1.0
    collections: dict[str, Rate] = Field(default_factory=dict)


def _names(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(i, (str, int, float)) for i in value):
        raise ValueError("must be a list of names")
    return [str(i) for i in value]


NameList = Annotated[list[str], BeforeValidator(_names)]


class MatchSpec(ConfigModel):
    """Records whose inference attributes are in every listed set."""

    collections: NameList = Field(default_factory=list)
    endpoints: NameList = Field(default_factory=list)
    deployments: NameList = Field(default_factory=list)
    model_versions: NameList = Field(default_factory=list)


def _scalar(value: Any) -> Any:
    if not isinstance(value, (str, int, float, bool)):
        raise ValueError("must be a string, number or boolean")
    return value


Scalar = Annotated[str | int | float | bool, BeforeValidator(_scalar)]


class AttributeActionSpec(ConfigModel):
    action: Annotated[str, one_of(ATTRIBUTE_ACTIONS)]
    key: str | None = None
    pattern: Annotated[str, AfterValidator(_regex)] | None = Field(
        default=None, description="delete / hash: every key matching this regex")
    value: Scalar | None = Field(default=None, description="insert / update / upsert: the value set")

    @model_validator(mode="after")
    def _consistent(self) -> AttributeActionSpec:
        given = self.model_fields_set
        if "pattern" in given and self.action not in ("delete", "hash"):
            raise ValueError("pattern is only for delete and hash")
        if (self.key is not None) == ("pattern" in given):
            raise ValueError("give exactly one of key, pattern")
        if self.action in ("insert", "update", "upsert"):
            if self.value is None:
                raise ValueError("value must be a string, number or boolean")
        elif "value" in given:
            raise ValueError(f"value is not used by {self.action}")
        return self


def _non_empty(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list")
    return value


class AttributesProcessor(ConfigModel):
    """Inserts, updates, deletes or hashes record attributes."""

    actions: Annotated[list[AttributeActionSpec], BeforeValidator(_non_empty)]
    include: MatchSpec | None = None
    exclude: MatchSpec | None = None


class FilterProcessor(ConfigModel):
    """Keeps records matching include and not matching exclude."""

    include: MatchSpec | None = None
    exclude: MatchSpec | None = None

    @model_validator(mode="after")
    def _some(self) -> FilterProcessor:
        if not self.model_fields_set:
            raise ValueError("give include, exclude or both")
        return self


class BatchProcessor(ConfigModel):
    """The exporter's queue: its size, the batch size and how long a batch may wait."""

    max_queue_size: Annotated[int, between(1, 10_000_000)] = 16384
    send_batch_size: Annotated[int, between(1, 1_000_000)] = 1024
    timeout: Duration = 0.5


PROCESSORS: dict[str, type[ConfigModel]] = {
    "sampling": SamplingProcessor, "attributes": AttributesProcessor,
    "filter": FilterProcessor, "batch": BatchProcessor,
}
PROCESSOR_TYPES = tuple(PROCESSORS)


# --- extensions, service ---------------------------------------------------------------


class HealthCheck(ConfigModel):
    endpoint: EndpointText = DEFAULT_HEALTH


EXTENSIONS: dict[str, type[ConfigModel]] = {"health_check": HealthCheck}


def _names_list(value: Any) -> Any:
    if not isinstance(value, list):
        raise ValueError("must be a list of names")
    return value


Names = Annotated[list[str], BeforeValidator(_names_list)]


class PipelineSpec(ConfigModel):
    receivers: Names = Field(default_factory=list)
    processors: Names = Field(default_factory=list)
    exporters: Names = Field(default_factory=list)


class LogsTelemetry(ConfigModel):
    level: Annotated[str, one_of(LOG_LEVELS, fold_case=True)] = "info"


class Telemetry(ConfigModel):
    logs: LogsTelemetry | None = None


class Wal(ConfigModel):
    """The write-ahead log that makes acknowledgements durable."""

    enabled: bool = True
    directory: Annotated[str, nonblank("must be a folder path")] | None = Field(
        default=None, description="Default: $OTEL_COLLECTOR_EXT_WAL_DIR or ~/.local/state/...")
    max_bytes: Annotated[int, between(1024 * 1024, 1 << 40)] = 512 * 1024 * 1024


class ServiceSection(ConfigModel):
    pipelines: dict[str, PipelineSpec] = Field(
        description="logs or logs/<name>: {receivers, processors, exporters}")
    extensions: Names = Field(default_factory=list)
    shutdown_timeout: Duration = 30.0
    telemetry: Telemetry | None = None
    wal: Wal | None = None


class ServiceConfigFile(ConfigModel):
    """The collector service's configuration (`serve --config`); components by `type/name`."""

    receivers: dict[str, Any] | None = None
    processors: dict[str, Any] | None = None
    exporters: dict[str, Any] | None = None
    extensions: dict[str, Any] | None = None
    service: ServiceSection


def service_json_schema(exporters: Mapping[str, type[BaseModel] | None]) -> dict[str, Any]:
    """The published JSON Schema of the service configuration (schemas/): each section's
    components by the type in their name (`exporters` gives each exporter type's model)."""
    sections = {"receivers": RECEIVERS, "processors": PROCESSORS, "extensions": EXTENSIONS,
                "exporters": exporters}
    parts = {f"{section}/{kind}": model for section, models in sections.items()
             for kind, model in models.items() if model is not None}
    schema, refs = json_schema(ServiceConfigFile, title="otel-collector-ext service "
                               "configuration (serve --config)", parts=parts)
    for section, models in sections.items():
        patterns = {}
        for kind in models:
            ref = refs.get(f"{section}/{kind}")
            body = {"anyOf": [{"$ref": ref}, {"type": "null"}]} if ref else {
                "type": ["object", "null"]}
            patterns[f"^{kind}(/[A-Za-z0-9_.\\-]+)?$"] = body
        schema["properties"][section] = {
            "type": ["object", "null"], "patternProperties": patterns,
            "additionalProperties": False,
            "description": f"{section} by name: type or type/name"}
    return schema
