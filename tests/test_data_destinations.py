"""Azure ML's per-collection `data:` block: a collection's files go to its own `path`
(a folder, a Blob URL, or an azureml:// datastore path mapped in `datastores`), and
a whole Azure ML deployment YAML is accepted as the configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

import otel_collector_ext as oce
from exporters.profiles import PROFILE_SUFFIX
from otel_collector_ext import BasicCorrelationContext, Collector
from otel_collector_ext.pipeline.config import ConfigError, load_config, parse_config

if TYPE_CHECKING:
    from tests.support.azurite import Azurite

pytest_plugins = ["tests.support.azurite"]  # fixtures: azurite, container_name

T0 = 1_795_000_000 - 1_795_000_000 % 3600


def config_with(destination: Path, collections: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "endpoint": "ep", "deployment": "blue", "instance_id": "replica-1",
        "exporter": {"type": "avro", "destination": str(destination)},
        "batch": {"schedule_delay_millis": 50},
        "data_collector": {"collections": collections},
        **extra,
    }


def load(destination: Path | str, collection: str, **kw: Any) -> pd.DataFrame:
    return oce.load(str(destination), endpoint="ep", deployment="blue", collection=collection,
                    **kw)


def collect_both(n: int) -> None:
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")
    for i in range(n):
        context = inputs.collect(pd.DataFrame({"id": [i], "x": [i / 2]}),
                                 BasicCorrelationContext(timestamp=T0 + i))
        outputs.collect({"id": i, "score": i % 3}, context)
    assert oce.flush()


def avro_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.avro"))


def test_a_collection_with_a_folder_path_goes_there(tmp_path: Path) -> None:
    own = tmp_path / "inputs-store"
    oce.configure(config_with(tmp_path / "main", {
        "model_inputs": {"enabled": "True",
                         "data": {"name": "inputs_asset", "path": str(own), "version": 1}},
        "model_outputs": {"enabled": "True"},
    }))
    collect_both(50)
    hour = pd.Timestamp(T0, unit="s").strftime("%Y/%m/%d/%H")
    # The usual layout under the collection's own path, so load() and the CLI read it.
    assert avro_files(own) == [f"ep/blue/model_inputs/{hour}/replica-1.0000.avro"]
    assert avro_files(tmp_path / "main") == [f"ep/blue/model_outputs/{hour}/replica-1.0000.avro"]
    assert sorted(load(own, "model_inputs")["id"]) == list(range(50))
    assert sorted(load(tmp_path / "main", "model_outputs")["id"]) == list(range(50))
    stats = oce.stats()  # the routed exporter's counters are the exporter's counters
    assert stats["exporter.records.written{collection=model_inputs}"] == 50
    assert stats["exporter.records.written{collection=model_outputs}"] == 50


def test_an_azureml_path_is_mapped_through_datastores_to_azure_blob(
        azurite: Azurite, container_name: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("OTEL_COLLECTOR_EXT_SPOOL_DIR", str(tmp_path / "spools"))
    path = ("azureml://subscriptions/0000/resourcegroups/ml-rg/workspaces/ws/datastores/"
            "workspaceblobstore/paths/modelDataCollector/ep/blue/model_inputs")
    oce.configure(config_with(
        tmp_path / "main",
        {"model_inputs": {"enabled": True, "data": {"name": "in", "path": path, "version": 2}},
         "model_outputs": {"enabled": True}},
        datastores={"workspaceblobstore": f"az://{container_name}/azureml"},
    ))
    collect_both(30)
    oce.shutdown()  # uploads what the spool holds
    container = azurite.service().get_container_client(container_name)
    names = [b.name for b in container.list_blobs() if "/_schema/" not in b.name]
    prefix = "azureml/modelDataCollector/ep/blue/model_inputs/ep/blue/model_inputs/"
    data = [n for n in names if not n.endswith(PROFILE_SUFFIX)]
    assert data and all(n.startswith(prefix) and n.endswith(".avro") for n in data), names
    assert sorted(set(names) - set(data)) == sorted(n + PROFILE_SUFFIX for n in data)
    got = load(f"az://{container_name}/azureml/modelDataCollector/ep/blue/model_inputs",
               "model_inputs", storage_options={"spool": False})
    assert sorted(got["id"]) == list(range(30))
    assert avro_files(tmp_path / "main") and all(
        "model_outputs" in f for f in avro_files(tmp_path / "main"))


def test_an_azureml_path_mapped_to_a_folder(tmp_path: Path) -> None:
    oce.configure(config_with(
        tmp_path / "main",
        {"model_inputs": {"data": {"path": "azureml://datastores/local_store/paths/mdc/inputs"}},
         "model_outputs": {}},
        datastores={"local_store": str(tmp_path / "store")},
    ))
    collect_both(5)
    assert sorted(load(tmp_path / "store" / "mdc" / "inputs", "model_inputs")["id"]) == [
        0, 1, 2, 3, 4]


def test_collections_sharing_a_destination_share_one_writer(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    oce.configure(config_with(tmp_path / "main", {
        "model_inputs": {"data": {"path": str(shared)}},
        "model_outputs": {"data": {"path": f"file://{shared}"}},  # the same folder
    }))
    pipeline = oce.pipeline.wiring._current
    assert pipeline is not None
    assert len(pipeline.exporter.exporters) == 2  # the default one and one for `shared`
    collect_both(10)
    assert len(load(shared, "model_inputs")) == len(load(shared, "model_outputs")) == 10
    assert not (tmp_path / "main" / "ep").exists()


UNMAPPED = {"model_inputs": {"data": {"path": "azureml://datastores/blobstore/paths/x/y"}}}


def test_an_unmapped_datastore_fails_at_start_naming_the_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "data_collector:\n  collections:\n    model_inputs:\n      enabled: 'True'\n"
        "      data: {name: in, path: 'azureml://datastores/blobstore/paths/x/y', version: 1}\n")
    monkeypatch.setenv("OTEL_COLLECTOR_EXT_CONFIG", str(path))
    with pytest.raises(ConfigError) as raised:
        Collector(name="model_inputs")
    assert str(raised.value).startswith(
        f"{path}: data_collector.collections.model_inputs.data.path: datastore 'blobstore' "
        "is not mapped; add datastores: {blobstore: ")


@pytest.mark.parametrize(("path", "message"), [
    ("azureml://datastores/s/paths/../../etc", "plain folder names"),
    ("azureml://datastores/s/paths/", "plain folder names"),
    ("azureml://datastores/s/paths/a//b", "plain folder names"),
    ("azureml:inputs_asset:1", "is not azureml://datastores/<name>/paths/<path>"),
    ("s3://bucket/prefix", "is not a folder, az:// or https:// URL"),
    ("", "must be a folder"),
    (42, "must be a folder"),
])
def test_bad_data_paths_are_refused_naming_the_key(path: object, message: str) -> None:
    config = {"datastores": {"s": "/tmp/store"},
              "data_collector": {"collections": {"model_inputs": {"data": {"path": path}}}}}
    with pytest.raises(ConfigError, match="data_collector.collections.model_inputs.data.path"
                       ) as raised:
        parse_config(config)
    assert message in str(raised.value)


def test_bad_data_blocks_and_datastores_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"unknown key data_collector\.collections\.m\.data\.pth"):
        parse_config({"data_collector": {"collections": {"m": {"data": {"pth": "/x"}}}}})
    with pytest.raises(ConfigError, match=r"datastores\.s: 'ftp://h/x' is not a folder"):
        parse_config({"datastores": {"s": "ftp://h/x"}})
    with pytest.raises(ConfigError, match="datastores must be a mapping"):
        parse_config({"datastores": ["s"]})


def test_a_data_path_needs_the_avro_exporter(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"model_inputs": {"data": {"path": str(tmp_path / "x")}}})
    config["exporter"] = {"type": "otlp"}
    with pytest.raises(ConfigError, match=r"model_inputs\.data\.path: a destination per "
                                          "collection needs exporter type avro, not 'otlp'"):
        oce.configure(config)


AZURE_DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: credit-endpoint
model: azureml:credit-model:3
code_configuration:
  code: ./onlinescoring
  scoring_script: score.py
environment: azureml:credit-env:1
instance_type: Standard_DS3_v2
instance_count: 2
request_settings: {request_timeout_ms: 5000}
liveness_probe: {initial_delay: 10}
environment_variables: {MODEL_FLAVOUR: gbm}
app_insights_enabled: true
data_collector:
  sampling_rate: 1.0
  collections:
    model_inputs:
      data:
        path: azureml://datastores/workspaceblobstore/paths/modelDataCollector/credit/inputs
        name: credit_inputs
        version: 1
      enabled: 'True'
    model_outputs:
      data:
        path: azureml://datastores/workspaceblobstore/paths/modelDataCollector/credit/outputs
        name: credit_outputs
        version: 1
      enabled: 'True'
datastores:                       # this project's keys may sit beside Azure's
  workspaceblobstore: STORE
exporter: {type: avro, destination: MAIN}
"""


def deployment_file(*, store: Path, main: Path) -> str:
    return AZURE_DEPLOYMENT.replace("STORE", str(store)).replace("MAIN", str(main))


def test_a_whole_azure_ml_deployment_file_is_a_configuration(tmp_path: Path) -> None:
    path = tmp_path / "deployment.yaml"
    path.write_text(deployment_file(store=tmp_path / "store", main=tmp_path / "main"))
    config = load_config(path)
    assert (config.endpoint, config.deployment) == ("credit-endpoint", "blue")
    assert config.destinations() == {
        "model_inputs": f"{tmp_path / 'store'}/modelDataCollector/credit/inputs",
        "model_outputs": f"{tmp_path / 'store'}/modelDataCollector/credit/outputs"}
    oce.configure(path)
    inputs = Collector(name="model_inputs")
    inputs.collect(pd.DataFrame({"age": [41]}))
    assert oce.flush()
    got = oce.load(str(tmp_path / "store" / "modelDataCollector" / "credit" / "inputs"),
                   endpoint="credit-endpoint", deployment="blue", collection="model_inputs")
    assert got["age"].tolist() == [41]


def test_a_deployment_file_still_refuses_typos_of_this_projects_keys(tmp_path: Path) -> None:
    text = deployment_file(store=tmp_path, main=tmp_path).replace("exporter:", "exporterr:")
    path = tmp_path / "deployment.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="unknown key exporterr .did you mean exporter?"):
        load_config(path)
    with pytest.raises(ConfigError, match="endpoint and endpoint_name both given"):
        parse_config({"endpoint_name": "a", "endpoint": "b"})
