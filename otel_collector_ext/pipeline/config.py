"""Configuration: read once, validated strictly, from a YAML file, a dict or the environment.

The `data_collector:` block accepts Azure ML's deployment block verbatim (collections
with `enabled` as bool or 'True'/'False', `sampling_rate`, `rolling_rate`,
`request_logging.capture_headers`), plus a per-collection `sampling_rate`, the
payload-logging options under `request_logging` and a top-level `redaction:` block.
Every error names the offending key. The keys, their defaults and their rules are the
model in `config_model` (also the source of the published JSON Schema); this module loads
files and turns a validated model into the `Config` the pipeline uses.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import yaml

from exporters.avro.declared_schema import DeclaredSchema, parse_declared
from exporters.config_model import as_flag, validate
from exporters.contract import GEN_AI_COLLECTION, check_name
from exporters.settings import (
    CONFIG_ENV,
    DEFAULT_INLINE_LIMIT_BYTES,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_EXPORT_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_SCHEDULE_DELAY_MILLIS,
    LOGS_EXPORTER_ENV,
    default_destination,
    default_instance_id,
)

from .config_model import (
    AZURE_DEPLOYMENT_KEYS,
    Collection,
    DataCollector,
    Redaction,
    ScoringConfigFile,
)
from .redaction import Redactor

T = TypeVar("T")

# Header names that carry credentials: never captured, even when allow-listed.
FORBIDDEN_HEADERS = frozenset(
    {"authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key"}
)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key."""


@dataclass(frozen=True)
class CollectionConfig:
    enabled: bool = True
    sampling_rate: float | None = None  # None: the data_collector's rate
    data: Mapping[str, Any] | None = None  # Azure's data asset {name, path, version}
    # Where this collection's files go instead of the exporter's destination: data.path,
    # an azureml:// path mapped through `datastores` (see destination_of_data_path).
    destination: str | None = None
    # Declared columns and types (`schema:`): files are written with exactly this schema.
    schema: DeclaredSchema | None = None
    # The gen_ai collection only (docs/genai.md): message text is stored only when
    # capture_content is on, cut at max_content_bytes per message column.
    capture_content: bool = False
    max_content_bytes: int = 1024 * 1024
    provider_name: str = "openai"


@dataclass(frozen=True)
class BatchConfig:
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
    max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES  # payload bytes held in memory at most
    max_export_batch_size: int = DEFAULT_MAX_EXPORT_BATCH_SIZE
    schedule_delay_millis: int = DEFAULT_SCHEDULE_DELAY_MILLIS


@dataclass(frozen=True)
class Config:
    endpoint: str = "default"
    deployment: str = "default"
    model_version: str | None = None
    instance_id: str = field(default_factory=lambda: default_instance_id())
    # None: every collection is enabled; otherwise only those listed with enabled: true.
    collections: Mapping[str, CollectionConfig] | None = None
    sampling_rate: float = 1.0
    rolling_rate: str = "hour"
    capture_headers: tuple[str, ...] = ()
    # Payload logging (data_collector.request_logging): query strings are off by default;
    # bodies up to inline_limit_bytes stay in memory, larger ones spill to a temporary
    # file, and bytes beyond max_body_bytes are not recorded (the record says truncated).
    capture_query: bool = False
    # Paths whose requests are not recorded (health checks, probes); a trailing '*'
    # matches a prefix. The correlation id is still set for them.
    exclude_paths: tuple[str, ...] = ()
    inline_limit_bytes: int = DEFAULT_INLINE_LIMIT_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    redaction: Redactor | None = None  # top-level `redaction:` block, applied in collect()
    exporter: Mapping[str, Any] = field(default_factory=lambda: default_exporter())
    # Azure ML datastore name → the folder or Blob URL its azureml:// paths map to.
    datastores: Mapping[str, str] = field(default_factory=dict)
    batch: BatchConfig = field(default_factory=BatchConfig)
    source: str = "defaults"  # where this configuration came from, for logs

    def collection(self, name: str) -> CollectionConfig | None:
        """The settings of collection `name`, or None when it is not enabled."""
        if self.collections is None:
            return CollectionConfig()
        found = self.collections.get(name)
        return found if found is not None and found.enabled else None

    def destinations(self) -> dict[str, str]:
        """Collections whose files go to a destination of their own (`data.path`)."""
        return {name: c.destination for name, c in (self.collections or {}).items()
                if c.destination is not None}

    def sampling_rates(self) -> dict[str, float]:
        """Per-collection sampling rates that differ from the default."""
        return {
            name: c.sampling_rate
            for name, c in (self.collections or {}).items()
            if c.sampling_rate is not None
        }


def default_exporter() -> dict[str, Any]:
    """The exporter when the configuration names none: `$OTEL_LOGS_EXPORTER` (avro, otlp,
    console; the standard OTEL_EXPORTER_OTLP_* variables then configure otlp), else avro."""
    kind = os.environ.get(LOGS_EXPORTER_ENV, "").strip().lower() or "avro"
    if kind not in ("avro", "otlp", "console"):
        raise ConfigError(
            f"{LOGS_EXPORTER_ENV}={kind!r}: this project's exporters are avro, otlp and console"
        )
    return {"type": "avro", "destination": default_destination()} if kind == "avro" else {
        "type": kind}


def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> Config:
    """Build a Config from a YAML path, a dict, or (None) `$OTEL_COLLECTOR_EXT_CONFIG`/defaults."""
    if source is None:
        from_environment = os.environ.get(CONFIG_ENV)
        if not from_environment:
            return Config()
        source = from_environment
    if isinstance(source, Mapping):
        return parse_config(source, origin="dict")
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"configuration must be a path or a mapping, not {type(source).__name__}")
    path = Path(source)
    return parse_yaml_file(path, lambda data: parse_config(data or {}, origin=str(path)))


def parse_yaml_file(path: Path, parse: Callable[[Any], T], what: str = "configuration file") -> T:
    """`parse` of a YAML file's content; ConfigError (naming the file) if it cannot be read,
    is not YAML, or `parse` raises ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {str(path)!r} is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    try:
        return parse(data)
    except ConfigError as e:  # say which file: the key alone may not be enough to find it
        raise ConfigError(f"{path}: {e}") from None


def parse_config(data: Mapping[str, Any], *, origin: str = "dict") -> Config:
    """Validate a configuration mapping; ConfigError names the first bad key.

    An Azure ML deployment YAML (it has `endpoint_name`) is accepted as it is: its
    `endpoint_name` is the endpoint, its `name` the deployment, its `data_collector`
    block is read, and Azure's other deployment keys are ignored.
    """
    if isinstance(data, Mapping) and "endpoint_name" in data:
        data = _from_azure_deployment(data)
    try:
        model = validate(ScoringConfigFile, data)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    datastores = dict(model.datastores or {})
    for name, target in datastores.items():
        _destination(target, f"datastores.{name}")
    kwargs: dict[str, Any] = {"source": origin, "datastores": datastores,
                              "endpoint": model.endpoint, "deployment": model.deployment,
                              "model_version": model.model_version}
    if model.instance_id is not None:
        kwargs["instance_id"] = model.instance_id
    if model.data_collector is not None:
        kwargs.update(_data_collector(model.data_collector, datastores))
    if model.exporter is not None:
        kwargs["exporter"] = _exporter(model.exporter)
    if model.batch is not None:
        kwargs["batch"] = BatchConfig(**model.batch.model_dump())
    if model.redaction is not None:
        kwargs["redaction"] = _redaction(model.redaction)
    return Config(**kwargs)


def _from_azure_deployment(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """This project's configuration from an Azure ML deployment YAML."""
    out = {k: v for k, v in deployment.items() if k not in AZURE_DEPLOYMENT_KEYS}
    for ours, azure in (("endpoint", "endpoint_name"), ("deployment", "name")):
        if deployment.get(azure) is not None:
            if ours in out:
                raise ConfigError(f"{ours} and {azure} both given: an Azure ML deployment file "
                                  f"names the {ours} with {azure}")
            out[ours] = _name(deployment[azure], azure)
    return out


# azureml://datastores/<name>/paths/<path>, optionally after
# subscriptions/<id>/resourcegroups/<rg>/[providers/Microsoft.MachineLearningServices/]workspaces/<ws>/
_AZUREML_PATH = re.compile(
    r"azureml://(?:subscriptions/[^/]+/resourcegroups/[^/]+/"
    r"(?:providers/microsoft\.machinelearningservices/)?workspaces/[^/]+/)?"
    r"datastores/(?P<datastore>[^/]+)/paths/(?P<path>.*)",
    re.IGNORECASE,
)
_DESTINATION_SCHEMES = ("", "file", "az", "https", "http")


def _destination(value: Any, key: str) -> str:
    """A folder, file:// URL, az:// or http(s):// URL (what an exporter writes to)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} must be a folder, az:// or https:// URL")
    scheme = urlparse(value).scheme.lower()
    if scheme not in _DESTINATION_SCHEMES and not (len(scheme) == 1 and value[1:2] == ":"):
        raise ConfigError(f"{key}: {value.split('?')[0]!r} is not a folder, az:// or https:// URL")
    return value


def destination_of_data_path(path: Any, key: str, datastores: Mapping[str, str]) -> str:
    """Where Azure ML's `data.path` sends a collection: the folder or URL itself, or for
    `azureml://datastores/<name>/paths/<p>`, `<p>` under what `datastores.<name>` maps to."""
    if isinstance(path, str) and path.lower().startswith("azureml:"):
        found = _AZUREML_PATH.fullmatch(path.strip())
        if found is None:
            raise ConfigError(f"{key}: {path!r} is not azureml://datastores/<name>/paths/<path>")
        name, sub = found["datastore"], found["path"].strip("/")
        parts = sub.split("/")
        if not sub or any(p in ("", ".", "..") or "\\" in p for p in parts):
            raise ConfigError(f"{key}: the path after paths/ must be plain folder names, "
                              f"not {found['path']!r}")
        if name not in datastores:
            raise ConfigError(
                f"{key}: datastore {name!r} is not mapped; add datastores: {{{name}: <folder, "
                "az:// or https:// URL>}} to the configuration")
        base = datastores[name]
        if "?" in base:  # a SAS token in the query stays at the end of the URL
            base, query = base.split("?", 1)
            return f"{base.rstrip('/')}/{sub}?{query}"
        return f"{base.rstrip('/')}/{sub}"
    return _destination(path, key)


def _data_collector(dc: DataCollector, datastores: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"sampling_rate": dc.sampling_rate, "rolling_rate": dc.rolling_rate}
    if dc.request_logging is not None:
        rl = dc.request_logging
        out.update(
            capture_headers=tuple(h.lower() for h in rl.capture_headers
                                  if h.lower() not in FORBIDDEN_HEADERS),
            capture_query=rl.capture_query, inline_limit_bytes=rl.inline_limit_bytes,
            max_body_bytes=rl.max_body_bytes, exclude_paths=tuple(rl.exclude_paths))
    if dc.collections is not None:
        out["collections"] = {
            name: _collection(spec, f"data_collector.collections.{name}", datastores)
            for name, spec in dc.collections.items()
        }
    return out


def _redaction(spec: Redaction) -> Redactor:
    rules: dict[str, list[str]] = {}
    for action in ("mask", "hash"):
        block = getattr(spec, action)
        for what in ("fields", "columns"):
            rules[f"{action}_{what}"] = list(getattr(block, what)) if block else []
    hash_key = None
    if spec.hash_key_env is not None:
        value = os.environ.get(spec.hash_key_env)
        if not value:
            raise ConfigError(
                f"redaction.hash_key_env: environment variable {spec.hash_key_env} is not set")
        hash_key = value.encode()
    try:
        return Redactor(**rules, mask_value=spec.mask_value, hash_key=hash_key)
    except ValueError as e:
        raise ConfigError(f"redaction: {e}") from None


GEN_AI_KEYS = ("capture_content", "max_content_bytes", "provider_name")


def _collection(spec: Collection | None, key: str,
                datastores: Mapping[str, str]) -> CollectionConfig:
    if spec is None:
        return CollectionConfig()
    extra: dict[str, Any] = {}
    for name in GEN_AI_KEYS:
        value = getattr(spec, name)
        if value is None:
            continue
        if key != f"data_collector.collections.{GEN_AI_COLLECTION}":
            raise ConfigError(f"unknown key {key}.{name} ({name} applies to the "
                              f"{GEN_AI_COLLECTION} collection only)")
        extra[name] = value
    data = spec.data
    destination = None
    if data is not None and data.path is not None:
        destination = destination_of_data_path(data.path, key + ".data.path", datastores)
    schema = None
    if spec.declared_schema is not None:
        try:
            schema = parse_declared(spec.declared_schema, key + ".schema")
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return CollectionConfig(
        enabled=spec.enabled,
        sampling_rate=spec.sampling_rate,
        data=data.model_dump(exclude_unset=True) if data is not None else None,
        destination=destination,
        schema=schema,
        **extra,
    )


def _exporter(spec: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(spec)
    kind = out.setdefault("type", "avro")
    if kind == "avro":
        out.setdefault("destination", default_destination())
    return out


def _name(value: Any, key: str) -> str:
    try:
        return check_name(value, key)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None


# Hand-written checks still used by the monitor configuration (monitoring/config.py),
# which has no model of its own yet; the scoring configuration uses `config_model`.


def _mapping(value: Any, key: str) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} must be a mapping, not {type(value).__name__}")


def _known(value: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    for key in value:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(
                f"unknown key {prefix}{key} ({hint}allowed: {', '.join(sorted(allowed))})"
            )


def _bool(value: Any, key: str) -> bool:
    try:
        return as_flag(value)
    except ValueError as e:
        raise ConfigError(f"{key} {e}") from None
