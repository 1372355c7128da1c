from pathlib import Path

import pytest

import otel_collector_ext as oce
from otel_collector_ext.pipeline.config import ConfigError, load_config, parse_config

AZURE_BLOCK = """
endpoint: credit-endpoint
deployment: blue
model_version: "3"
data_collector:
  collections:
    model_inputs:
      enabled: 'True'
      data:
        name: credit_inputs
        path: azureml://datastores/workspaceblobstore/paths/modelDataCollector/credit/inputs
        version: 1
    model_outputs:
      enabled: 'False'
    request:
      enabled: true
      sampling_rate: 0.25
  sampling_rate: 0.5
  rolling_rate: Hour
  request_logging:
    capture_headers: [Content-Type, X-Tenant, Authorization, cookie]
exporter:
  type: avro
  destination: file:///tmp/x
datastores:
  workspaceblobstore: az://azureml-blobstore
"""


def test_azure_block_verbatim(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(AZURE_BLOCK)
    config = load_config(path)
    assert config.endpoint == "credit-endpoint" and config.model_version == "3"
    assert config.collection("model_inputs") is not None
    assert config.collection("model_outputs") is None  # 'False' string
    assert config.collection("not_listed") is None  # as Azure ML: listed collections only
    assert config.sampling_rate == 0.5 and config.sampling_rates() == {"request": 0.25}
    assert config.rolling_rate == "hour"
    # Credential headers are never captured, even when listed.
    assert config.capture_headers == ("content-type", "x-tenant")
    assert config.collections["model_inputs"].data["name"] == "credit_inputs"
    assert config.destinations() == {
        "model_inputs": "az://azureml-blobstore/modelDataCollector/credit/inputs"}


def test_no_collections_block_enables_everything() -> None:
    assert parse_config({}).collection("anything") is not None


def test_env_var_selects_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("endpoint: from-env\n")
    monkeypatch.setenv("OTEL_COLLECTOR_EXT_CONFIG", str(path))
    assert load_config().endpoint == "from-env"


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"endpoint": "x", "colour": 1}, "colour"),
        ({"data_collector": {"sampling_rate": 1.5}}, "data_collector.sampling_rate"),
        ({"data_collector": {"sampling_rate": "0.5"}}, "data_collector.sampling_rate"),
        ({"data_collector": {"sampling_rate": True}}, "data_collector.sampling_rate"),
        ({"data_collector": {"rolling_rate": "week"}}, "data_collector.rolling_rate"),
        ({"data_collector": {"collections": {"a": {"enabled": "yes"}}}}, "collections.a.enabled"),
        ({"data_collector": {"collections": {"a": {"sample": 1}}}}, "collections.a.sample"),
        ({"data_collector": {"collections": {"../etc": {}}}}, "../etc"),
        ({"data_collector": {"collections": []}}, "data_collector.collections"),
        ({"data_collector": {"request_logging": {"capture_headers": "x"}}}, "capture_headers"),
        ({"endpoint": "../../etc"}, "endpoint"),
        ({"endpoint": "/abs"}, "endpoint"),
        ({"deployment": "a/b"}, "deployment"),
        ({"deployment": "bad\x00name"}, "deployment"),
        ({"deployment": "v1."}, "deployment"),
        ({"deployment": "x" * 200}, "deployment"),
        ({"deployment": ""}, "deployment"),
        ({"deployment": 5}, "deployment"),
        ({"batch": {"max_queue_size": 0}}, "batch.max_queue_size"),
        ({"batch": {"max_queue_bytes": 10}}, "batch.max_queue_bytes"),
        ({"exporter": "avro"}, "exporter"),
        ({"model_version": ["x"]}, "model_version"),
    ],
)
def test_invalid_config_names_the_key(data: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("(", r"\(")):
        parse_config(data)


def test_unknown_exporter_and_option_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown exporter 'parquet'"):
        oce.configure({"exporter": {"type": "parquet"}})
    with pytest.raises(ConfigError, match=r"exporter\.colour"):
        oce.configure({"exporter": {"type": "avro", "destination": str(tmp_path), "colour": 1}})
    with pytest.raises(ConfigError, match="codec"):
        oce.configure({"exporter": {"type": "avro", "destination": str(tmp_path), "codec": "lz4"}})


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("endpoint: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(TypeError):
        load_config(42)  # type: ignore[arg-type]


def test_shipped_configs_are_valid() -> None:
    configs = sorted((Path(__file__).parents[3] / "configs").glob("*.yaml"))
    scoring = [p for p in configs if "collector" not in p.name and "service" not in p.name]
    assert scoring, "configs/ ships scoring configurations"
    for path in scoring:
        load_config(path)


def test_otel_logs_exporter_env_chooses_the_exporter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
    assert parse_config({}).exporter == {"type": "otlp"}
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "console")
    assert parse_config({"endpoint": "e"}).exporter == {"type": "console"}
    # an explicit exporter block wins over the variable
    assert parse_config({"exporter": {"type": "avro", "destination": "/d"}}).exporter["type"] == "avro"
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "zipkin")
    with pytest.raises(ConfigError, match="OTEL_LOGS_EXPORTER"):
        parse_config({})


def broken_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text("data_collector:\n  request_logging: {capture_querry: false}\n")
    monkeypatch.setenv("OTEL_COLLECTOR_EXT_CONFIG", str(path))
    return path


def test_the_first_collector_raises_on_a_broken_file(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = broken_file(tmp_path, monkeypatch)
    with pytest.raises(ConfigError) as raised:
        oce.Collector(name="model_inputs")  # at import time of a scoring module
    assert str(raised.value) == (
        f"{path}: unknown key data_collector.request_logging.capture_querry (did you mean "
        "capture_query? allowed: capture_headers, capture_query, exclude_paths, "
        "inline_limit_bytes, max_body_bytes)")
    with pytest.raises(ConfigError, match="capture_querry"):
        oce.Collector(name="model_outputs")


def test_with_on_error_a_broken_file_is_reported_once_and_every_collect_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    broken_file(tmp_path, monkeypatch)
    errors: list[Exception] = []
    inputs = oce.Collector(name="model_inputs", on_error=errors.append)
    outputs = oce.Collector(name="model_outputs", on_error=errors.append)
    for _ in range(5):
        context = inputs.collect({"a": 1})
        outputs.collect({"b": 2}, context)
    assert [type(e) for e in errors] == [ConfigError, ConfigError]  # once per Collector
    assert oce.stats() == {"records.dropped{collection=model_inputs,reason=config_error}": 5,
                           "records.dropped{collection=model_outputs,reason=config_error}": 5}
    logged = [r for r in caplog.records if "capture_querry" in r.getMessage()]
    assert len(logged) == 1 and "records.dropped{reason=config_error}" in logged[0].getMessage()
    # A valid configuration given later is used from then on.
    oce.configure({"exporter": {"type": "avro", "destination": str(tmp_path / "data")}})
    inputs.collect({"a": 1})
    assert oce.flush()
    assert oce.stats()["records.collected{collection=model_inputs}"] == 1


def test_without_a_file_collectors_made_before_configure_wait_for_it(tmp_path: Path) -> None:
    early = oce.Collector(name="early")  # builds nothing yet: configure() below decides
    assert oce.pipeline.wiring._current is None
    oce.configure({"exporter": {"type": "avro", "destination": str(tmp_path)}})
    early.collect({"a": 1})
    assert oce.flush()
    assert len(oce.load(str(tmp_path), endpoint="default", deployment="default",
                        collection="early")) == 1


def test_a_middleware_stops_the_app_on_a_broken_file(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from otel_collector_ext.middleware import ASGIMiddleware, WSGIMiddleware

    broken_file(tmp_path, monkeypatch)
    for middleware in (ASGIMiddleware, WSGIMiddleware):
        with pytest.raises(ConfigError, match="capture_querry"):
            middleware(lambda *args: None)  # type: ignore[arg-type]
