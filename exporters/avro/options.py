"""The Avro exporter's options: each one's key, default and environment variable, in one place.

`AvroLogExporter(...)` takes each option as an argument; an option not given comes from
its ``OTEL_COLLECTOR_EXT_*`` variable (auto-instrumentation builds the exporter with no
arguments), else from its default. The scoring configuration's and the service's
``exporter`` blocks are validated with the same model.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema

from ..config_model import ConfigModel, SchemaOf, between, env_field, nonblank
from ..settings import AVRO_ENV_PREFIX as ENV_PREFIX
from ..settings import (
    DEFAULT_CODEC,
    DEFAULT_DESTINATION,
    DEFAULT_INLINE_LIMIT_BYTES,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_ROLLING_RATE,
    DESTINATION_ENV,
)
from ..storage.options import storage_options_schema
from .container import CODECS, check_codec
from .partitioning import ROLLING_DEPTH, safe_segment


def _rolling_rate(value: Any) -> str:
    rate = value.lower() if isinstance(value, str) else value
    if rate not in ROLLING_DEPTH:
        raise ValueError(f"must be one of {', '.join(ROLLING_DEPTH)}, not {value!r}")
    return rate


def _collection_name(value: str) -> str:
    if safe_segment(value) != value:
        raise ValueError("must be a collection name: letters, digits, '_' and '-'")
    return value


class AvroExporterOptions(ConfigModel):
    """Options of the `avro` exporter (Avro container files, partitioned by time)."""

    destination: Annotated[str, nonblank("must be a folder, file://, az:// or https:// URL")] = \
        env_field(DEFAULT_DESTINATION, DESTINATION_ENV,
                  description="A folder, file:// URL, az://container/prefix or https:// URL.")
    codec: Annotated[str, AfterValidator(check_codec), WithJsonSchema(
        {"enum": list(CODECS)})] = env_field(DEFAULT_CODEC, ENV_PREFIX + "CODEC")
    rolling_rate: Annotated[str, BeforeValidator(_rolling_rate), WithJsonSchema(
        {"enum": list(ROLLING_DEPTH)})] = env_field(
        DEFAULT_ROLLING_RATE, ENV_PREFIX + "ROLLING_RATE",
        description="The partition depth: a folder per minute, hour or day.")
    max_file_bytes: Annotated[int, between(1, 1 << 40, "a number of bytes")] = env_field(
        DEFAULT_MAX_FILE_BYTES, ENV_PREFIX + "MAX_FILE_BYTES",
        description="A file is closed and a new one begun past this size.")
    instance_id: Annotated[str, nonblank("must be a name")] | None = env_field(
        None, ENV_PREFIX + "INSTANCE_ID", description="Default: {host}-{pid}.")
    inline_limit: Annotated[int, between(0, 1 << 40, "a number of bytes")] = env_field(
        DEFAULT_INLINE_LIMIT_BYTES, ENV_PREFIX + "INLINE_LIMIT",
        description="Payloads larger than this are stored as objects of their own.")
    other_logs_collection: Annotated[str, AfterValidator(_collection_name)] | None = env_field(
        None, ENV_PREFIX + "OTHER_LOGS_COLLECTION",
        description="Keep log records that are not inference data in this collection.")
    profiles: bool = env_field(
        True, ENV_PREFIX + "PROFILES",
        description="Write a column profile beside each Avro file (for monitoring).")
    storage_options: Annotated[dict[str, Any], SchemaOf(storage_options_schema)] | None = Field(
        default=None, description="Options of the storage backend the destination chooses "
        "(exporters.storage.options: local, Blob and its spool).")
    schemas: Annotated[Any, WithJsonSchema({"type": "object"})] = Field(
        default=None, description="Declared schemas by collection: {collection: {column: type}}.")
