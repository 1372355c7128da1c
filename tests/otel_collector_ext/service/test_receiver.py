"""The OTLP receiver on real sockets: both transports and encodings, partial success, limits,
malformed input, auth, TLS, back-pressure and health. The service runs in this process
(`run_service`); the end-to-end tests run it as a separate process."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import random
import socket
import ssl
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

import otel_collector_ext as oce
from exporters import contract as A
from otel_collector_ext.service.app import Service, run_service
from otel_collector_ext.service.receiver.core import MiB
from tests.support.certs import self_signed_cert
from tests.support.helpers_otlp import (
    T0,
    deep_request,
    grpc_export,
    http_get,
    http_post,
    nested_value,
    record,
    request,
    rows_request,
)

Start = Callable[..., tuple[Service, Path]]


def service_config(destination: Path, *, receiver: dict[str, Any] | None = None,
                   batch: dict[str, Any] | None = None) -> dict[str, Any]:
    otlp = {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"},
                          "http": {"endpoint": "127.0.0.1:0"}}}
    for key, value in (receiver or {}).items():
        if key == "protocols":
            for proto, settings in value.items():
                otlp["protocols"][proto].update(settings)
        else:
            otlp[key] = value
    return {
        "receivers": {"otlp": otlp},
        "processors": {"batch": batch or {"timeout": "50ms"}},
        "exporters": {"avro": {"destination": str(destination)}},
        "service": {"pipelines": {"logs": {"receivers": ["otlp"], "processors": ["batch"],
                                           "exporters": ["avro"]}}},
    }


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    started: list[Service] = []

    def _start(**options: Any) -> tuple[Service, Path]:
        destination = tmp_path / f"store{len(started)}"
        service = run_service(service_config(destination, **options))
        started.append(service)
        return service, destination

    yield _start
    for service in started:
        service.stop(10)


def stored_ids(service: Service, destination: Path, collection: str = "inputs") -> list[str]:
    service.stop(10)
    frame = oce.load(str(destination), endpoint="ep", deployment="dep", collection=collection)
    return sorted(frame["_correlation_id"]) if len(frame) else []


def otlp_json(data: bytes) -> bytes:
    """The OTLP/JSON form of a protobuf request: protobuf JSON, but hex trace and span ids."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    message = ExportLogsServiceRequest.FromString(data)
    document = json_format.MessageToDict(message)
    for rl in document.get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for lr in sl.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in lr:
                        lr[key] = base64.b64decode(lr[key]).hex()
    return json.dumps(document).encode()


def assert_ok(address: tuple[str, int], http_address: tuple[str, int], prefix: str) -> None:
    """The server still accepts valid traffic on both transports."""
    code, details, _, _ = grpc_export(address, rows_request(2, prefix=prefix + "g"))
    assert code is grpc.StatusCode.OK, details
    status, _, body = http_post(http_address, rows_request(2, prefix=prefix + "h"))
    assert status == 200, body


# ---------------------------------------------------------------------------


def test_both_transports_and_every_encoding_are_stored(start: Start) -> None:
    service, destination = start()
    g, h = service.addresses["otlp/grpc"], service.addresses["otlp/http"]
    traced = request([record({"i": 1}, A.KIND_ROW, correlation_id="json-traced",
                             trace_id=0x0123456789ABCDEF0123456789ABCDEF)]).SerializeToString()
    calls = [
        grpc_export(g, rows_request(3, prefix="grpc"))[0] is grpc.StatusCode.OK,
        grpc_export(g, rows_request(3, prefix="grpcgz"), compression=grpc.Compression.Gzip)[0]
        is grpc.StatusCode.OK,
        http_post(h, rows_request(3, prefix="pb"))[0] == 200,
        http_post(h, gzip.compress(rows_request(3, prefix="gz")),
                  headers={"Content-Encoding": "gzip"})[0] == 200,
        http_post(h, zlib.compress(rows_request(3, prefix="deflate")),
                  headers={"Content-Encoding": "deflate"})[0] == 200,
        http_post(h, otlp_json(rows_request(3, prefix="json")), content_type="application/json")[0]
        == 200,
        http_post(h, otlp_json(traced), content_type="application/json; charset=utf-8")[0] == 200,
    ]
    assert all(calls), calls
    status, _, body = http_post(h, otlp_json(rows_request(1, prefix="jr")),
                                content_type="application/json")
    assert status == 200 and json.loads(body) == {}
    ids = stored_ids(service, destination)
    expected = {f"{p}-{k}" for p in ("grpc", "grpcgz", "pb", "gz", "deflate", "json")
                for k in range(3)} | {"json-traced", "jr-0"}
    assert set(ids) == expected and len(ids) == len(expected)
    frame = oce.load(str(destination), endpoint="ep", deployment="dep", collection="inputs")
    traced_row = frame[frame["_correlation_id"] == "json-traced"].iloc[0]
    assert traced_row["_trace_id"] == "0123456789abcdef0123456789abcdef"


def damaged_request() -> tuple[bytes, int]:
    """Five records: a trace id of the wrong length and a corrupt frame body are rejected."""
    import pandas as pd

    message = request([
        record({"i": k}, A.KIND_ROW, correlation_id=f"ok-{k}") for k in range(3)
    ] + [record({"i": 9}, A.KIND_ROW, correlation_id="bad-trace"),
         record(pd.DataFrame({"a": [1]}), A.KIND_DATAFRAME, correlation_id="bad-body")])
    logs = message.resource_logs[0].scope_logs[0].log_records
    logs[3].trace_id = b"abc"
    for kv in logs[4].body.kvlist_value.values:
        if kv.key == "data":
            kv.value.bytes_value = b"\x01"
    return message.SerializeToString(), 2


def test_partial_success_is_reported_and_the_rest_stored(start: Start) -> None:
    service, destination = start()
    data, rejected = damaged_request()
    code, _, _, raw = grpc_export(service.addresses["otlp/grpc"], data)
    assert code is grpc.StatusCode.OK
    response = ExportLogsServiceResponse.FromString(raw)
    assert response.partial_success.rejected_log_records == rejected
    assert "trace_id" in response.partial_success.error_message
    status, _, raw = http_post(service.addresses["otlp/http"], data)
    assert status == 200
    assert ExportLogsServiceResponse.FromString(raw).partial_success.rejected_log_records == rejected
    status, _, raw = http_post(service.addresses["otlp/http"], otlp_json(data),
                               content_type="application/json")
    assert status == 200 and int(json.loads(raw)["partialSuccess"]["rejectedLogRecords"]) == 2
    assert stored_ids(service, destination) == sorted(["ok-0", "ok-1", "ok-2"] * 3)


def raw_http(address: tuple[str, int], head: bytes, body: bytes = b"") -> bytes:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(head + body)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_malformed_and_hostile_requests_get_clean_errors(start: Start) -> None:
    service, destination = start(receiver={
        "protocols": {"grpc": {"max_recv_msg_size_mib": 1}, "http": {"max_request_body_size": MiB}},
        "max_records_per_request": 100, "max_nesting_depth": 8})
    g, h = service.addresses["otlp/grpc"], service.addresses["otlp/http"]
    rng = random.Random(5)
    valid = rows_request(5, prefix="v")
    bomb = gzip.compress(b"\x00" * (20 * MiB))
    deep = request([record({"i": 1}, A.KIND_ROW)])
    deep.resource_logs[0].scope_logs[0].log_records[0].body.CopyFrom(nested_value(9))
    deeper = deep_request(300)
    cases: dict[str, tuple[bytes, dict[str, str], int]] = {
        "random bytes": (b"\xff" + rng.randbytes(4000), {}, 400),
        "truncated protobuf": (valid[: len(valid) - 7], {}, 400),
        "nesting over the limit": (deep.SerializeToString(), {}, 400),
        "nesting past the parser": (deeper, {}, 400),
        "too many records": (rows_request(101), {}, 413),
        "over the size limit": (b"\x0a" + b"\x00" * (MiB + 10), {}, 413),
        "gzip bomb": (bomb, {"Content-Encoding": "gzip"}, 413),
        "corrupt gzip": (gzip.compress(valid)[:-9], {"Content-Encoding": "gzip"}, 400),
        "not gzip": (valid, {"Content-Encoding": "gzip"}, 400),
        "unknown encoding": (valid, {"Content-Encoding": "br"}, 415),
        "wrong content type": (valid, {"Content-Type": "text/plain"}, 415),
        "no content type": (valid, {"Content-Type": ""}, 415),
        "json, not otlp": (b"[1, 2]", {"Content-Type": "application/json"}, 400),
        "json, wrong shape": (b'{"resourceLogs": "x"}', {"Content-Type": "application/json"}, 400),
        "json, bad trace id": (b'{"resourceLogs": [{"scopeLogs": [{"logRecords": '
                               b'[{"traceId": "zz"}]}]}]}', {"Content-Type": "application/json"}, 400),
        "json, invalid": (b'{"resourceLogs": [', {"Content-Type": "application/json"}, 400),
        "json, deep": (b'{"a":' * 5000 + b"1" + b"}" * 5000, {"Content-Type": "application/json"},
                       400),
    }
    for name, (body, headers, expected) in cases.items():
        status, _, answer = http_post(h, body, headers=headers)
        assert status == expected, (name, status, answer)
        assert b"Traceback" not in answer and b".py" not in answer, name
        assert_ok(g, h, name.replace(" ", "").replace(",", ""))
    grpc_cases = {
        "random bytes": (b"\xff" + rng.randbytes(4000), None, grpc.StatusCode.INVALID_ARGUMENT),
        "truncated protobuf": (valid[:-7], None, grpc.StatusCode.INVALID_ARGUMENT),
        "nesting over the limit": (deep.SerializeToString(), None, grpc.StatusCode.INVALID_ARGUMENT),
        "nesting past the parser": (deeper, None,
                                    grpc.StatusCode.INVALID_ARGUMENT),
        "too many records": (rows_request(101), None, grpc.StatusCode.INVALID_ARGUMENT),
        "over the size limit": (b"\x0a" + b"\x00" * (MiB + 10), None,
                                grpc.StatusCode.RESOURCE_EXHAUSTED),
        # A message of 20 MiB of zeros, gzip-compressed by the client to about 20 KiB.
        "gzip bomb": (b"\x0a" + b"\x00" * (20 * MiB), grpc.Compression.Gzip,
                      grpc.StatusCode.RESOURCE_EXHAUSTED),
    }
    for name, (body, compression, expected) in grpc_cases.items():
        code, details, _, _ = grpc_export(g, body, compression=compression)
        assert code is expected, (name, code, details)
        assert "Traceback" not in details and ".py" not in details, name
        assert_ok(g, h, "g" + name.replace(" ", ""))
    # Framing-level trouble: no length, bad chunking, wrong method, unknown path.
    assert raw_http(h, b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf"
                       b"\r\n\r\n").startswith(b"HTTP/1.1 411")
    assert raw_http(h, b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf"
                       b"\r\nTransfer-Encoding: chunked\r\n\r\n", b"zz\r\n").startswith(b"HTTP/1.1 400")
    chunked = valid
    reply = raw_http(h, b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf"
                        b"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                     f"{len(chunked):x}\r\n".encode() + chunked + b"\r\n0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200"), reply
    head = (b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf"
            b"\r\nTransfer-Encoding: chunked\r\n")
    smuggling = {  # framings a front proxy and this server could read differently
        "both framings": (head + f"Content-Length: {len(valid)}\r\n\r\n".encode(),
                          f"{len(valid):x}\r\n".encode() + valid + b"\r\n0\r\n\r\n"),
        "0x chunk size": (head + b"\r\n", b"0x5\r\nabcde\r\n0\r\n\r\n"),
        "signed chunk size": (head + b"\r\n", b"+5\r\nabcde\r\n0\r\n\r\n"),
        "underscored chunk size": (head + b"\r\n", b"1_0\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n"),
    }
    for name, (request_head, body) in smuggling.items():
        assert raw_http(h, request_head, body).startswith(b"HTTP/1.1 400"), name
    # Trailers that never end: cut once they pass the size bound of a request head.
    with socket.create_connection(h, timeout=10) as sock:
        sock.sendall(head + b"\r\n0\r\n")
        with contextlib.suppress(OSError):
            for _ in range(10_000):  # at most 10 MB; the server answers long before
                sock.sendall(b"X-T: " + b"a" * 1000 + b"\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    # A GET with a body: answered, then the connection closes rather than reading the
    # body as a second request.
    hidden = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(h, timeout=10) as sock:
        sock.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\nContent-Length: "
                     + str(len(hidden)).encode() + b"\r\n\r\n" + hidden)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 404") and answer.count(b"HTTP/1.1") == 1
    assert http_get(h, "/v1/logs")[0] == 405
    assert http_post(h, valid, path="/v1/traces")[0] == 404
    assert raw_http(h, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400")
    counters = service.health()[1]["receivers"]["otlp"]
    assert counters["requests_invalid"] >= 16 and counters["requests_too_large"] >= 4
    ids = stored_ids(service, destination)
    assert {"v-0", "v-4"} <= set(ids)  # the chunked request
    assert not any(i.startswith("r-") for i in ids)  # nothing of the refused requests


def test_bearer_token(start: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTLP_TEST_TOKEN", "s3cret-token")
    service, destination = start(receiver={"auth": {"bearer_token_env": "OTLP_TEST_TOKEN"}})
    g, h = service.addresses["otlp/grpc"], service.addresses["otlp/http"]
    for token in (None, "wrong", "s3cret-token-and-more"):
        code, details, _, _ = grpc_export(g, rows_request(1, prefix="nope"), token=token)
        assert code is grpc.StatusCode.UNAUTHENTICATED, details
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        status, answer_headers, body = http_post(h, rows_request(1, prefix="nope"), headers=headers)
        assert status == 401 and answer_headers["www-authenticate"].startswith("Bearer")
        assert b"s3cret" not in body
    assert grpc_export(g, rows_request(2, prefix="g"), token="s3cret-token")[0] is grpc.StatusCode.OK
    status, _, _ = http_post(h, rows_request(2, prefix="h"),
                             headers={"Authorization": "bearer s3cret-token"})
    assert status == 200
    status, body = http_get(h, "/health")
    assert status == 200 and b"s3cret" not in body
    assert stored_ids(service, destination) == ["g-0", "g-1", "h-0", "h-1"]


def test_full_queue_asks_clients_to_retry(start: Start) -> None:
    # Exports wait for 1000 records or an hour, so the 10-record queue stays full.
    service, destination = start(receiver={"max_records_per_request": 10},
                                 batch={"max_queue_size": 10, "send_batch_size": 1000,
                                        "timeout": "1h"})
    g, h = service.addresses["otlp/grpc"], service.addresses["otlp/http"]
    assert grpc_export(g, rows_request(10, prefix="first"))[0] is grpc.StatusCode.OK
    code, _, trailers, _ = grpc_export(g, rows_request(1, prefix="late"))
    assert code is grpc.StatusCode.UNAVAILABLE
    retry = RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
    assert retry.retry_delay.seconds >= 1
    status, headers, _ = http_post(h, rows_request(1, prefix="late"))
    assert status == 503 and int(headers["retry-after"]) >= 1
    healthy, detail = service.health()
    assert healthy and detail["exporters"]["avro"]["queued"] == 10
    assert detail["receivers"]["otlp"]["requests_busy"] == 2
    # Stopping drains the queue: what was acknowledged is stored, the refused is not.
    assert stored_ids(service, destination) == sorted(f"first-{k}" for k in range(10))


def test_tls_on_both_transports(start: Start, tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    tls = {"cert_file": str(cert), "key_file": str(key)}
    service, destination = start(receiver={"protocols": {"grpc": {"tls": tls},
                                                         "http": {"tls": tls}}})
    g, h = service.addresses["otlp/grpc"], service.addresses["otlp/http"]
    credentials = grpc.ssl_channel_credentials(cert.read_bytes())
    code, details, _, _ = grpc_export(g, rows_request(1, prefix="tlsg"), credentials=credentials)
    assert code is grpc.StatusCode.OK, details
    context = ssl.create_default_context(cafile=str(cert))
    assert http_post(h, rows_request(1, prefix="tlsh"), context=context)[0] == 200
    with pytest.raises((ConnectionError, OSError)):
        http_post(h, rows_request(1, prefix="plain"), timeout=3)
    assert grpc_export(g, rows_request(1, prefix="plain"), timeout=3)[0] is not grpc.StatusCode.OK
    assert stored_ids(service, destination) == ["tlsg-0", "tlsh-0"]


def test_health_endpoint_and_extension(tmp_path: Path) -> None:
    config = service_config(tmp_path / "store")
    config["extensions"] = {"health_check": {"endpoint": "127.0.0.1:0"}}
    config["service"]["extensions"] = ["health_check"]
    service = run_service(config)
    try:
        for address, path in ((service.addresses["otlp/http"], "/health"),
                              (service.addresses["health_check"], "/")):
            status, body = http_get(address, path)
            detail = json.loads(body)
            assert status == 200 and detail["status"] == "ok"
            assert set(detail["receivers"]["otlp"]) >= {"requests", "records_accepted"}
    finally:
        service.stop(10)
    assert service.stopping


def test_records_keep_resource_scope_times_and_attributes(start: Start) -> None:
    from otel_collector_ext.service.receiver.decode import decode_request, parse_protobuf

    data = request([record({"i": 1}, A.KIND_ROW, correlation_id="x", time_ns=T0 + 5,
                           trace_id=7, extra={"custom.list": ("a", "b")})]).SerializeToString()
    decoded = decode_request(parse_protobuf(data, max_depth=8), max_depth=8, max_records=5)
    readable = decoded.records[0]
    rec = readable.log_record
    assert rec.timestamp == T0 + 5 and rec.observed_timestamp and rec.trace_id == 7
    assert rec.event_name == "ml.inference.inputs" and rec.body == {"i": 1}
    assert rec.attributes["custom.list"] == ["a", "b"] and rec.attributes[A.CORRELATION_ID] == "x"
    assert readable.resource.attributes[A.INSTANCE_ID] == "replica-1"
