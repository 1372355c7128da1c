"""Real servers, SIGTERMed right after their last answer, keep every record; a broken
configuration stops them from starting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

import otel_collector_ext as oce
from tests.conftest import run_python
from tests.support.app_servers import SERVERS, run_app, start_app, wait_for

COLLECTIONS = ("request", "response", "model_inputs", "model_outputs")
REQUESTS = 20


def app_config(destination: Path, **data_collector: Any) -> dict[str, Any]:
    return {
        "endpoint": "shop",
        "deployment": "blue",
        "exporter": {"type": "avro", "destination": str(destination)},
        # Nothing is exported before shutdown unless a drain does it.
        "batch": {"schedule_delay_millis": 3_600_000},
        "data_collector": {
            "collections": {name: {"enabled": True} for name in COLLECTIONS},
            "request_logging": {"exclude_paths": ["/health"]},
            **data_collector,
        },
    }


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_sigterm_right_after_the_requests_keeps_every_record(server: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    ids = [f"{server}-{i}" for i in range(REQUESTS)]
    with run_app(server, app_config(data), tmp_path / "run") as app:
        with httpx.Client(base_url=app.url, timeout=30) as client:
            for i, request_id in enumerate(ids):
                answer = client.post("/score", headers={"x-request-id": request_id},
                                     json={"columns": ["age", "income"], "data": [[30 + i, 1e5]]})
                assert answer.status_code == 200, answer.text
            # On the same connection: a server serves a connection's requests in turn, so
            # the last /score has finished (records emitted) once this is answered.
            assert client.get("/health").status_code == 200
        code = app.sigterm_and_wait()
        log = app.log()
    assert code in (0, -15), log  # gunicorn exits 0; the others die of SIGTERM
    for collection in COLLECTIONS:
        frame = oce.load(str(data), endpoint="shop", deployment="blue", collection=collection)
        assert sorted(frame["_correlation_id"]) == sorted(ids), (collection, log)
    inputs = oce.load(str(data), endpoint="shop", deployment="blue", collection="model_inputs")
    assert sorted(inputs["age"]) == list(range(30, 30 + REQUESTS))


def answers_health(url: str) -> bool:
    try:
        return bool(url) and httpx.get(url + "/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn-sync", "flask-run"])
def test_a_broken_configuration_stops_the_server_from_starting(server: str,
                                                               tmp_path: Path) -> None:
    config = app_config(tmp_path / "data")
    config["data_collector"]["request_logging"]["capture_querry"] = False  # capture_query
    app, sock = start_app(server, config, tmp_path / "run")
    try:
        # Either it exits, or it serves (the trap: /health fine, every /score failing).
        wait_for(lambda: app.process.poll() is not None or answers_health(app.url or app.logged_url()),
                 60, "the server to exit or serve", app, exit_fails=False)
        serving = app.process.poll() is None
    finally:
        if sock is not None:
            sock.close()
        if app.process.poll() is None:
            app.process.kill()
        app.process.wait()
    log = app.log()
    assert not serving, f"{server} started with a broken configuration:\n{log}"
    assert app.process.returncode != 0
    assert "unknown key data_collector.request_logging.capture_querry" in log, log
    assert "did you mean capture_query?" in log
    assert not (tmp_path / "data").exists()


def test_azureml_init_fails_on_a_broken_configuration(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("data_collector:\n  collections:\n    model_inputs: {enabeld: true}\n")
    code = "import examples.azureml_score as score\nscore.init()\n"
    done = run_python(code, OTEL_COLLECTOR_EXT_CONFIG=str(config))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("otel_collector_ext.pipeline.config.ConfigError: ")
    assert (f"{config}: unknown key data_collector.collections.model_inputs.enabeld "
            "(did you mean enabled?") in last
