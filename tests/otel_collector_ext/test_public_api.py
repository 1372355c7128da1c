"""The public surface: exactly what is exported, typed, and what it refuses."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pandas as pd
import pytest

import otel_collector_ext as oce
import otel_collector_ext.middleware
from exporters import contract as A
from otel_collector_ext import Collector


def test_the_exported_surface_is_exactly_this() -> None:
    assert sorted(oce.__all__) == [
        "BasicCorrelationContext", "Collector", "Config", "ConfigError", "CorrelationContext",
        "configure", "correlation_scope", "flush", "join_inputs_outputs", "load",
        "logger_provider", "monitor",
        "shutdown", "stats",
    ]
    assert sorted(otel_collector_ext.middleware.__all__) == ["ASGIMiddleware", "WSGIMiddleware"]
    for module in (oce, otel_collector_ext.middleware):
        for name in module.__all__:
            assert getattr(module, name) is not None
    # No module __getattr__: type checkers would see every attribute, even a typo, as Any.
    assert "__getattr__" not in vars(oce)


@pytest.mark.parametrize("package", ["otel_collector_ext", "exporters"])
def test_both_packages_ship_their_type_hints(package: str) -> None:
    assert importlib.resources.files(package).joinpath("py.typed").is_file()


def test_configure_returns_nothing_internal(data_dir: Path) -> None:
    from tests.conftest import local_config

    assert oce.configure(local_config(data_dir)) is None


def test_extra_attributes_cannot_move_a_record(pipeline: object, data_dir: Path) -> None:
    c = Collector(name="model_inputs")
    for key, value in [(A.ENDPOINT, "other-team"), (A.DEPLOYMENT, "../x"),
                       (A.COLLECTION, "model_outputs"), (A.CORRELATION_ID, "forged")]:
        with pytest.raises(ValueError, match=f"attributes may not set {key}"):
            c.collect(pd.DataFrame({"x": [1]}), attributes={key: value})
    errors: list[Exception] = []
    quiet = Collector(name="model_inputs", on_error=errors.append)
    quiet.collect(pd.DataFrame({"x": [2]}), attributes={A.ENDPOINT: "e", A.MODEL_VERSION: "9"})
    assert "ml.inference.endpoint, ml.inference.model_version" in str(errors[0])
    quiet.collect(pd.DataFrame({"x": [3]}), attributes={"team.note": "kept"})
    assert oce.flush()
    assert oce.stats()["records.dropped{collection=model_inputs,reason=invalid}"] == 5
    stored = sorted(p.relative_to(data_dir).parts[:3] for p in data_dir.rglob("*.avro"))
    assert stored == [("ep", "blue", "model_inputs")]
    got = oce.load(str(data_dir), endpoint="ep", deployment="blue", collection="model_inputs")
    assert got["x"].tolist() == [3]
