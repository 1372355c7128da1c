"""The `serve` configuration, modelled on the OpenTelemetry Collector's, validated at start.

    receivers:  {otlp: {protocols: {grpc: {endpoint: ...}, http: {endpoint: ...}}, auth: ...}}
    processors: {sampling: ..., attributes/redact: ..., filter: ..., batch: ...}
    exporters:  {avro: {destination: ...}, avro/blob: ..., otlp: ..., console: {}}
    extensions: {health_check: {endpoint: ...}}
    service:    {extensions: [health_check], pipelines: {logs: {receivers, processors, exporters}}}

As in the Collector, a component's name is `type` or `type/anything`. Every error
names the key it is about. Each block's keys, defaults and rules are the models in
`config_model` (the source of the published JSON Schema); this module reads the file,
checks what spans blocks and builds the settings the service runs with. `${env:NAME}` (or `${env:NAME:-default}`) in a string
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

from exporters.config_model import ConfigModel, validate

from .config_model import (
    ATTRIBUTE_ACTIONS,
    COMPONENT_NAME,
    DEFAULT_GRPC,
    DEFAULT_HEALTH,
    DEFAULT_HTTP,
    EXTENSIONS,
    MATCH_FIELDS,
    PROCESSOR_TYPES,
    PROCESSORS,
    RECEIVERS,
    BatchProcessor,
    GrpcProtocol,
    HttpProtocol,
    MatchSpec,
    OtlpReceiver,
    PipelineSpec,
    ServiceConfigFile,
    Tls,
    Wal,
    host_port,
    seconds,
)
from .receiver.admission import DEFAULT_MAX_REQUESTS
from .receiver.core import Limits, MiB
from .receiver.tls import TLSFiles

_log = logging.getLogger(__name__)

__all__ = [
    "ATTRIBUTE_ACTIONS", "DEFAULT_GRPC", "DEFAULT_HEALTH", "DEFAULT_HTTP", "MATCH_FIELDS",
    "PROCESSOR_TYPES", "AttributeAction", "BatchSettings", "Endpoint", "GrpcSettings",
    "HttpSettings", "Match", "PipelineConfig", "ProcessorConfig", "ReceiverConfig",
    "ServiceConfig", "ServiceConfigError", "WalSettings", "batch_settings", "component_type",
    "duration", "endpoint", "load_service_config", "parse_service_config",
]


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


def _checked(model: type[ConfigModel], data: Any, key: str = "") -> Any:
    try:
        return validate(model, data, prefix=key)
    except ValueError as e:
        raise ServiceConfigError(str(e)) from None


def parse_service_config(data: Any) -> ServiceConfig:
    """Validate a configuration mapping; ServiceConfigError names the first bad key."""
    model = _checked(ServiceConfigFile, _expand_env(data, ""))
    service = model.service
    receivers = {name: _receiver(name, spec)
                 for name, spec in _components(model.receivers, "receivers", RECEIVERS)}
    processors = {name: _processor(name, spec)
                  for name, spec in _components(model.processors, "processors", PROCESSORS)}
    exporters = {name: _exporter(name, spec) for name, spec in _exporters(model.exporters)}
    health = _health(dict(_components(model.extensions, "extensions", EXTENSIONS)),
                     service.extensions)
    if not service.pipelines:
        raise ServiceConfigError("service.pipelines must define at least one logs pipeline")
    pipelines = {
        name: _pipeline(name, spec, receivers, processors, exporters)
        for name, spec in service.pipelines.items()
    }
    level = service.telemetry.logs.level if service.telemetry and service.telemetry.logs \
        else "info"
    config = ServiceConfig(receivers, processors, exporters, pipelines, health,
                           service.shutdown_timeout, level, _wal(service.wal))
    _check_capacity(config)
    return config


def _component_names(spec: Mapping[str, Any] | None, section: str) -> list[tuple[str, Any]]:
    out = []
    for name, body in (spec or {}).items():
        if not isinstance(name, str) or not re.fullmatch(COMPONENT_NAME, name):
            raise ServiceConfigError(f"{section}: bad component name {name!r} (use type or type/name)")
        out.append((name, body if body is not None else {}))
    return out


def _components(spec: Mapping[str, Any] | None, section: str,
                models: Mapping[str, type[ConfigModel]]) -> list[tuple[str, Any]]:
    """(name, validated model) of each component of `section`, by the type in its name."""
    what = section.rstrip("s")
    out = []
    for name, body in _component_names(spec, section):
        key = f"{section}.{name}"
        model = models.get(component_type(name))
        if model is None:
            known = ", ".join(models)
            raise ServiceConfigError(f"{key}: unknown {what} type {component_type(name)!r} "
                                     f"(known: {known})")
        out.append((name, _checked(model, body, key)))
    return out


def component_type(name: str) -> str:
    return name.split("/", 1)[0]


# ---------------------------------------------------------------------------
# Receivers
# ---------------------------------------------------------------------------


def _receiver(name: str, spec: OtlpReceiver) -> ReceiverConfig:
    key = f"receivers.{name}"
    protocols, max_bytes = spec.protocols, 16 * MiB
    grpc = http = None
    grpc_bytes = None
    if "grpc" in protocols.model_fields_set:
        g = protocols.grpc or GrpcProtocol()
        if g.max_recv_msg_size_mib is not None:
            max_bytes = grpc_bytes = g.max_recv_msg_size_mib * MiB
        grpc = GrpcSettings(endpoint(g.endpoint, key + ".protocols.grpc.endpoint"),
                            _tls(g.tls, key + ".protocols.grpc.tls"), g.max_workers)
    if "http" in protocols.model_fields_set:
        h = protocols.http or HttpProtocol()
        hkey = key + ".protocols.http"
        if h.max_request_body_size is not None:
            if grpc_bytes is not None and h.max_request_body_size != grpc_bytes:
                raise ServiceConfigError(
                    f"{hkey}.max_request_body_size: must equal grpc.max_recv_msg_size_mib "
                    "(one request-size limit per receiver)")
            max_bytes = h.max_request_body_size
        http = HttpSettings(endpoint(h.endpoint, hkey + ".endpoint"), _tls(h.tls, hkey + ".tls"),
                            h.max_connections, h.idle_timeout)
    limits = Limits(
        max_request_bytes=max_bytes, max_records=spec.max_records_per_request,
        max_depth=spec.max_nesting_depth, max_rows_per_record=spec.max_rows_per_record,
        max_cells=spec.max_cells_per_request,
        max_decoded_bytes=spec.max_decoded_bytes_per_request)
    token = _token(spec.auth, key + ".auth") if spec.auth is not None else None
    for settings in (grpc, http):
        if settings is not None and not _loopback(settings.endpoint.host) and token is None:
            _log.warning("%s listens on %s without bearer-token auth", key, settings.endpoint)
    return ReceiverConfig(name, grpc, http, limits, token, spec.max_concurrent_requests)


def _token(spec: Any, key: str) -> str:
    if spec.bearer_token_env is not None:
        var = spec.bearer_token_env
        token = os.environ.get(var, "").strip()
        if not token:
            raise ServiceConfigError(f"{key}.bearer_token_env: environment variable {var} is not set")
    else:
        path = spec.bearer_token_file
        try:
            token = Path(str(path)).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ServiceConfigError(f"{key}.bearer_token_file: cannot read {path}: {e.strerror}") from None
        if not token:
            raise ServiceConfigError(f"{key}.bearer_token_file: {path} is empty")
    if any(c.isspace() for c in token):
        raise ServiceConfigError(f"{key}: the token must not contain whitespace")
    return token


def _tls(spec: Tls | None, key: str) -> TLSFiles | None:
    if spec is None:
        return None
    tls = TLSFiles(spec.cert_file, spec.key_file, spec.client_ca_file)
    try:
        tls.check()
    except ValueError as e:
        raise ServiceConfigError(f"{key}: {e}") from None
    return tls


def endpoint(value: Any, key: str) -> Endpoint:
    """Parse `host:port` (`[v6]:port`; `:port` binds every interface)."""
    try:
        return Endpoint(*host_port(value))
    except ValueError as e:
        message = str(e)
        raise ServiceConfigError(f"{key} {message}" if message.startswith("must ")
                                 else f"{key}: {message}") from None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------
# Processors
# ---------------------------------------------------------------------------


def _processor(name: str, spec: Any) -> ProcessorConfig:
    kind = component_type(name)
    if isinstance(spec, BatchProcessor):
        options: dict[str, Any] = {"settings": BatchSettings(
            spec.max_queue_size, spec.send_batch_size, max(1, round(1000 * spec.timeout)))}
    elif kind == "sampling":
        options = {"sampling_rate": spec.sampling_rate, "collections": dict(spec.collections)}
    else:
        options = {"include": _match(spec.include), "exclude": _match(spec.exclude)}
        if kind == "attributes":
            options["actions"] = tuple(AttributeAction(a.action, a.key, a.pattern, a.value)
                                       for a in spec.actions)
    return ProcessorConfig(name, kind, options)


def _match(spec: MatchSpec | None) -> Match | None:
    if spec is None:
        return None
    return Match(**{name: frozenset(getattr(spec, name)) for name in MATCH_FIELDS})


# ---------------------------------------------------------------------------
# Exporters, extensions, pipelines
# ---------------------------------------------------------------------------


def _exporters(spec: Mapping[str, Any] | None) -> list[tuple[str, Any]]:
    return _component_names(spec, "exporters")


def _exporter(name: str, spec: Any) -> dict[str, Any]:
    key = f"exporters.{name}"
    if not isinstance(spec, Mapping):
        raise ServiceConfigError(f"{key} must be a mapping, not {type(spec).__name__}")
    if "type" in spec:
        raise ServiceConfigError(f"{key}.type: the type is the name before '/' ({name!r})")
    from exporters.registry import EXPORTERS

    kind = component_type(name)
    if kind not in EXPORTERS:
        raise ServiceConfigError(
            f"{key}: unknown exporter type {kind!r} (known: {', '.join(sorted(EXPORTERS))})")
    return {"type": kind, **spec}


def _wal(spec: Wal | None) -> WalSettings:
    if spec is None:
        return WalSettings()
    return WalSettings(spec.enabled, spec.directory, spec.max_bytes)


def _health(extensions: Mapping[str, Any], enabled: list[str]) -> Endpoint | None:
    chosen = None
    for i, name in enumerate(enabled):
        if name not in extensions:
            raise ServiceConfigError(f"service.extensions[{i}]: {name!r} is not defined in extensions")
        if chosen is not None:
            raise ServiceConfigError(f"service.extensions[{i}]: only one health_check is supported")
        chosen = endpoint(extensions[name].endpoint, f"extensions.{name}.endpoint")
    return chosen


def _pipeline(name: str, spec: PipelineSpec, receivers: Mapping[str, Any],
              processors: Mapping[str, Any], exporters: Mapping[str, Any]) -> PipelineConfig:
    key = f"service.pipelines.{name}"
    if component_type(name) != "logs":
        raise ServiceConfigError(f"{key}: only logs pipelines are supported (logs or logs/<name>)")
    lists = {}
    for part, defined in (("receivers", receivers), ("processors", processors),
                          ("exporters", exporters)):
        names = getattr(spec, part)
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
        for receiver_name in pipeline.receivers:
            limit = config.receivers[receiver_name].limits.max_records
            for exporter in pipeline.exporters:
                if limit > settings[exporter].max_queue_size:
                    raise ServiceConfigError(
                        f"receivers.{receiver_name}.max_records_per_request: {limit} is larger than "
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


def duration(value: Any, key: str) -> float:
    """Seconds from '500ms', '2s', '1m', '1h' or a number of seconds."""
    try:
        return seconds(value)
    except ValueError as e:
        raise ServiceConfigError(f"{key} {e}") from None
