"""Configuration: read once, validated strictly, from a YAML file, a dict or the environment.

The `data_collector:` block accepts Azure ML's deployment block verbatim (collections
with `enabled` as bool or 'True'/'False', `sampling_rate`, `rolling_rate`,
`request_logging.capture_headers`), plus a per-collection `sampling_rate`, the
payload-logging options under `request_logging` and a top-level `redaction:` block.
Every error names the offending key.
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

from .redaction import Redactor

T = TypeVar("T")

ROLLING_RATES = ("minute", "hour", "day")
# Header names that carry credentials: never captured, even when allow-listed.
FORBIDDEN_HEADERS = frozenset(
    {"authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key"}
)
_MAX_BYTES_SETTING = 1024**3


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
        path = os.environ.get(CONFIG_ENV)
        if not path:
            return Config()
        source = path
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


_TOP_KEYS = {"endpoint", "deployment", "model_version", "instance_id", "data_collector",
             "exporter", "batch", "redaction", "datastores"}
_DC_KEYS = {"collections", "sampling_rate", "rolling_rate", "request_logging"}
_COLLECTION_KEYS = {"enabled", "sampling_rate", "data", "schema"}
GEN_AI_KEYS = {"capture_content", "max_content_bytes", "provider_name"}
_DATA_KEYS = {"name", "path", "version"}
# The other keys of an Azure ML online deployment YAML (managed and Kubernetes): a whole
# deployment file is accepted as the configuration, and these are Azure's business.
_AZURE_DEPLOYMENT_KEYS = {
    "$schema", "name", "endpoint_name", "description", "tags", "properties", "model",
    "model_mount_path", "code_configuration", "environment", "environment_variables",
    "instance_type", "instance_count", "app_insights_enabled", "scale_settings",
    "request_settings", "liveness_probe", "readiness_probe", "egress_public_network_access",
    "type", "resources", "private_network_connection", "code_path", "scoring_script",
}


def parse_config(data: Mapping[str, Any], *, origin: str = "dict") -> Config:
    """Validate a configuration mapping; ConfigError names the first bad key.

    An Azure ML deployment YAML (it has `endpoint_name`) is accepted as it is: its
    `endpoint_name` is the endpoint, its `name` the deployment, its `data_collector`
    block is read, and Azure's other deployment keys are ignored.
    """
    _mapping(data, "configuration")
    if "endpoint_name" in data:
        data = _from_azure_deployment(data)
    _known(data, _TOP_KEYS, "")
    kwargs: dict[str, Any] = {"source": origin}
    datastores = _datastores(data.get("datastores"))
    kwargs["datastores"] = datastores
    for key in ("endpoint", "deployment", "instance_id"):
        if key in data:
            kwargs[key] = _name(data[key], key)
    if data.get("model_version") is not None:
        mv = data["model_version"]
        if not isinstance(mv, (str, int, float)) or isinstance(mv, bool) or len(str(mv)) > 256:
            raise ConfigError("model_version must be a string of at most 256 characters")
        kwargs["model_version"] = str(mv)
    if "data_collector" in data:
        kwargs.update(_data_collector(data["data_collector"], datastores))
    if "exporter" in data:
        kwargs["exporter"] = _exporter(data["exporter"])
    if "batch" in data:
        kwargs["batch"] = _batch(data["batch"])
    if data.get("redaction") is not None:
        kwargs["redaction"] = _redaction(data["redaction"])
    return Config(**kwargs)


def _from_azure_deployment(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """This project's configuration from an Azure ML deployment YAML."""
    out = {k: v for k, v in deployment.items() if k not in _AZURE_DEPLOYMENT_KEYS}
    for ours, azure in (("endpoint", "endpoint_name"), ("deployment", "name")):
        if deployment.get(azure) is not None:
            if ours in out:
                raise ConfigError(f"{ours} and {azure} both given: an Azure ML deployment file "
                                  f"names the {ours} with {azure}")
            out[ours] = _name(deployment[azure], azure)
    return out


def _datastores(spec: Any) -> dict[str, str]:
    if spec is None:
        return {}
    _mapping(spec, "datastores")
    out = {}
    for name, target in spec.items():
        key = f"datastores.{name}"
        if not isinstance(name, str) or not name:
            raise ConfigError("datastores: names must be non-empty strings")
        out[name] = _destination(target, key)
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


def _data_collector(dc: Any, datastores: Mapping[str, str]) -> dict[str, Any]:
    _mapping(dc, "data_collector")
    _known(dc, _DC_KEYS, "data_collector.")
    out: dict[str, Any] = {}
    if "sampling_rate" in dc:
        out["sampling_rate"] = _rate(dc["sampling_rate"], "data_collector.sampling_rate")
    if "rolling_rate" in dc:
        rate = str(dc["rolling_rate"]).lower()
        if rate not in ROLLING_RATES:
            raise ConfigError(
                f"data_collector.rolling_rate must be one of {', '.join(ROLLING_RATES)}, "
                f"not {dc['rolling_rate']!r}"
            )
        out["rolling_rate"] = rate
    if "request_logging" in dc:
        out.update(_request_logging(dc["request_logging"]))
    if "collections" in dc:
        cols = dc["collections"]
        _mapping(cols, "data_collector.collections")
        out["collections"] = {
            _name(name, f"data_collector.collections key {name!r}"): _collection(
                spec, f"data_collector.collections.{name}", datastores
            )
            for name, spec in cols.items()
        }
    return out


_REQUEST_LOGGING_KEYS = {"capture_headers", "capture_query", "inline_limit_bytes",
                         "max_body_bytes", "exclude_paths"}


def _request_logging(rl: Any) -> dict[str, Any]:
    prefix = "data_collector.request_logging"
    _mapping(rl, prefix)
    _known(rl, _REQUEST_LOGGING_KEYS, prefix + ".")
    out: dict[str, Any] = {}
    headers = rl.get("capture_headers") or []
    if not isinstance(headers, list) or not all(isinstance(h, str) and h for h in headers):
        raise ConfigError(f"{prefix}.capture_headers must be a list of header names")
    out["capture_headers"] = tuple(
        h.lower() for h in headers if h.lower() not in FORBIDDEN_HEADERS
    )
    if "capture_query" in rl:
        out["capture_query"] = _bool(rl["capture_query"], prefix + ".capture_query")
    for name in ("inline_limit_bytes", "max_body_bytes"):
        if name in rl:
            out[name] = _size(rl[name], f"{prefix}.{name}")
    if "exclude_paths" in rl:
        paths = rl["exclude_paths"]
        if not isinstance(paths, list) or not all(
            isinstance(p, str) and p.startswith("/") for p in paths
        ):
            raise ConfigError(f"{prefix}.exclude_paths must be a list of paths starting with '/'")
        out["exclude_paths"] = tuple(paths)
    return out


_REDACTION_KEYS = {"mask", "hash", "mask_value", "hash_key_env"}
_REDACTION_RULE_KEYS = {"fields", "columns"}


def _redaction(spec: Any) -> Redactor:
    _mapping(spec, "redaction")
    _known(spec, _REDACTION_KEYS, "redaction.")
    rules: dict[str, list[str]] = {}
    for action in ("mask", "hash"):
        block = spec.get(action) or {}
        _mapping(block, f"redaction.{action}")
        _known(block, _REDACTION_RULE_KEYS, f"redaction.{action}.")
        for what in ("fields", "columns"):
            key = f"redaction.{action}.{what}"
            names = block.get(what) or []
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                raise ConfigError(f"{key} must be a list of non-empty strings")
            rules[f"{action}_{what}"] = names
    mask_value = spec.get("mask_value", "***")
    if not isinstance(mask_value, str):
        raise ConfigError("redaction.mask_value must be a string")
    hash_key = None
    if spec.get("hash_key_env") is not None:
        env_name = spec["hash_key_env"]
        if not isinstance(env_name, str) or not env_name:
            raise ConfigError("redaction.hash_key_env must name an environment variable")
        value = os.environ.get(env_name)
        if not value:
            raise ConfigError(f"redaction.hash_key_env: environment variable {env_name} is not set")
        hash_key = value.encode()
    try:
        return Redactor(**rules, mask_value=mask_value, hash_key=hash_key)
    except ValueError as e:
        raise ConfigError(f"redaction: {e}") from None


def _collection(spec: Any, key: str, datastores: Mapping[str, str]) -> CollectionConfig:
    if spec is None:
        return CollectionConfig()
    _mapping(spec, key)
    gen_ai = key == f"data_collector.collections.{GEN_AI_COLLECTION}"
    _known(spec, _COLLECTION_KEYS | GEN_AI_KEYS if gen_ai else _COLLECTION_KEYS, key + ".")
    enabled = _bool(spec.get("enabled", True), key + ".enabled")
    extra: dict[str, Any] = {}
    if "capture_content" in spec:
        extra["capture_content"] = _bool(spec["capture_content"], key + ".capture_content")
    if "max_content_bytes" in spec:
        extra["max_content_bytes"] = _size(spec["max_content_bytes"], key + ".max_content_bytes")
    if "provider_name" in spec:
        provider = spec["provider_name"]
        if not isinstance(provider, str) or not provider or len(provider) > 128:
            raise ConfigError(f"{key}.provider_name must be a name such as openai or vllm")
        extra["provider_name"] = provider
    rate = spec.get("sampling_rate")
    data = spec.get("data")
    destination = None
    if data is not None:
        _mapping(data, key + ".data")
        _known(data, _DATA_KEYS, key + ".data.")
        if data.get("path") is not None:
            destination = destination_of_data_path(data["path"], key + ".data.path", datastores)
    schema = None
    if spec.get("schema") is not None:
        try:
            schema = parse_declared(spec["schema"], key + ".schema")
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return CollectionConfig(
        enabled=enabled,
        sampling_rate=None if rate is None else _rate(rate, key + ".sampling_rate"),
        data=dict(data) if data else None,
        destination=destination,
        schema=schema,
        **extra,
    )


def _exporter(spec: Any) -> dict[str, Any]:
    _mapping(spec, "exporter")
    out = dict(spec)
    kind = out.setdefault("type", "avro")
    if not isinstance(kind, str) or not kind:
        raise ConfigError("exporter.type must be a name such as avro, otlp or console")
    if kind == "avro":
        out.setdefault("destination", default_destination())
    return out


def _batch(spec: Any) -> BatchConfig:
    _mapping(spec, "batch")
    fields = {"max_queue_size": (1, 1_000_000), "max_queue_bytes": (1024, 2**40),
              "max_export_batch_size": (1, 100_000), "schedule_delay_millis": (1, 3_600_000)}
    _known(spec, set(fields), "batch.")
    values = {}
    for name, (low, high) in fields.items():
        if name in spec:
            v = spec[name]
            if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
                raise ConfigError(f"batch.{name} must be an integer from {low} to {high}")
            values[name] = v
    return BatchConfig(**values)


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


def _name(value: Any, key: str) -> str:
    try:
        return check_name(value, key)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None


def _rate(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"{key} must be a number from 0 to 1, not {value!r}")
    return float(value)


def _size(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_BYTES_SETTING:
        raise ConfigError(f"{key} must be a number of bytes from 0 to {_MAX_BYTES_SETTING}, "
                          f"not {value!r}")
    return value


def _bool(value: Any, key: str) -> bool:
    # Azure ML's YAML writes enabled: 'True' / 'False' as strings.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(f"{key} must be true or false, not {value!r}")
