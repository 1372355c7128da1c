"""Payload logging through WSGIMiddleware: the Flask example app under werkzeug's server.

The server runs in a thread of this process (one thread per request, as werkzeug's
threaded server does), so the pipeline is configured and flushed here directly.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

import otel_collector_ext as oce
from examples import flask_app  # a test dependency: missing flask fails, never skips
from otel_collector_ext.middleware.exchange import BodyBuffer
from otel_collector_ext.pipeline.sampling import sample_point
from tests.otel_collector_ext.middleware.test_middleware_asgi import (
    COLLECTIONS,
    FORBIDDEN,
    MAX_BODY,
    enabled_config,
)
from tests.support.middleware_servers import (
    UUID,
    abandon_upload,
    raw_exchange,
    raw_request,
    read_events_then_disconnect,
    response_header,
    serve_wsgi,
    wait_until,
)

HOSTILE_IDS = {
    "control": b"abc\x01def",
    "delete": b"abc\x7f",
    "escape": b"\x1b[31mred",
    "huge": b"b" * 10_000,
    "traversal": b"../../../../tmp/x",
    "slash": b"a/b",
}


def _load(data_dir: Path) -> dict[str, pd.DataFrame]:
    return {c: oce.load(str(data_dir), endpoint="ep", deployment="blue", collection=c)
            for c in COLLECTIONS}


def stored_body(data_dir: Path, record: pd.Series) -> bytes:
    """A record's body, inline or from its separate object."""
    if record["body_ref"] is None or pd.isna(record["body_ref"]):
        return record["body"]
    return (data_dir / record["body_ref"]).read_bytes()


def _records_of(data_dir: Path, collection: str, correlation_id: str) -> pd.DataFrame:
    oce.flush()
    frame = oce.load(str(data_dir), endpoint="ep", deployment="blue", collection=collection)
    return frame[frame["_correlation_id"] == correlation_id] if len(frame) else frame


@dataclass
class Scenario:
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    data_dir: Path = Path()
    notes: dict[str, Any] = field(default_factory=dict)

    def one(self, collection: str, correlation_id: str) -> pd.Series:
        frame = self.frames[collection]
        rows = frame[frame["_correlation_id"] == correlation_id]
        assert len(rows) == 1, f"{len(rows)} {collection} records for {correlation_id}"
        return rows.iloc[0]


def _post(client: httpx.Client, scenario: Scenario, kind: str, request_id: str | None,
          path: str, **request: Any) -> str:
    headers = {"X-Client": f"flask-{kind}", **FORBIDDEN, **request.pop("headers", {})}
    if request_id:
        headers["X-Request-ID"] = request_id
    response = client.post(path, headers=headers, **request)
    assert response.status_code == 200, response.text
    echoed = response.headers["x-request-id"]
    assert echoed == request_id if request_id else UUID.fullmatch(echoed)
    scenario.sent[echoed] = {"kind": kind, "path": path, "response": response.content, **request}
    return echoed


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    result = Scenario(data_dir=tmp_path_factory.mktemp("wsgi") / "collected")
    oce.configure(enabled_config(result.data_dir))
    big = os.urandom(6 * 1024 * 1024)
    result.notes["big"] = big
    with serve_wsgi(flask_app.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for request_id in ("f-json", None):
            _post(client, result, "json", request_id, "/score",
                  json={"columns": ["age", "income"], "data": [[50, 1000.0], [20, 5.0]]})
        for request_id in ("f-csv", None):
            _post(client, result, "csv", request_id, "/score/csv",
                  content=b"age,debt\n33,10\n", headers={"content-type": "text/csv"})
        for request_id in ("f-bin", None):
            _post(client, result, "binary", request_id, "/score/image",
                  content=b"\x89PNG\r\n\x1a\n" + bytes(range(256)),
                  headers={"content-type": "image/png"})
        for request_id in ("f-big", None):
            _post(client, result, "6mb", request_id, "/score/image", content=big,
                  headers={"content-type": "application/octet-stream"})

        def upload() -> Iterator[bytes]:
            for start in range(0, 512 * 1024, 32 * 1024):
                yield big[start:start + 32 * 1024]

        _post(client, result, "chunked", "f-chunked", "/score/image", content=upload(),
              headers={"content-type": "application/octet-stream"})
        with client.stream("POST", "/generate", json={"prompt": "p", "max_tokens": 4},
                           headers={"x-request-id": "f-sse"}) as response:
            result.notes["sse_full"] = response.read()
        result.notes["sse_events"] = read_events_then_disconnect(
            client, "/generate", {"prompt": "long", "max_tokens": 100_000, "interval_ms": 1},
            3, {"x-request-id": "f-sse-cut"})
        abandon_upload(url, "/score/image", 1_000_000, b"\x02" * 50_000,
                       {"x-request-id": b"f-upload-cut"})
        result.notes["hostile"] = {}
        for name, value in HOSTILE_IDS.items():
            raw = raw_exchange(url, raw_request(
                "POST", "/score", {"X-Request-Id": value, "Content-Type": b"application/json"},
                b'{"columns": ["age"], "data": [[3]]}'))
            assert raw.startswith(b"HTTP/1.1 200"), raw[:300]
            result.notes["hostile"][name] = response_header(raw, "x-request-id")
        # The disconnected exchanges end on the server's threads: wait for their records.
        for collection, cid in (("response", "f-sse-cut"), ("request", "f-upload-cut")):
            wait_until(lambda c=collection, i=cid: len(_records_of(result.data_dir, c, i)),
                       20, f"the {collection} record of {cid}")
        result.notes["still_serving"] = client.get("/health").status_code == 200
    assert oce.flush()
    result.frames = _load(result.data_dir)
    oce.shutdown()
    yield result


def test_the_four_collections_join_on_the_correlation_id(scenario: Scenario) -> None:
    ids = {cid for cid, info in scenario.sent.items()}
    assert len(ids) == 9
    for collection in COLLECTIONS:
        assert ids <= set(scenario.frames[collection]["_correlation_id"]), collection
    assert {"f-json", "f-csv", "f-bin", "f-big"} <= ids
    inputs = scenario.frames["model_inputs"]
    assert sorted(inputs[inputs["_correlation_id"] == "f-json"]["age"]) == [20, 50]


def test_bodies_headers_and_status_are_recorded(scenario: Scenario) -> None:
    for cid, sent in scenario.sent.items():
        request, response = scenario.one("request", cid), scenario.one("response", cid)
        assert request["method"] == "POST" and request["path"] == sent["path"]
        assert response["status"] == 200 and response["body"] == sent["response"]
        if sent["kind"] in ("6mb", "chunked"):
            continue
        if "content" in sent:
            assert request["body"] == sent["content"]
        else:
            assert json.loads(request["body"]) == sent["json"]
        assert request["headers"]["x-client"] == f"flask-{sent['kind']}"
        for headers in (request["headers"], response["headers"]):
            assert not set(headers) & set(FORBIDDEN)
        assert response["headers"]["x-request-id"] == cid
    assert scenario.one("request", "f-bin")["content_type"] == "image/png"


def test_a_6mb_body_round_trips_byte_exact_through_its_reference(scenario: Scenario) -> None:
    big = scenario.notes["big"]
    for cid in [c for c, s in scenario.sent.items() if s["kind"] == "6mb"]:
        request = scenario.one("request", cid)
        assert request["body"] is None and request["body_size"] == len(big)
        stored = stored_body(scenario.data_dir, request)
        assert hashlib.sha256(stored).digest() == hashlib.sha256(big).digest()


def test_a_chunked_upload_is_recorded_whole(scenario: Scenario) -> None:
    request = scenario.one("request", "f-chunked")
    assert stored_body(scenario.data_dir, request) == scenario.notes["big"][:512 * 1024]
    assert "incomplete" not in request["flags"] and not request["truncated"]


def test_a_streamed_response_keeps_the_context_in_its_generator(scenario: Scenario) -> None:
    expected = b"".join(f"data: tok{i}\n\n".encode() for i in range(4))
    assert scenario.notes["sse_full"] == expected
    response = scenario.one("response", "f-sse")
    assert response["body"] == expected and "streamed" in response["flags"]
    # model_outputs is collected inside the generator, while the server iterates it
    assert scenario.one("model_outputs", "f-sse")["text"] == "tok0 tok1 tok2 tok3"


def test_a_client_leaving_a_stream_is_flagged_without_harm(scenario: Scenario) -> None:
    assert scenario.notes["sse_events"] == [b"data: tok0", b"data: tok1", b"data: tok2"]
    assert scenario.notes["still_serving"]
    response = scenario.one("response", "f-sse-cut")
    assert {"client_disconnect", "incomplete"} <= set(response["flags"])
    assert response["body"].startswith(b"data: tok0\n\n")


def test_a_client_leaving_mid_upload_is_flagged_without_harm(scenario: Scenario) -> None:
    request = scenario.one("request", "f-upload-cut")
    assert {"client_disconnect", "incomplete"} <= set(request["flags"])
    assert request["body"] == b"\x02" * 50_000 and request["body_size"] == 50_000
    assert scenario.one("response", "f-upload-cut")["status"] == 400


def test_hostile_request_ids_are_replaced(scenario: Scenario) -> None:
    for name, cid in scenario.notes["hostile"].items():
        assert cid and UUID.fullmatch(cid), (name, cid)
        assert "request_id_invalid" in scenario.one("request", cid)["flags"]
        assert len(scenario.frames["model_inputs"].query("_correlation_id == @cid")) == 1
    for path in scenario.data_dir.rglob("*"):
        assert "tmp" not in path.relative_to(scenario.data_dir).parts


def test_sampling_keeps_or_drops_all_four_records_of_a_request(tmp_path: Path) -> None:
    data_dir = tmp_path / "collected"
    oce.configure(enabled_config(data_dir, sampling_rate=0.5))
    ids = [f"w-sampled-{i}" for i in range(40)]
    with serve_wsgi(flask_app.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for cid in ids:
            response = client.post("/score", headers={"x-request-id": cid},
                                   json={"columns": ["age"], "data": [[1]]})
            assert response.status_code == 200 and response.headers["x-request-id"] == cid
    assert oce.flush()
    frames = _load(data_dir)
    kept = {cid for cid in ids if sample_point(cid) < 0.5}
    assert 0 < len(kept) < len(ids)
    for collection in COLLECTIONS:
        assert set(frames[collection]["_correlation_id"]) == kept, collection


def test_a_body_over_the_maximum_is_truncated_and_flagged(tmp_path: Path) -> None:
    data_dir = tmp_path / "collected"
    config = enabled_config(data_dir)
    config["data_collector"]["request_logging"].update(
        inline_limit_bytes=64 * 1024, max_body_bytes=256 * 1024)
    oce.configure(config)
    body = os.urandom(MAX_BODY // 8)
    with serve_wsgi(flask_app.app) as url:
        response = httpx.post(url + "/score/image", content=body,
                              headers={"x-request-id": "w-over"}, timeout=30)
    assert response.status_code == 200
    assert oce.flush()
    request = _load(data_dir)["request"].set_index("_correlation_id").loc["w-over"]
    assert request["truncated"] and "truncated" in request["flags"]
    assert request["body_size"] == len(body)
    assert stored_body(data_dir, request) == body[:256 * 1024]


def test_a_broken_configuration_never_breaks_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oce.shutdown()
    bad = tmp_path / "bad.yaml"
    bad.write_text("data_collector: {no_such_key: 1}\n")
    monkeypatch.setenv("OTEL_COLLECTOR_EXT_CONFIG", str(bad))
    with serve_wsgi(flask_app.app) as url:
        response = httpx.get(url + "/health", headers={"x-request-id": "still-ok"}, timeout=10)
    assert response.status_code == 200 and response.headers["x-request-id"] == "still-ok"


def test_a_body_buffer_holds_at_most_its_memory_limit_and_spills_the_rest() -> None:
    data = os.urandom(6 * 1024 * 1024)
    buffer = BodyBuffer(memory_limit=1024 * 1024, max_body=5 * 1024 * 1024)
    try:
        for start in range(0, len(data), 64 * 1024):
            buffer.add(data[start:start + 64 * 1024])
            assert buffer.in_memory <= 1024 * 1024
        assert buffer.spilled and buffer.size == len(data) and buffer.truncated
        assert buffer.value() == data[:5 * 1024 * 1024]
    finally:
        buffer.close()
    small = BodyBuffer(memory_limit=1024, max_body=4096)
    small.add(b"x" * 1000)
    assert not small.spilled and small.value() == b"x" * 1000 and not small.truncated


def test_the_documented_flask_example_works(tmp_path: Path) -> None:
    from tests.otel_collector_ext.middleware.test_middleware_asgi import _doc_snippet

    oce.configure(enabled_config(tmp_path / "collected"))
    namespace: dict[str, Any] = {"__name__": "__main__"}  # Flask(__name__) needs a module
    exec(_doc_snippet("python", "WSGIMiddleware"), namespace)
    response = namespace["app"].test_client().post(
        "/score", json={"columns": ["a", "b"], "data": [[1, 2]]}, headers={"x-request-id": "doc-2"})
    assert response.get_json() == {"scores": [3]} and response.headers["x-request-id"] == "doc-2"
    assert oce.flush()
    frames = _load(tmp_path / "collected")
    for collection in COLLECTIONS:
        assert frames[collection]["_correlation_id"].tolist() == ["doc-2"], collection


def test_the_query_string_is_recorded_only_when_asked(tmp_path: Path) -> None:
    data_dir = tmp_path / "collected"
    config = enabled_config(data_dir)
    config["data_collector"]["request_logging"]["capture_query"] = True
    oce.configure(config)
    with serve_wsgi(flask_app.app) as url:
        response = httpx.post(url + "/score?model=v2&note=caf%C3%A9", timeout=10,
                              json={"columns": ["age"], "data": [[1]]},
                              headers={"x-request-id": "w-query"})
    assert response.status_code == 200
    assert oce.flush()
    request = _load(data_dir)["request"].set_index("_correlation_id").loc["w-query"]
    assert request["path"] == "/score" and request["query"] == "model=v2&note=caf%C3%A9"
