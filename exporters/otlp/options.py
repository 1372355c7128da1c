"""The OTLP exporter's options: each one's key, default and environment variables.

Only `protocol` is resolved here (argument, then OTEL_EXPORTER_OTLP_LOGS_PROTOCOL, then
OTEL_EXPORTER_OTLP_PROTOCOL, then grpc, as the Python SDK's auto-configuration): the
others, when not given, are read by the OpenTelemetry exporter it wraps from the
standard OTEL_EXPORTER_OTLP_[LOGS_]* variables, so they behave exactly as the SDK's.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

from ..config_model import ConfigModel, above, env_field, one_of

PROTOCOLS = ("grpc", "http/protobuf")
COMPRESSIONS = ("none", "gzip", "deflate")
_SDK = "Default from the standard OTEL_EXPORTER_OTLP_[LOGS_]{} variable."


def _headers(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        pairs = (item.split("=", 1) for item in value.split(",") if item.strip())
        try:
            return {k.strip().lower(): v.strip() for k, v in pairs}
        except ValueError:
            raise ValueError("must be a mapping or 'key=value,...'") from None
    if not isinstance(value, dict):
        raise ValueError("must be a mapping or 'key=value,...'")
    return {str(k).lower(): str(v) for k, v in value.items()}


class OtlpExporterOptions(ConfigModel):
    """Options of the `otlp` exporter (to `serve` or any OpenTelemetry collector)."""

    protocol: Annotated[str, one_of(PROTOCOLS, fold_case=True)] = env_field(
        "grpc", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    endpoint: str | None = Field(default=None, description=_SDK.format("ENDPOINT"))
    headers: Annotated[dict[str, str], BeforeValidator(_headers), WithJsonSchema(
        {"anyOf": [{"type": "object", "additionalProperties": {"type": "string"}},
                   {"type": "string"}]})] | None = Field(
        default=None, description=_SDK.format("HEADERS"))
    insecure: bool | None = Field(default=None, description=_SDK.format("INSECURE") + " gRPC only.")
    timeout: Annotated[float, above(0, 3600, "a number of seconds")] | None = Field(
        default=None, description=_SDK.format("TIMEOUT"))
    compression: Annotated[str, one_of(COMPRESSIONS, fold_case=True)] | None = Field(
        default=None, description=_SDK.format("COMPRESSION"))
    certificate_file: str | None = Field(default=None, description=_SDK.format("CERTIFICATE"))
