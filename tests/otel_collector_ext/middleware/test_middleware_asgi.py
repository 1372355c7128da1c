"""Payload logging through ASGIMiddleware: the FastAPI example app under a real uvicorn.

One module-scoped scenario starts examples/fastapi_app.py in a child process, sends
real traffic with httpx (and raw sockets for what httpx refuses to send), stops the
server so it flushes, and reads everything back with `load`; the tests check it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

import otel_collector_ext as oce
from otel_collector_ext import Collector
from otel_collector_ext.middleware import ASGIMiddleware
from otel_collector_ext.pipeline.sampling import sample_point
from tests.conftest import ROOT, local_config
from tests.support.middleware_servers import (
    UUID,
    abandon_upload,
    raw_exchange,
    raw_request,
    read_events_then_disconnect,
    response_header,
    serve_asgi,
    wait_until,
)

APP = "examples.fastapi_app:app"
COLLECTIONS = ("request", "response", "model_inputs", "model_outputs")
FORBIDDEN = {"authorization": "Bearer s3cr3t", "cookie": "session=s3cr3t",
             "proxy-authorization": "Basic s3cr3t", "x-api-key": "s3cr3t"}
MAX_BODY = 7 * 1024 * 1024
# Records wait in the queue until the shutdown: only the middleware's flush during the
# ASGI lifespan shutdown saves them from uvicorn's final SIGTERM.
SLOW_BATCHES = {"batch_delay_ms": 60_000}
HOSTILE_IDS = {
    "huge": b"a" * 10_000,
    "traversal": b"../../../etc/passwd",
    "slash": b"tenant/../../x",
    "backslash": b"..\\..\\windows",
    "space": b"abc def",
    "obs-text": b"id-\xff\xfe",
    "empty": b"",
}


def enabled_config(data_dir: Path, *, batch_delay_ms: int = 50, **data_collector: Any
                   ) -> dict[str, Any]:
    """All four collections on; forbidden headers listed too, to show they are ignored."""
    return local_config(
        data_dir,
        batch={"schedule_delay_millis": batch_delay_ms},
        data_collector={
            "collections": {name: {"enabled": True} for name in COLLECTIONS},
            "request_logging": {
                "capture_headers": ["X-Client", "user-agent", "Content-Type", "x-request-id",
                                    *FORBIDDEN],
                "max_body_bytes": MAX_BODY,
            },
            **data_collector,
        },
    )


@dataclass
class Scenario:
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # correlation id → details
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    data_dir: Path = Path()
    notes: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    stderr: str = ""

    def rows(self, collection: str, correlation_id: str) -> pd.DataFrame:
        frame = self.frames[collection]
        return frame[frame["_correlation_id"] == correlation_id]

    def one(self, collection: str, correlation_id: str) -> pd.Series:
        rows = self.rows(collection, correlation_id)
        assert len(rows) == 1, f"{len(rows)} {collection} records for {correlation_id}"
        return rows.iloc[0]


def _load(data_dir: Path) -> dict[str, pd.DataFrame]:
    return {c: oce.load(str(data_dir), endpoint="ep", deployment="blue", collection=c)
            for c in COLLECTIONS}


def _score(client: httpx.Client, scenario: Scenario, kind: str, request_id: str | None,
           **request: Any) -> str:
    headers = {"X-Client": f"tests-{kind}", "X-Not-Listed": "nope", **FORBIDDEN,
               **request.pop("headers", {})}
    if request_id:
        headers["x-request-id"] = request_id
    path = request.pop("path")
    response = client.post(path, headers=headers, **request)
    assert response.status_code == 200, response.text
    echoed = response.headers["x-request-id"]
    if request_id:
        assert echoed == request_id
    elif "traceparent" not in headers:
        assert UUID.fullmatch(echoed)
    scenario.sent[echoed] = {"kind": kind, "path": path, "response": response.content,
                             **request}
    return echoed


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    work = tmp_path_factory.mktemp("asgi")
    result = Scenario(data_dir=work / "collected")
    csv_body = b"age,income,debt\n30,50000,1200\n41,72000,0\n"
    big = os.urandom(6 * 1024 * 1024)
    with serve_asgi(APP, enabled_config(result.data_dir, **SLOW_BATCHES), work) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(4):
            for request_id in (f"json-{i}", None):
                _score(client, result, "json", request_id, path="/score",
                       json={"columns": ["age", "income", "debt"], "data": [[30 + i, 1e4, 5]]})
            for request_id in (f"csv-{i}", None):
                _score(client, result, "csv", request_id, path="/score/csv", content=csv_body,
                       headers={"content-type": "text/csv"})
            for request_id in (f"bin-{i}", None):
                _score(client, result, "binary", request_id, path="/score/image",
                       content=bytes(range(256)) * (i + 1),
                       headers={"content-type": "application/octet-stream"})
        for request_id in ("big-1", None):
            _score(client, result, "6mb", request_id, path="/score/image", content=big,
                   headers={"content-type": "image/png"})
        result.notes["big"] = big
        result.notes["oversized"] = os.urandom(MAX_BODY + 1024 * 1024)
        _score(client, result, "oversized", "oversized-1", path="/score/image",
               content=result.notes["oversized"],
               headers={"content-type": "application/octet-stream"})

        def upload() -> Any:
            for start in range(0, 1024 * 1024, 64 * 1024):
                yield big[start:start + 64 * 1024]

        _score(client, result, "chunked", "chunked-1", path="/score/image", content=upload(),
               headers={"content-type": "application/octet-stream"})
        _score(client, result, "query", "query-1", path="/score?api_key=s3cr3t&x=1",
               json={"columns": ["age"], "data": [[1]]})
        trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        result.notes["traceparent_id"] = _score(
            client, result, "traceparent", None, path="/score",
            json={"columns": ["age"], "data": [[2]]},
            headers={"traceparent": f"00-{trace}-{parent}-01"})

        # A complete server-sent-events stream.
        with client.stream("POST", "/generate", json={"prompt": "hi", "max_tokens": 5},
                           headers={"x-request-id": "sse-full"}) as response:
            result.notes["sse_full"] = response.read()
        # A stream far longer than the test (10,000 tokens at 5 ms) that the client
        # leaves after 3 events: only pass-through streaming lets it see them at all.
        result.notes["sse_events"] = read_events_then_disconnect(
            client, "/generate", {"prompt": "long", "max_tokens": 10_000, "interval_ms": 5},
            3, {"x-request-id": "sse-cut"})
        # A client that declares 1 MB, sends 100 kB and leaves.
        abandon_upload(server.url, "/score/image", 1_000_000, b"\x01" * 100_000,
                       {"x-request-id": b"upload-cut"})
        # The server still serves, promptly.
        result.notes["after_disconnects"] = wait_until(
            lambda: httpx.get(server.url + "/health", timeout=5).status_code == 200,
            10, "the server to answer after the disconnects")

        result.notes["hostile"] = {}
        for name, value in HOSTILE_IDS.items():
            raw = raw_exchange(server.url, raw_request(
                "POST", "/score", {"x-request-id": value, "content-type": b"application/json",
                                   "x-client": b"v" * 5_000},
                b'{"columns": ["age"], "data": [[3]]}'))
            assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
            result.notes["hostile"][name] = response_header(raw, "x-request-id")

        result.exit_code = server.stop()
        result.stderr = server.stderr
    result.frames = _load(result.data_dir)
    return result


PLAIN_KINDS = {"json", "csv", "binary", "6mb", "oversized", "chunked", "query", "traceparent"}


def plain_ids(scenario: Scenario) -> list[str]:
    return [cid for cid, info in scenario.sent.items() if info["kind"] in PLAIN_KINDS]


def test_the_server_shuts_down_gracefully_after_the_scenario(scenario: Scenario) -> None:
    # uvicorn ends a graceful SIGTERM shutdown by re-raising SIGTERM: no atexit runs, so
    # the records below were flushed by the middleware during the lifespan shutdown.
    assert scenario.exit_code == -signal.SIGTERM, scenario.stderr
    assert scenario.notes["after_disconnects"]


def test_every_request_yields_one_record_in_each_collection(scenario: Scenario) -> None:
    ids = plain_ids(scenario)
    assert len(ids) == 30
    for collection in COLLECTIONS:
        for cid in ids:
            assert len(scenario.rows(collection, cid)) >= 1, (collection, cid)
    requests = scenario.frames["request"]
    health = requests[requests["path"] == "/health"]
    assert len(health) >= 2 and (health["method"] == "GET").all()  # readiness polls
    # scored requests + 2 SSE + 1 abandoned upload + the hostile ones
    assert len(requests) - len(health) == len(ids) + 3 + len(HOSTILE_IDS)
    assert len(scenario.frames["response"]) == len(requests)
    assert requests["_correlation_id"].is_unique


def test_the_four_collections_join_on_the_correlation_id(scenario: Scenario) -> None:
    """Including the sync /score handler, which FastAPI runs in its thread pool."""
    ids = set(plain_ids(scenario))
    joined = scenario.frames["request"].merge(
        scenario.frames["response"], on="_correlation_id", suffixes=("_req", "_resp"))
    joined = joined[joined["_correlation_id"].isin(ids)]
    assert set(joined["_correlation_id"]) == ids
    for collection in ("model_inputs", "model_outputs"):
        assert ids <= set(scenario.frames[collection]["_correlation_id"])
    inputs = scenario.frames["model_inputs"]
    json_rows = inputs[inputs["_correlation_id"].isin(
        [c for c, i in scenario.sent.items() if i["kind"] == "json"])]
    assert sorted(json_rows["age"]) == [30, 30, 31, 31, 32, 32, 33, 33]


def test_client_request_ids_are_used_and_generated_ids_echoed(scenario: Scenario) -> None:
    requests = scenario.frames["request"]
    assert {"json-0", "csv-3", "bin-2", "big-1"} <= set(requests["_correlation_id"])
    generated = [c for c in plain_ids(scenario) if UUID.fullmatch(c)]
    assert len(generated) == 13


def test_traceparent_gives_the_id_when_there_is_no_request_id(scenario: Scenario) -> None:
    assert scenario.notes["traceparent_id"] == "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"
    assert len(scenario.rows("model_inputs", scenario.notes["traceparent_id"])) == 1


def test_bodies_methods_paths_and_status_are_recorded(scenario: Scenario) -> None:
    for cid in plain_ids(scenario):
        sent = scenario.sent[cid]
        if sent["kind"] in ("6mb", "oversized", "chunked"):
            continue
        request, response = scenario.one("request", cid), scenario.one("response", cid)
        assert request["method"] == "POST" and response["status"] == 200
        assert request["path"] == sent["path"].split("?")[0]
        if "content" in sent:
            assert request["body"] == sent["content"]
            assert request["body_size"] == len(sent["content"])
        else:
            assert json.loads(request["body"]) == sent["json"]
        assert response["body"] == sent["response"]
        assert response["latency_ms"] > 0 and pd.isna(request["status"])
        assert request["kind"] == "bytes" and not request["truncated"]
    csv = scenario.one("request", "csv-0")
    assert csv["content_type"] == "text/csv" and csv["body"].startswith(b"age,income")
    binary = scenario.one("request", "bin-1")
    assert binary["content_type"] == "application/octet-stream"
    assert binary["body"] == bytes(range(256)) * 2


def test_the_query_string_is_not_recorded_by_default(scenario: Scenario) -> None:
    request = scenario.one("request", "query-1")
    assert request["path"] == "/score" and pd.isna(request["query"])
    assert "s3cr3t" not in repr(scenario.frames["request"].drop(columns=["body"]).to_dict())


def test_a_6mb_body_round_trips_byte_exact_through_its_reference(scenario: Scenario) -> None:
    big = scenario.notes["big"]
    for cid in [c for c, i in scenario.sent.items() if i["kind"] == "6mb"]:
        request = scenario.one("request", cid)
        assert request["body"] is None and request["body_size"] == len(big)
        assert ".bodies/" in request["body_ref"] and ".." not in request["body_ref"]
        stored = (scenario.data_dir / request["body_ref"]).read_bytes()
        assert hashlib.sha256(stored).digest() == hashlib.sha256(big).digest()
        assert request["content_type"] == "image/png"


def test_a_body_over_the_maximum_is_truncated_and_flagged(scenario: Scenario) -> None:
    oversized = scenario.notes["oversized"]
    request = scenario.one("request", "oversized-1")
    assert request["truncated"] and "truncated" in request["flags"]
    assert request["body_size"] == len(oversized)
    stored = (scenario.data_dir / request["body_ref"]).read_bytes()
    assert stored == oversized[:MAX_BODY]
    response = scenario.one("response", "oversized-1")
    assert response["status"] == 200 and not response["truncated"]


def test_a_chunked_upload_is_recorded_whole(scenario: Scenario) -> None:
    request = scenario.one("request", "chunked-1")
    assert request["body"] == scenario.notes["big"][:1024 * 1024]
    assert not request["truncated"] and "incomplete" not in request["flags"]


def test_forbidden_headers_are_never_captured_and_listed_ones_are(scenario: Scenario) -> None:
    for collection in ("request", "response"):
        for headers in scenario.frames[collection]["headers"]:
            assert not set(headers) & set(FORBIDDEN), headers
            assert "x-not-listed" not in headers
            assert not any("s3cr3t" in v for v in headers.values())
    request = scenario.one("request", "json-1")
    assert request["headers"]["x-client"] == "tests-json"
    assert request["headers"]["x-request-id"] == "json-1"
    assert request["headers"]["user-agent"].startswith("python-httpx")
    response = scenario.one("response", "json-1")
    assert response["headers"]["content-type"] == "application/json"
    assert response["headers"]["x-request-id"] == "json-1"


def test_a_streamed_response_passes_through_and_is_recorded(scenario: Scenario) -> None:
    expected = b"".join(f"data: tok{i}\n\n".encode() for i in range(5))
    assert scenario.notes["sse_full"] == expected
    response = scenario.one("response", "sse-full")
    assert response["body"] == expected and response["content_type"].startswith(
        "text/event-stream")
    assert "streamed" in response["flags"] and "incomplete" not in response["flags"]
    assert scenario.one("model_outputs", "sse-full")["text"] == "tok0 tok1 tok2 tok3 tok4"


def test_a_client_leaving_a_stream_is_flagged_without_harm(scenario: Scenario) -> None:
    assert scenario.notes["sse_events"] == [b"data: tok0", b"data: tok1", b"data: tok2"]
    response = scenario.one("response", "sse-cut")
    assert {"client_disconnect", "incomplete"} <= set(response["flags"])
    assert response["body"].startswith(b"data: tok0\n\ndata: tok1\n\ndata: tok2\n\n")
    assert response["body_size"] < 10_000 * len(b"data: tokNNNN\n\n")
    assert "client_disconnect" in scenario.one("request", "sse-cut")["flags"]


def test_a_client_leaving_mid_upload_is_flagged_without_harm(scenario: Scenario) -> None:
    request = scenario.one("request", "upload-cut")
    assert {"client_disconnect", "incomplete"} <= set(request["flags"])
    assert 0 < request["body_size"] <= 100_000
    assert request["body"] == b"\x01" * request["body_size"]
    assert len(scenario.rows("model_inputs", "upload-cut")) == 0


def test_hostile_request_ids_are_replaced_and_never_reach_a_path(scenario: Scenario) -> None:
    echoed = scenario.notes["hostile"]
    for name, cid in echoed.items():
        assert cid and UUID.fullmatch(cid), (name, cid)
        request = scenario.one("request", cid)
        assert "request_id_invalid" in request["flags"], name
        # a huge allow-listed header value is cut, and says so
        assert len(request["headers"]["x-client"]) == 4096
        assert "header_truncated" in request["flags"]
        assert len(scenario.rows("model_inputs", cid)) == 1
    for path in scenario.data_dir.rglob("*"):
        relative = str(path.relative_to(scenario.data_dir))
        assert "etc" not in relative.split(os.sep) and "windows" not in relative
        assert "aaaaaaaaaa" not in relative
    ids = set(scenario.frames["request"]["_correlation_id"])
    assert not {v.decode("latin-1") for v in HOSTILE_IDS.values()} & ids


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, pd.DataFrame]]:
    work = tmp_path_factory.mktemp("asgi-sampled")
    data_dir = work / "collected"
    ids = [f"sampled-{i}" for i in range(40)]
    with serve_asgi(APP, enabled_config(data_dir, sampling_rate=0.5, **SLOW_BATCHES), work) as server, \
            httpx.Client(base_url=server.url, timeout=30) as client:
        for cid in ids:
            response = client.post("/score", headers={"x-request-id": cid},
                                   json={"columns": ["age"], "data": [[1], [2]]})
            assert response.status_code == 200 and response.headers["x-request-id"] == cid
        assert server.stop() == -signal.SIGTERM
    return ids, _load(data_dir)


def test_sampling_keeps_or_drops_all_four_records_of_a_request(
    sampled: tuple[list[str], dict[str, pd.DataFrame]],
) -> None:
    ids, frames = sampled
    kept = {cid for cid in ids if sample_point(cid) < 0.5}
    assert 0 < len(kept) < len(ids)  # the ids exercise both outcomes
    for collection in COLLECTIONS:
        frame = frames[collection]
        if "path" in frame:  # the readiness polls are requests too
            frame = frame[frame["path"] != "/health"]
        assert set(frame["_correlation_id"]) == kept, collection
    assert len(frames["model_inputs"]) == 2 * len(kept)


def _doc_snippet(language: str, contains: str) -> str:
    text = (ROOT / "docs" / "payload-logging.md").read_text()
    blocks = text.split("```" + language + "\n")[1:]
    return next(b.split("```", 1)[0] for b in blocks if contains in b)


def test_the_documented_fastapi_example_works(tmp_path: Path) -> None:
    oce.configure(enabled_config(tmp_path / "collected"))
    namespace: dict[str, Any] = {}
    exec(_doc_snippet("python", "ASGIMiddleware"), namespace)

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=namespace["app"])
        async with httpx.AsyncClient(transport=transport, base_url="http://doc") as client:
            return await client.post("/score", json={"columns": ["a", "b"], "data": [[1, 2]]},
                                     headers={"x-request-id": "doc-1"})

    response = asyncio.run(call())
    assert response.json() == {"scores": [3.0]} and response.headers["x-request-id"] == "doc-1"
    assert oce.flush()
    frames = _load(tmp_path / "collected")
    for collection in COLLECTIONS:
        assert frames[collection]["_correlation_id"].tolist() == ["doc-1"], collection


def test_excluded_paths_get_an_id_but_no_records(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    def ok(request: Any) -> PlainTextResponse:
        Collector(name="model_inputs").collect({"path": request.url.path})
        return PlainTextResponse("ok")

    app = ASGIMiddleware(Starlette(routes=[
        Route(p, ok) for p in ("/health", "/internal/ready", "/score")]))
    oce.configure(enabled_config(tmp_path / "collected",
                                 request_logging={"capture_headers": [],
                                                  "exclude_paths": ["/health", "/internal/*"]}))

    async def call(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(path)

    for path in ("/health", "/internal/ready", "/score"):
        response = asyncio.run(call(path))
        assert response.status_code == 200 and response.headers["x-request-id"]
    assert oce.flush()
    frames = _load(tmp_path / "collected")
    assert frames["request"]["path"].tolist() == ["/score"]
    assert frames["response"]["path"].tolist() == ["/score"]
    assert len(frames["model_inputs"]) == 3  # custom logging is not affected


def test_exclude_paths_must_be_paths() -> None:
    with pytest.raises(oce.ConfigError, match="exclude_paths"):
        oce.configure({"data_collector": {"request_logging": {"exclude_paths": ["health"]}}})
