"""The service configuration: the shipped file loads, mistakes fail at start naming the key,
and the processors do what their configuration says."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.sdk._logs import ReadableLogRecord

from exporters import contract as A
from otel_collector_ext.service.app import Service, run_service
from otel_collector_ext.service.config import (
    ServiceConfigError,
    load_service_config,
    parse_service_config,
)
from otel_collector_ext.service.processors import build_processor
from tests.conftest import ROOT
from tests.support.helpers_otlp import RESOURCE

BASE: dict[str, Any] = {
    "receivers": {"otlp": {"protocols": {"grpc": None, "http": {"endpoint": "127.0.0.1:0"}}}},
    "processors": {"batch": {}},
    "exporters": {"avro": {"destination": "./x"}},
    "service": {"pipelines": {"logs": {"receivers": ["otlp"], "processors": ["batch"],
                                       "exporters": ["avro"]}}},
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    config = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[last] = value
    return config


def test_shipped_collector_config_loads() -> None:
    config = load_service_config(ROOT / "configs" / "collector.yaml")
    receiver = config.receivers["otlp"]
    assert str(receiver.grpc.endpoint) == "127.0.0.1:4317"
    assert str(receiver.http.endpoint) == "127.0.0.1:4318"
    assert receiver.limits.max_request_bytes == 16 * 1024 * 1024 and receiver.bearer_token is None
    assert config.pipelines["logs"].processors == ("sampling", "attributes/redact", "batch")
    assert config.exporters["avro/blob"]["type"] == "avro"


def test_defaults_bind_loopback() -> None:
    config = parse_service_config(BASE)
    assert config.receivers["otlp"].grpc.endpoint.host == "127.0.0.1"
    assert config.receivers["otlp"].grpc.endpoint.port == 4317


@pytest.mark.parametrize(("path", "value", "named"), [
    ("receivers.otlp.protocols.grpc", {"endpont": "x:1"}, "receivers.otlp.protocols.grpc.endpont"),
    ("receivers.otlp.protocols.http", {"endpoint": "nope"}, "receivers.otlp.protocols.http.endpoint"),
    ("receivers.otlp.protocols.quic", {}, "receivers.otlp.protocols.quic"),
    ("receivers.kafka", {}, "receivers.kafka"),
    ("receivers.otlp.max_records_per_request", 0, "receivers.otlp.max_records_per_request"),
    ("receivers.otlp.max_records_per_request", 10**6, "receivers.otlp.max_records_per_request"),
    ("receivers.otlp.auth", {"bearer_token_env": "OTLP_SURELY_UNSET"}, "receivers.otlp.auth"),
    ("receivers.otlp.auth", {"bearer_token_file": "/no/such/file"}, "receivers.otlp.auth"),
    ("receivers.otlp.protocols.grpc", {"tls": {"cert_file": "/no/cert", "key_file": "/no/key"}},
     "receivers.otlp.protocols.grpc.tls"),
    ("processors.batch", {"timeout": "soon"}, "processors.batch.timeout"),
    ("processors.batch", {"send_batch_sise": 5}, "processors.batch.send_batch_sise"),
    ("processors.tail_sampling", {}, "processors.tail_sampling"),
    ("processors.sampling", {"sampling_rate": 2}, "processors.sampling.sampling_rate"),
    ("processors.attributes", {"actions": [{"key": "k", "action": "shred"}]},
     "processors.attributes.actions[0].action"),
    ("processors.attributes", {"actions": [{"pattern": "(", "action": "delete"}]},
     "processors.attributes.actions[0].pattern"),
    ("exporters.s3", {}, "exporters.s3"),
    ("exporters.avro", {"type": "console"}, "exporters.avro.type"),
    ("service.pipelines.logs.exporters", ["avro", "avro/missing"],
     "service.pipelines.logs.exporters[1]"),
    ("service.pipelines.traces", {"receivers": ["otlp"], "exporters": ["avro"]},
     "service.pipelines.traces"),
    ("service.pipelines.logs.receivers", [], "service.pipelines.logs.receivers"),
    ("service.extensions", ["health_check"], "service.extensions[0]"),
    ("service.shutdown_timeout", "-1s", "service.shutdown_timeout"),
    ("service.telemetry", {"logs": {"level": "loud"}}, "service.telemetry.logs.level"),
    ("service.unknown", 1, "service.unknown"),
    ("receivers.otlp.protocols.http", {"endpoint": "${env:OTLP_SURELY_UNSET}"},
     "receivers.otlp.protocols.http.endpoint"),
])
def test_mistakes_name_the_key(path: str, value: Any, named: str) -> None:
    with pytest.raises(ServiceConfigError) as caught:
        parse_service_config(with_change(path, value))
    assert named in str(caught.value)


def test_exporter_options_are_checked_at_start() -> None:
    config = parse_service_config(with_change("exporters.avro", {"destination": "./x", "codex": 1}))
    with pytest.raises(ServiceConfigError, match=r"exporters\.avro\.codex"):
        Service(config)


def test_queue_must_hold_the_largest_request() -> None:
    config = with_change("processors.batch", {"max_queue_size": 100})
    with pytest.raises(ServiceConfigError, match="max_records_per_request"):
        parse_service_config(config)


def test_environment_variables_and_token_file(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "token"
    token.write_text("abc123\n")
    monkeypatch.setenv("TEST_HTTP_PORT", "4999")
    config = with_change("receivers.otlp", {
        "protocols": {"http": {"endpoint": "127.0.0.1:${env:TEST_HTTP_PORT}"}},
        "auth": {"bearer_token_file": str(token)}})
    parsed = parse_service_config(config)
    assert parsed.receivers["otlp"].http.endpoint.port == 4999
    assert parsed.receivers["otlp"].bearer_token == "abc123"
    assert "abc123" not in repr(parsed)


def test_port_in_use_fails_at_start(tmp_path: Path) -> None:
    first = run_service(with_change("exporters.avro", {"destination": str(tmp_path)}))
    try:
        port = first.addresses["otlp/http"][1]
        clash = with_change("receivers.otlp.protocols", {"http": {"endpoint": f"127.0.0.1:{port}"}})
        clash["exporters"]["avro"]["destination"] = str(tmp_path)
        with pytest.raises(OSError):
            run_service(clash)
    finally:
        first.stop(5)


def readable(collection: str, correlation_id: str, **attrs: Any) -> ReadableLogRecord:
    return ReadableLogRecord(LogRecord(timestamp=1, body={"x": 1}, attributes={
        A.COLLECTION: collection, A.CORRELATION_ID: correlation_id, A.DEPLOYMENT: "blue",
        **attrs}), RESOURCE)


def test_processors() -> None:
    config = parse_service_config({
        **BASE,
        "processors": {
            "batch": {},
            "sampling": {"sampling_rate": 0.0, "collections": {"inputs": 1.0}},
            "filter/blue": {"include": {"deployments": ["blue"]},
                            "exclude": {"collections": ["debug"]}},
            "attributes": {"actions": [
                {"key": "user", "action": "hash"},
                {"pattern": "^secret\\.", "action": "delete"},
                {"key": "env", "action": "insert", "value": "prod"},
                {"key": "tier", "action": "update", "value": "gold"},
                {"key": "region", "action": "upsert", "value": "eu"}],
                "exclude": {"collections": ["outputs"]}},
        },
    })
    sampling, filtering, attrs = (build_processor(config.processors[n])
                                  for n in ("sampling", "filter/blue", "attributes"))
    records = [readable("inputs", "a"), readable("outputs", "b"), readable("debug", "c")]
    assert [r.log_record.attributes[A.COLLECTION] for r in sampling.process(records)] == ["inputs"]
    green = readable("inputs", "d", **{A.DEPLOYMENT: "green"})
    kept = filtering.process([*records, green])
    assert [r.log_record.attributes[A.COLLECTION] for r in kept] == ["inputs", "outputs"]
    original = readable("inputs", "e", user="ann", **{"secret.key": "k", "region": "us"})
    changed = attrs.process([original])[0]
    got = dict(changed.log_record.attributes)
    assert got["user"] != "ann" and len(got["user"]) == 64 and "secret.key" not in got
    assert got["env"] == "prod" and "tier" not in got and got["region"] == "eu"
    assert original.log_record.attributes["user"] == "ann"  # the input record is untouched
    untouched = readable("outputs", "f", user="bob")
    assert attrs.process([untouched])[0] is untouched
