"""The `serve` configuration, modelled on the OpenTelemetry Collector's, validated at start.

    receivers:  {otlp: {protocols: {grpc: {endpoint: ...}, http: {endpoint: ...}}, auth: ...}}
    processors: {sampling: ..., attributes/redact: ..., filter: ..., batch: ...}
    exporters:  {avro: {destination: ...}, avro/blob: ..., otlp: ..., console: {}}
    extensions: {health_check: {endpoint: ...}}
    service:    {extensions: [health_check], pipelines: {logs: {receivers, processors, exporters}}}

As in the Collector, a component's name is `type` or `type/anything`. Every error
names the key it is about. `${env:NAME}` (or `${env:NAME:-default}`) in a string
value is replaced by the environment variable, so secrets stay out of the file.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .receiver.admission import DEFAULT_MAX_REQUESTS
from .receiver.core import Limits, MiB
from .receiver.tls import TLSFiles

_log = logging.getLogger(__name__)

DEFAULT_GRPC = "127.0.0.1:4317"
DEFAULT_HTTP = "127.0.0.1:4318"
DEFAULT_HEALTH = "127.0.0.1:13133"
PROCESSOR_TYPES = ("sampling", "attributes", "filter", "batch")
ATTRIBUTE_ACTIONS = ("insert", "update", "upsert", "delete", "hash")
MATCH_FIELDS = ("collections", "endpoints", "deployments", "model_versions")


class ServiceConfigError(ValueError):
    """The service configuration is invalid; the message names the key."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class GrpcSettings:
    endpoint: Endpoint
    tls: TLSFiles | None = None
    max_workers: int = 32


@dataclass(frozen=True)
class HttpSettings:
    endpoint: Endpoint
    tls: TLSFiles | None = None
    max_connections: int = 1024
    idle_timeout: float = 30.0


@dataclass(frozen=True)
class ReceiverConfig:
    name: str
    grpc: GrpcSettings | None
    http: HttpSettings | None
    limits: Limits
    bearer_token: str | None = field(default=None, repr=False)
    max_concurrent_requests: int = DEFAULT_MAX_REQUESTS  # read and decoded at once, both protocols


@dataclass(frozen=True)
class Match:
    """Records whose inference attributes are in every listed set (empty: no condition)."""

    collections: frozenset[str] = frozenset()
    endpoints: frozenset[str] = frozenset()
    deployments: frozenset[str] = frozenset()
    model_versions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AttributeAction:
    action: str
    key: str | None = None
    pattern: str | None = None  # delete / hash: every key matching this regex
    value: Any = None


@dataclass(frozen=True)
class ProcessorConfig:
    name: str
    type: str
    options: Mapping[str, Any]


@dataclass(frozen=True)
class BatchSettings:
    max_queue_size: int = 16384
    send_batch_size: int = 1024
    timeout_millis: int = 500


@dataclass(frozen=True)
class WalSettings:
    """`service.wal`: the write-ahead log that makes acknowledgements durable."""

    enabled: bool = True
    directory: str | None = None  # default: $OTEL_COLLECTOR_EXT_WAL_DIR or ~/.local/state/...
    max_bytes: int = 512 * 1024 * 1024


@dataclass(frozen=True)
class PipelineConfig:
    name: str
    receivers: tuple[str, ...]
    processors: tuple[str, ...]
    exporters: tuple[str, ...]


@dataclass(frozen=True)
class ServiceConfig:
    receivers: Mapping[str, ReceiverConfig]
    processors: Mapping[str, ProcessorConfig]
    exporters: Mapping[str, Mapping[str, Any]]  # registry specs: {"type": ..., **options}
    pipelines: Mapping[str, PipelineConfig]
    health_check: Endpoint | None = None
    shutdown_timeout: float = 30.0
    log_level: str = "info"
    wal: WalSettings = WalSettings()


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def load_service_config(path: str | os.PathLike[str]) -> ServiceConfig:
    """Read and validate a YAML service configuration file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ServiceConfigError(f"cannot read configuration file {str(path)!r}: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ServiceConfigError(f"{path}: not valid YAML: {e}") from None
    return parse_service_config(data or {})


def parse_service_config(data: Any) -> ServiceConfig:
    """Validate a configuration mapping; ServiceConfigError names the first bad key."""
    data = _expand_env(data, "")
    _mapping(data, "configuration")
    _known(data, {"receivers", "processors", "exporters", "extensions", "service"}, "")
    service = data.get("service")
    _mapping(service, "service")
    _known(service, {"pipelines", "extensions", "shutdown_timeout", "telemetry", "wal"},
           "service.")
    receivers = {name: _receiver(name, spec) for name, spec in _components(data, "receivers")}
    processors = {name: _processor(name, spec) for name, spec in _components(data, "processors")}
    exporters = {name: _exporter(name, spec) for name, spec in _components(data, "exporters")}
    health = _health(data.get("extensions"), service.get("extensions"))
    pipelines_spec = service.get("pipelines")
    _mapping(pipelines_spec, "service.pipelines")
    if not pipelines_spec:
        raise ServiceConfigError("service.pipelines must define at least one logs pipeline")
    pipelines = {
        name: _pipeline(name, spec, receivers, processors, exporters)
        for name, spec in pipelines_spec.items()
    }
    timeout = 30.0
    if "shutdown_timeout" in service:
        timeout = duration(service["shutdown_timeout"], "service.shutdown_timeout")
    config = ServiceConfig(receivers, processors, exporters, pipelines, health, timeout,
                           _log_level(service.get("telemetry")), _wal(service.get("wal")))
    _check_capacity(config)
    return config


def _components(data: Mapping[str, Any], section: str) -> list[tuple[str, Any]]:
    spec = data.get(section) or {}
    _mapping(spec, section)
    out = []
    for name, body in spec.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_]+(/[A-Za-z0-9_.\-]+)?", name):
            raise ServiceConfigError(f"{section}: bad component name {name!r} (use type or type/name)")
        out.append((name, body if body is not None else {}))
    return out


def component_type(name: str) -> str:
    return name.split("/", 1)[0]


# ---------------------------------------------------------------------------
# Receivers
# ---------------------------------------------------------------------------


def _receiver(name: str, spec: Any) -> ReceiverConfig:
    key = f"receivers.{name}"
    if component_type(name) != "otlp":
        raise ServiceConfigError(f"{key}: unknown receiver type {component_type(name)!r} (known: otlp)")
    _mapping(spec, key)
    _known(spec, {"protocols", "auth", "max_records_per_request", "max_nesting_depth",
                  "max_rows_per_record", "max_cells_per_request",
                  "max_decoded_bytes_per_request", "max_concurrent_requests"}, key + ".")
    protocols = spec.get("protocols")
    _mapping(protocols, key + ".protocols")
    _known(protocols, {"grpc", "http"}, key + ".protocols.")
    if not protocols:
        raise ServiceConfigError(f"{key}.protocols must enable grpc, http or both")
    grpc_spec, http_spec = protocols.get("grpc", False), protocols.get("http", False)
    max_bytes = 16 * MiB
    grpc = http = None
    if "grpc" in protocols:
        gkey = key + ".protocols.grpc"
        grpc_spec = grpc_spec or {}
        _mapping(grpc_spec, gkey)
        _known(grpc_spec, {"endpoint", "tls", "max_recv_msg_size_mib", "max_workers"}, gkey + ".")
        if "max_recv_msg_size_mib" in grpc_spec:
            max_bytes = _int(grpc_spec["max_recv_msg_size_mib"], gkey + ".max_recv_msg_size_mib",
                             1, 1024) * MiB
        grpc = GrpcSettings(
            endpoint(grpc_spec.get("endpoint", DEFAULT_GRPC), gkey + ".endpoint"),
            _tls(grpc_spec.get("tls"), gkey + ".tls"),
            _int(grpc_spec.get("max_workers", GrpcSettings.max_workers), gkey + ".max_workers",
                 1, 1024),
        )
    if "http" in protocols:
        hkey = key + ".protocols.http"
        http_spec = http_spec or {}
        _mapping(http_spec, hkey)
        _known(http_spec, {"endpoint", "tls", "max_request_body_size", "max_connections",
                           "idle_timeout"}, hkey + ".")
        if "max_request_body_size" in http_spec:
            http_bytes = _int(http_spec["max_request_body_size"], hkey + ".max_request_body_size",
                              1024, 1024 * MiB)
            if grpc is not None and "max_recv_msg_size_mib" in (grpc_spec or {}) \
                    and http_bytes != max_bytes:
                raise ServiceConfigError(
                    f"{hkey}.max_request_body_size: must equal grpc.max_recv_msg_size_mib "
                    "(one request-size limit per receiver)")
            max_bytes = http_bytes
        http = HttpSettings(
            endpoint(http_spec.get("endpoint", DEFAULT_HTTP), hkey + ".endpoint"),
            _tls(http_spec.get("tls"), hkey + ".tls"),
            _int(http_spec.get("max_connections", HttpSettings.max_connections),
                 hkey + ".max_connections", 1, 100_000),
            duration(http_spec.get("idle_timeout", "30s"), hkey + ".idle_timeout"),
        )
    limits = Limits(
        max_request_bytes=max_bytes,
        max_records=_int(spec.get("max_records_per_request", 8192),
                         key + ".max_records_per_request", 1, 1_000_000),
        max_depth=_int(spec.get("max_nesting_depth", 32), key + ".max_nesting_depth", 1, 64),
        max_rows_per_record=_int(spec.get("max_rows_per_record", Limits.max_rows_per_record),
                                 key + ".max_rows_per_record", 1, 100_000_000),
        max_cells=_int(spec.get("max_cells_per_request", Limits.max_cells),
                       key + ".max_cells_per_request", 1, 1_000_000_000),
        max_decoded_bytes=_int(spec.get("max_decoded_bytes_per_request",
                                        Limits.max_decoded_bytes),
                               key + ".max_decoded_bytes_per_request", MiB, 64 * 1024 * MiB),
    )
    token = _token(spec.get("auth"), key + ".auth") if "auth" in spec else None
    for settings in (grpc, http):
        if settings is not None and not _loopback(settings.endpoint.host) and token is None:
            _log.warning("%s listens on %s without bearer-token auth", key, settings.endpoint)
    concurrent = _int(spec.get("max_concurrent_requests", DEFAULT_MAX_REQUESTS),
                      key + ".max_concurrent_requests", 1, 1024)
    return ReceiverConfig(name, grpc, http, limits, token, concurrent)


def _token(spec: Any, key: str) -> str:
    _mapping(spec, key)
    _known(spec, {"bearer_token_env", "bearer_token_file"}, key + ".")
    if len(spec) != 1:
        raise ServiceConfigError(f"{key}: give exactly one of bearer_token_env, bearer_token_file")
    if "bearer_token_env" in spec:
        var = spec["bearer_token_env"]
        if not isinstance(var, str) or not var:
            raise ServiceConfigError(f"{key}.bearer_token_env must name an environment variable")
        token = os.environ.get(var, "").strip()
        if not token:
            raise ServiceConfigError(f"{key}.bearer_token_env: environment variable {var} is not set")
    else:
        path = spec["bearer_token_file"]
        try:
            token = Path(str(path)).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ServiceConfigError(f"{key}.bearer_token_file: cannot read {path}: {e.strerror}") from None
        if not token:
            raise ServiceConfigError(f"{key}.bearer_token_file: {path} is empty")
    if any(c.isspace() for c in token):
        raise ServiceConfigError(f"{key}: the token must not contain whitespace")
    return token


def _tls(spec: Any, key: str) -> TLSFiles | None:
    if spec is None:
        return None
    _mapping(spec, key)
    _known(spec, {"cert_file", "key_file", "client_ca_file"}, key + ".")
    for required in ("cert_file", "key_file"):
        if not isinstance(spec.get(required), str):
            raise ServiceConfigError(f"{key}.{required} is required for TLS")
    tls = TLSFiles(spec["cert_file"], spec["key_file"], spec.get("client_ca_file"))
    try:
        tls.check()
    except ValueError as e:
        raise ServiceConfigError(f"{key}: {e}") from None
    return tls


def endpoint(value: Any, key: str) -> Endpoint:
    """Parse `host:port` (`[v6]:port`; `:port` binds every interface)."""
    if not isinstance(value, str):
        raise ServiceConfigError(f"{key} must be 'host:port', not {value!r}")
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]*):(\d+)", value.strip())
    if not match:
        raise ServiceConfigError(f"{key} must be 'host:port', not {value!r}")
    host = match.group(1) or match.group(3) or ("::" if match.group(1) else "0.0.0.0")
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ServiceConfigError(f"{key}: port {port} out of range")
    if host == "localhost":
        host = "127.0.0.1"
    return Endpoint(host, port)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------
# Processors
# ---------------------------------------------------------------------------


def _processor(name: str, spec: Any) -> ProcessorConfig:
    key = f"processors.{name}"
    kind = component_type(name)
    if kind not in PROCESSOR_TYPES:
        raise ServiceConfigError(
            f"{key}: unknown processor type {kind!r} (known: {', '.join(PROCESSOR_TYPES)})")
    _mapping(spec, key)
    parse = {"sampling": _sampling, "attributes": _attributes, "filter": _filter,
             "batch": _batch}[kind]
    return ProcessorConfig(name, kind, parse(spec, key))


def _sampling(spec: Mapping[str, Any], key: str) -> dict[str, Any]:
    _known(spec, {"sampling_rate", "collections"}, key + ".")
    rates = spec.get("collections") or {}
    _mapping(rates, key + ".collections")
    return {
        "sampling_rate": _rate(spec.get("sampling_rate", 1.0), key + ".sampling_rate"),
        "collections": {str(c): _rate(r, f"{key}.collections.{c}") for c, r in rates.items()},
    }


def _attributes(spec: Mapping[str, Any], key: str) -> dict[str, Any]:
    _known(spec, {"actions", "include", "exclude"}, key + ".")
    actions = spec.get("actions")
    if not isinstance(actions, list) or not actions:
        raise ServiceConfigError(f"{key}.actions must be a non-empty list")
    parsed = []
    for i, action in enumerate(actions):
        akey = f"{key}.actions[{i}]"
        _mapping(action, akey)
        _known(action, {"key", "pattern", "action", "value"}, akey + ".")
        kind = action.get("action")
        if kind not in ATTRIBUTE_ACTIONS:
            raise ServiceConfigError(
                f"{akey}.action must be one of {', '.join(ATTRIBUTE_ACTIONS)}, not {kind!r}")
        has_key, has_pattern = isinstance(action.get("key"), str), "pattern" in action
        if has_pattern and kind not in ("delete", "hash"):
            raise ServiceConfigError(f"{akey}.pattern is only for delete and hash")
        if has_key == has_pattern:
            raise ServiceConfigError(f"{akey}: give exactly one of key, pattern")
        if has_pattern:
            try:
                re.compile(str(action["pattern"]))
            except re.error as e:
                raise ServiceConfigError(f"{akey}.pattern: invalid regex: {e}") from None
        value = action.get("value")
        if kind in ("insert", "update", "upsert"):
            if "value" not in action or not isinstance(value, (str, int, float, bool)):
                raise ServiceConfigError(f"{akey}.value must be a string, number or boolean")
        elif "value" in action:
            raise ServiceConfigError(f"{akey}.value is not used by {kind}")
        parsed.append(AttributeAction(kind, action.get("key"), action.get("pattern"), value))
    return {"actions": tuple(parsed), "include": _match(spec.get("include"), key + ".include"),
            "exclude": _match(spec.get("exclude"), key + ".exclude")}


def _filter(spec: Mapping[str, Any], key: str) -> dict[str, Any]:
    _known(spec, {"include", "exclude"}, key + ".")
    if not spec:
        raise ServiceConfigError(f"{key}: give include, exclude or both")
    return {"include": _match(spec.get("include"), key + ".include"),
            "exclude": _match(spec.get("exclude"), key + ".exclude")}


def _match(spec: Any, key: str) -> Match | None:
    if spec is None:
        return None
    _mapping(spec, key)
    _known(spec, set(MATCH_FIELDS), key + ".")
    values = {}
    for name in MATCH_FIELDS:
        items = spec.get(name, [])
        if not isinstance(items, list) or not all(isinstance(i, (str, int, float)) for i in items):
            raise ServiceConfigError(f"{key}.{name} must be a list of names")
        values[name] = frozenset(str(i) for i in items)
    return Match(**values)


def _batch(spec: Mapping[str, Any], key: str) -> dict[str, Any]:
    _known(spec, {"timeout", "send_batch_size", "max_queue_size"}, key + ".")
    defaults = BatchSettings()
    return {"settings": BatchSettings(
        max_queue_size=_int(spec.get("max_queue_size", defaults.max_queue_size),
                            key + ".max_queue_size", 1, 10_000_000),
        send_batch_size=_int(spec.get("send_batch_size", defaults.send_batch_size),
                             key + ".send_batch_size", 1, 1_000_000),
        timeout_millis=max(1, round(1000 * duration(
            spec.get("timeout", f"{defaults.timeout_millis}ms"), key + ".timeout"))),
    )}


# ---------------------------------------------------------------------------
# Exporters, extensions, pipelines
# ---------------------------------------------------------------------------


def _exporter(name: str, spec: Any) -> dict[str, Any]:
    key = f"exporters.{name}"
    _mapping(spec, key)
    if "type" in spec:
        raise ServiceConfigError(f"{key}.type: the type is the name before '/' ({name!r})")
    from exporters.registry import EXPORTERS

    kind = component_type(name)
    if kind not in EXPORTERS:
        raise ServiceConfigError(
            f"{key}: unknown exporter type {kind!r} (known: {', '.join(sorted(EXPORTERS))})")
    return {"type": kind, **spec}


def _wal(spec: Any) -> WalSettings:
    if spec is None:
        return WalSettings()
    key = "service.wal"
    _mapping(spec, key)
    _known(spec, {"enabled", "directory", "max_bytes"}, key + ".")
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ServiceConfigError(f"{key}.enabled must be true or false, not {enabled!r}")
    directory = spec.get("directory")
    if directory is not None and (not isinstance(directory, str) or not directory.strip()):
        raise ServiceConfigError(f"{key}.directory must be a folder path, not {directory!r}")
    max_bytes = _int(spec.get("max_bytes", WalSettings.max_bytes), key + ".max_bytes",
                     1024 * 1024, 1 << 40)
    return WalSettings(enabled, directory, max_bytes)


def _health(extensions: Any, enabled: Any) -> Endpoint | None:
    extensions = extensions or {}
    _mapping(extensions, "extensions")
    for name in extensions:
        if component_type(str(name)) != "health_check":
            raise ServiceConfigError(f"extensions.{name}: unknown extension (known: health_check)")
    enabled = enabled or []
    if not isinstance(enabled, list):
        raise ServiceConfigError("service.extensions must be a list of extension names")
    chosen = None
    for i, name in enumerate(enabled):
        if name not in extensions:
            raise ServiceConfigError(f"service.extensions[{i}]: {name!r} is not defined in extensions")
        spec = extensions[name] or {}
        _mapping(spec, f"extensions.{name}")
        _known(spec, {"endpoint"}, f"extensions.{name}.")
        if chosen is not None:
            raise ServiceConfigError(f"service.extensions[{i}]: only one health_check is supported")
        chosen = endpoint(spec.get("endpoint", DEFAULT_HEALTH), f"extensions.{name}.endpoint")
    return chosen


def _pipeline(name: Any, spec: Any, receivers: Mapping[str, Any], processors: Mapping[str, Any],
              exporters: Mapping[str, Any]) -> PipelineConfig:
    key = f"service.pipelines.{name}"
    if not isinstance(name, str) or component_type(name) != "logs":
        raise ServiceConfigError(f"{key}: only logs pipelines are supported (logs or logs/<name>)")
    _mapping(spec, key)
    _known(spec, {"receivers", "processors", "exporters"}, key + ".")
    lists = {}
    for part, defined in (("receivers", receivers), ("processors", processors),
                          ("exporters", exporters)):
        names = spec.get(part, [])
        if not isinstance(names, list):
            raise ServiceConfigError(f"{key}.{part} must be a list of names")
        for i, item in enumerate(names):
            if item not in defined:
                raise ServiceConfigError(f"{key}.{part}[{i}]: {item!r} is not defined in {part}")
        if len(set(names)) != len(names):
            raise ServiceConfigError(f"{key}.{part}: a name is listed twice")
        lists[part] = tuple(names)
    for part in ("receivers", "exporters"):
        if not lists[part]:
            raise ServiceConfigError(f"{key}.{part} must list at least one")
    if sum(processors[p].type == "batch" for p in lists["processors"]) > 1:
        raise ServiceConfigError(f"{key}.processors: at most one batch processor per pipeline")
    return PipelineConfig(name, lists["receivers"], lists["processors"], lists["exporters"])


def _log_level(spec: Any) -> str:
    if spec is None:
        return "info"
    _mapping(spec, "service.telemetry")
    _known(spec, {"logs"}, "service.telemetry.")
    logs = spec.get("logs") or {}
    _mapping(logs, "service.telemetry.logs")
    _known(logs, {"level"}, "service.telemetry.logs.")
    level = str(logs.get("level", "info")).lower()
    if level not in ("debug", "info", "warn", "error"):
        raise ServiceConfigError(
            f"service.telemetry.logs.level must be debug, info, warn or error, not {level!r}")
    return level


def batch_settings(config: ServiceConfig) -> dict[str, BatchSettings]:
    """Each used exporter's queue settings, from the batch processor of its pipelines."""
    out: dict[str, BatchSettings] = {}
    for pipeline in config.pipelines.values():
        batch = next((config.processors[p].options["settings"] for p in pipeline.processors
                      if config.processors[p].type == "batch"), BatchSettings())
        for exporter in pipeline.exporters:
            if out.setdefault(exporter, batch) != batch:
                raise ServiceConfigError(
                    f"exporters.{exporter}: its pipelines set different batch settings")
    return out


def _check_capacity(config: ServiceConfig) -> None:
    settings = batch_settings(config)
    if config.wal.enabled:
        for name, receiver in config.receivers.items():
            if 2 * receiver.limits.max_request_bytes > config.wal.max_bytes:
                raise ServiceConfigError(
                    f"service.wal.max_bytes: {config.wal.max_bytes} is less than twice the "
                    f"request size limit of receiver {name} "
                    f"({receiver.limits.max_request_bytes}); such requests would never fit")
    for pipeline in config.pipelines.values():
        for receiver in pipeline.receivers:
            limit = config.receivers[receiver].limits.max_records
            for exporter in pipeline.exporters:
                if limit > settings[exporter].max_queue_size:
                    raise ServiceConfigError(
                        f"receivers.{receiver}.max_records_per_request: {limit} is larger than "
                        f"the queue of exporter {exporter} ({settings[exporter].max_queue_size}); "
                        "such a request could never be accepted")


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------

_ENV = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(value: Any, key: str) -> Any:
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            found = os.environ.get(match.group(1))
            if found is None:
                if match.group(2) is None:
                    raise ServiceConfigError(
                        f"{key or 'configuration'}: environment variable {match.group(1)} is not set")
                return match.group(2)
            return found

        return _ENV.sub(replace, value)
    if isinstance(value, Mapping):
        return {k: _expand_env(v, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(value: Any, key: str) -> float:
    """Seconds from '500ms', '2s', '1m', '1h' or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*", value)
        if match and float(match.group(1)) > 0:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise ServiceConfigError(f"{key} must be a positive duration such as 500ms, 2s or 1m, not {value!r}")


def _int(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ServiceConfigError(f"{key} must be an integer from {low} to {high}, not {value!r}")
    return value


def _rate(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ServiceConfigError(f"{key} must be a number from 0 to 1, not {value!r}")
    return float(value)


def _mapping(value: Any, key: str) -> None:
    if not isinstance(value, Mapping):
        raise ServiceConfigError(f"{key} must be a mapping, not {type(value).__name__}")


def _known(value: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    for key in value:
        if key not in allowed:
            raise ServiceConfigError(
                f"unknown key {prefix}{key} (allowed: {', '.join(sorted(allowed))})")
