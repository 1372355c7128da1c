"""OTLP over HTTP: POST /v1/logs (protobuf or JSON, gzip/deflate), GET /health.

A small ASGI application served by uvicorn with its h11 protocol, in a thread of
`serve` (it shares the receiver, and so the exporters' queues, with gRPC). Chosen
by a quick measurement of a 1 KB POST answered by a trivial ASGI app, 8 keep-alive
clients on the two-core test machine: uvicorn/h11 ~4,400 requests/s, uvicorn/httptools
~5,700, hypercorn ~2,000, granian ~10,000. An OTLP request costs milliseconds of
decoding, so the server's share hardly matters; uvicorn runs in-process (granian
runs its own worker processes, which would not share our queues), is widely
deployed, and with h11 parses HTTP/1.1 strictly in pure Python with explicit limits.

Asynchronous I/O: an idle or slow connection costs a socket and a few kilobytes, not
a thread, so thousands of them do not lock anyone out. On top of uvicorn:

- the request head must arrive within `request_timeout` (twice `idle_timeout`) of the
  connection opening or the previous response, however slowly it trickles
  (slowloris); the body must keep coming (`idle_timeout` per read) and be complete
  within `request_timeout`, else 408;
- keep-alive connections idle for `idle_timeout` are closed;
- over `max_connections` open connections, requests are answered 503 + Retry-After;
- the body is read against the size limit, and decompressed against it again
  (a gzip bomb stops at the limit);
- decompression, parsing and decoding run on the receiver's bounded decoding pool
  (`Admission`), never on the event loop; over its capacity: 503 + Retry-After;
- on stop, uvicorn stops accepting, closes idle connections, lets requests in
  progress finish within the grace period, then abandons them (not acknowledged:
  their senders retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import zlib
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

import h11
import uvicorn
from google.protobuf import json_format
from google.rpc.status_pb2 import Status as RpcStatus
from uvicorn.protocols.http.h11_impl import H11Protocol

from .admission import RETRY_AFTER_SECONDS, Admission
from .core import Outcome, Receiver, Status, success_response
from .tls import TLSFiles

_log = logging.getLogger(__name__)
# uvicorn logs a warning for every malformed request (answered 400): a hostile client
# must not be able to fill the log. Its errors still show.
logging.getLogger("uvicorn.error").setLevel(logging.ERROR)

LOGS_PATH = "/v1/logs"
HEALTH_PATHS = ("/health", "/healthz")
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# Refusing a request whose body is unread: uvicorn discards the rest of a body up to
# this size, so the client can finish sending and read the answer; above it, close.
_DISCARD_LIMIT = 64 * 1024 * 1024
_MAX_HEAD_BYTES = 64 * 1024  # request line + headers; h11 answers 400 beyond

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]
_Send = Callable[[dict[str, Any]], Awaitable[None]]
_Receive = Callable[[], Awaitable[dict[str, Any]]]

_HTTP_STATUS = {
    Status.OK: HTTPStatus.OK,
    Status.INVALID: HTTPStatus.BAD_REQUEST,
    Status.TOO_LARGE: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    Status.BUSY: HTTPStatus.SERVICE_UNAVAILABLE,
    Status.UNAUTHENTICATED: HTTPStatus.UNAUTHORIZED,
    Status.INTERNAL: HTTPStatus.INTERNAL_SERVER_ERROR,
}
# google.rpc.Code values for the Status message in error responses.
_RPC_CODES = {Status.INVALID: 3, Status.TOO_LARGE: 3, Status.BUSY: 14,
              Status.UNAUTHENTICATED: 16, Status.INTERNAL: 13}
_RETRY = {"retry-after": str(max(1, round(RETRY_AFTER_SECONDS)))}


class _Refused(Exception):  # noqa: N818 - control flow inside the application
    def __init__(self, status: HTTPStatus, message: str, *, code: int = 3,
                 headers: Mapping[str, str] | None = None, close: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.close = status, code, close
        self.headers = dict(headers or {})


def _busy(message: str) -> _Refused:
    return _Refused(HTTPStatus.SERVICE_UNAVAILABLE, message, code=14, headers=_RETRY)


def decompress(raw: bytes, limit: int) -> bytes:
    """gzip, zlib or raw deflate data, inflated to at most `limit` bytes (_Refused otherwise)."""
    # wbits 47: zlib or gzip header, detected; deflate without a header is retried below.
    for wbits in (47, -15):
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(raw, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit or inflater.unconsumed_tail:
            raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"decompressed request body over {limit} bytes")
        if inflater.eof and not inflater.unused_data:
            return out
    raise _Refused(HTTPStatus.BAD_REQUEST, "request body is not valid gzip/deflate data")


class _Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request head.

    uvicorn restarts its keep-alive timer on every byte received, so a client
    trickling a header a byte at a time would hold its connection forever. Here the
    head must be complete within twice the keep-alive timeout (`request_timeout`).
    """

    _head_timer: asyncio.TimerHandle | None = None

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        timeout = max(2 * self.timeout_keep_alive, 1.0)
        self._head_timer = self.loop.call_later(timeout, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        waiting_for_head = self.conn.their_state is h11.IDLE
        answered = self.cycle is not None and self.cycle.response_complete
        if (waiting_for_head or answered) and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE and self.cycle is not None \
                and not self.cycle.response_complete:
            self._disarm_head_timer()  # a request is being served: its own timeouts apply

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)


class _App:
    """The ASGI application: routes, limits, auth; decoding goes to the admission pool."""

    def __init__(self, owner: HttpReceiverServer) -> None:
        self.owner = owner

    async def __call__(self, scope: dict[str, Any], receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method, path = scope["method"], scope["path"]
        has_body = "transfer-encoding" in headers or headers.get("content-length", "0") != "0"
        as_json = _media(headers) == JSON
        try:
            if method == "POST" and self.owner.receiver is not None and path == LOGS_PATH:
                await self._logs(headers, receive, send, as_json)
                return
            await self._other(method, path, send, close=has_body and method != "POST")
        except _Refused as refused:
            close = refused.close or (has_body and not _small(headers))
            await _error(send, refused.status, str(refused), as_json, refused.code,
                         refused.headers, close=close)

    async def _other(self, method: str, path: str, send: _Send, *, close: bool) -> None:
        # A body that came with a request other than POST is not read: close after answering.
        owner = self.owner
        health_only = owner.receiver is None
        if method in ("GET", "HEAD") and (health_only or path in HEALTH_PATHS):
            healthy, detail = owner.health()
            if method == "HEAD":
                await _reply(send, HTTPStatus.OK if healthy else HTTPStatus.NOT_FOUND, b"",
                             "text/plain", close=close)
                return
            status = HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE
            await _reply(send, status, json.dumps(detail).encode(), JSON, close=close)
        elif method == "HEAD":
            await _reply(send, HTTPStatus.NOT_FOUND, b"", "text/plain", close=close)
        elif method == "GET" and path == LOGS_PATH and not health_only:
            await _reply(send, HTTPStatus.METHOD_NOT_ALLOWED, b"", "text/plain",
                         headers={"allow": "POST"}, close=close)
        else:
            await _reply(send, HTTPStatus.NOT_FOUND, b"", "text/plain",
                         close=close or method == "POST")

    async def _logs(self, headers: Mapping[str, str], receive: _Receive, send: _Send,
                    as_json: bool) -> None:
        owner = self.owner
        receiver = owner.receiver
        assert receiver is not None
        if owner.stopping:
            raise _Refused(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down", code=14,
                           headers=_RETRY, close=True)
        if owner.open_connections() > owner.max_connections:
            receiver.counters.add(requests=1, requests_busy=1)
            raise _busy("too many connections")
        if not receiver.authorized(headers.get("authorization")):
            raise _Refused(HTTPStatus.UNAUTHORIZED, "missing or invalid bearer token", code=16,
                           headers={"www-authenticate": 'Bearer realm="otlp"'})
        media = _media(headers)
        if media not in (PROTOBUF, JSON):
            receiver.refuse(Status.INVALID, "unsupported content type")
            raise _Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                           f"Content-Type must be {PROTOBUF} or {JSON}")
        limit = receiver.limits.max_request_bytes
        _check_framing(receiver, headers, limit)
        encoding = (headers.get("content-encoding") or "identity").strip().lower()
        if encoding not in ("identity", "gzip", "deflate"):
            receiver.refuse(Status.INVALID, "unsupported content encoding")
            raise _Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                           "Content-Encoding must be gzip, deflate or identity")
        if not owner.admission.try_enter():
            receiver.counters.add(requests=1, requests_busy=1)
            raise _busy("busy")
        try:
            raw = await self._body(receiver, receive, limit)
            if raw is None:
                return  # the client went away
            future = owner.admission.submit(_process, receiver, raw, encoding, as_json)
            outcome = await asyncio.wrap_future(future)
        finally:
            owner.admission.leave()
        await _answer(send, outcome, as_json)

    async def _body(self, receiver: Receiver, receive: _Receive, limit: int) -> bytes | None:
        """The body, at most `limit` bytes, arriving steadily and within request_timeout."""
        owner = self.owner
        loop = asyncio.get_running_loop()
        deadline = loop.time() + owner.request_timeout
        parts: list[bytes] = []
        total = 0
        while True:
            wait = min(owner.idle_timeout, deadline - loop.time())
            try:
                message = await asyncio.wait_for(receive(), max(wait, 0.001))
            except TimeoutError:
                receiver.refuse(Status.INVALID, "request body too slow")
                raise _Refused(HTTPStatus.REQUEST_TIMEOUT, "request body too slow",
                               close=True) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                receiver.refuse(Status.TOO_LARGE, "request too large")
                raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"request body over {limit} bytes", close=True)
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)


def _check_framing(receiver: Receiver, headers: Mapping[str, str], limit: int) -> None:
    transfer = headers.get("transfer-encoding")
    length = headers.get("content-length")
    if transfer is not None and length is not None:
        # Both framings at once is how requests are smuggled past proxies: refuse.
        receiver.refuse(Status.INVALID, "ambiguous framing")
        raise _Refused(HTTPStatus.BAD_REQUEST, "Transfer-Encoding and Content-Length together",
                       close=True)
    if transfer is None and length is None:
        receiver.refuse(Status.INVALID, "no content length")
        raise _Refused(HTTPStatus.LENGTH_REQUIRED, "Content-Length required", close=True)
    if length is not None and int(length) > limit:  # h11 has checked it is digits
        receiver.refuse(Status.TOO_LARGE, "request too large")
        raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body over {limit} bytes")


def _process(receiver: Receiver, raw: bytes, encoding: str, as_json: bool) -> Outcome:
    """On the decoding pool: decompress, then parse, decode and hand to the sink."""
    limit = receiver.limits.max_request_bytes
    try:
        body = raw if encoding == "identity" else decompress(raw, limit)
    except _Refused as refused:
        status = Status.TOO_LARGE if refused.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE \
            else Status.INVALID
        return receiver.refuse(status, str(refused))
    return receiver.export_bytes(body, as_json=as_json)


def _media(headers: Mapping[str, str]) -> str:
    return (headers.get("content-type") or "").split(";", 1)[0].strip().lower()


def _small(headers: Mapping[str, str]) -> bool:
    length = headers.get("content-length")
    return length is not None and length.isdigit() and int(length) <= _DISCARD_LIMIT


async def _answer(send: _Send, outcome: Outcome, as_json: bool) -> None:
    if outcome.status is Status.OK:
        response = success_response(outcome)
        if as_json:
            body = json_format.MessageToJson(response, indent=None).encode()
            await _reply(send, HTTPStatus.OK, body, JSON)
        else:
            await _reply(send, HTTPStatus.OK, response.SerializeToString(), PROTOBUF)
        return
    headers = {}
    if outcome.status is Status.BUSY:
        headers["retry-after"] = str(max(1, round(outcome.retry_after)))
    await _error(send, _HTTP_STATUS[outcome.status], outcome.message or outcome.status.value,
                 as_json, _RPC_CODES[outcome.status], headers)


async def _error(send: _Send, status: HTTPStatus, message: str, as_json: bool, code: int,
                 headers: Mapping[str, str], *, close: bool = False) -> None:
    rpc = RpcStatus(code=code, message=message)
    if as_json:
        body, media = json_format.MessageToJson(rpc, indent=None).encode(), JSON
    else:
        body, media = rpc.SerializeToString(), PROTOBUF
    await _reply(send, status, body, media, headers=headers, close=close)


async def _reply(send: _Send, status: HTTPStatus, body: bytes, media: str, *,
                 headers: Mapping[str, str] | None = None, close: bool = False) -> None:
    fields = [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]
    fields += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    if close:
        fields.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": int(status), "headers": fields})
    await send({"type": "http.response.body", "body": body})


class HttpReceiverServer:
    """Serves OTLP/HTTP logs for `receiver` (and the health endpoint) on `host:port`.

    The port is bound when constructed (OSError if taken), served from `start()` on a
    thread of its own running uvicorn's event loop.
    """

    def __init__(self, receiver: Receiver | None, host: str, port: int, *,
                 tls: TLSFiles | None = None, health: HealthCheck | None = None,
                 max_connections: int = 1024, idle_timeout: float = 30.0,
                 admission: Admission | None = None) -> None:
        self.receiver = receiver  # None: a health-only server
        self.health = health or (lambda: (True, {"status": "ok"}))
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.request_timeout = max(2 * idle_timeout, 1.0)
        self._own_admission = admission is None
        self.admission = admission or Admission()
        self.stopping = False
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((host, port))
            self._socket.listen(2048)
        except OSError:
            self._socket.close()
            raise
        self.address = (host, self._socket.getsockname()[1])
        config = uvicorn.Config(
            _App(self), http=_Protocol, lifespan="off", log_config=None, access_log=False,
            timeout_keep_alive=idle_timeout, server_header=False, ws="none",  # type: ignore[arg-type]
            h11_max_incomplete_event_size=_MAX_HEAD_BYTES, backlog=2048,
        )
        config.load()
        if tls is not None:
            config.ssl = tls.ssl_context()
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="otlp-http", daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        async def serve() -> None:
            loop = asyncio.get_running_loop()
            loop.call_soon(self._ready.set)
            await self._server.serve(sockets=[self._socket])

        try:
            asyncio.run(serve())
        except Exception:  # logged: the service's health then tells the rest
            _log.exception("the OTLP/HTTP server on %s:%d failed", *self.address)
        finally:
            self._ready.set()

    def open_connections(self) -> int:
        return len(self._server.server_state.connections)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)

    def stop(self, grace: float) -> None:
        """Stop accepting, close idle connections, let requests in progress finish within
        `grace` seconds, then abandon them (unanswered, so their senders retry)."""
        self.stopping = True
        self._server.config.timeout_graceful_shutdown = grace  # type: ignore[assignment]
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(grace + 5)
        else:
            with contextlib.suppress(OSError):
                self._socket.close()
        if self._own_admission:
            self.admission.shutdown()
