"""OTLP over HTTP: POST /v1/logs (protobuf or JSON, gzip/deflate), GET /health.

Built on the standard library's `http.server`: the handlers are synchronous like
the pipeline they feed, TLS comes from `ssl`, and it adds no dependency. Its
weak spots are covered here: a bounded number of connections, a socket timeout
(slow or idle clients), bodies read against a size limit (compressed and after
decompression, so a gzip bomb stops at the limit), and a shutdown that lets a
request in progress finish and closes idle keep-alive connections.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from google.protobuf import json_format
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceResponse,
)

from .core import Outcome, Receiver, Status
from .decode import RequestError, parse_json, parse_protobuf
from .tls import TLSFiles

_log = logging.getLogger(__name__)

LOGS_PATH = "/v1/logs"
HEALTH_PATHS = ("/health", "/healthz")
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_READ_CHUNK = 64 * 1024
_DISCARD_LIMIT = 64 * 1024 * 1024

HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]

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


class _Refused(Exception):  # noqa: N818 - control flow inside the handler
    def __init__(self, status: HTTPStatus, message: str, *, close: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_MAX_TRAILERS = 32


class _Server(HTTPServer):
    """Thread per connection, at most `max_connections` at once; TLS handshakes off the accept loop."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], *,
                 owner: HttpReceiverServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.owner = owner
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        owner = self.owner
        if owner.stopping or not owner.slots.acquire(timeout=0.5):
            self.shutdown_request(request)  # over capacity: the client retries
            return
        thread = threading.Thread(target=self._serve_connection, args=(request, client_address),
                                  name="otlp-http", daemon=True)
        with owner.lock:
            owner.threads.add(thread)
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        owner = self.owner
        try:
            request.settimeout(owner.idle_timeout)
            if owner.ssl_context is not None:
                try:
                    request = owner.ssl_context.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):
                    return
            self.finish_request(request, client_address)
        except Exception:  # a broken connection must not reach stderr as a traceback
            _log.debug("connection from %s ended with an error", client_address, exc_info=True)
        finally:
            self.shutdown_request(request)
            owner.slots.release()
            with owner.lock:
                owner.threads.discard(threading.current_thread())

    def handle_error(self, request: Any, client_address: Any) -> None:
        _log.debug("error serving %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # The stdlib's own errors (bad request line, oversized headers): short and plain.
    error_message_format = "%(code)d %(message)s\n"
    error_content_type = "text/plain; charset=utf-8"
    _body_read = False

    def version_string(self) -> str:
        return "otel-collector-ext"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        _log.debug("%s " + format, self.address_string(), *args)

    def setup(self) -> None:
        super().setup()
        with self.server.owner.lock:
            self.server.owner.idle[self] = self.connection

    def handle_one_request(self) -> None:
        owner = self.server.owner
        with owner.lock:
            owner.idle.pop(self, None)
            owner.active[self] = (time.monotonic(), self.connection)
        try:
            super().handle_one_request()
        finally:
            if owner.stopping or self._unread_body():
                self.close_connection = True
            with owner.lock:
                owner.active.pop(self, None)
                if not self.close_connection:
                    owner.idle[self] = self.connection

    def _unread_body(self) -> bool:
        """A request other than POST that came with a body: it was not read, so the
        connection must close, or those bytes would be taken for the next request."""
        headers = getattr(self, "headers", None)
        if headers is None or getattr(self, "command", "POST") == "POST":
            return False
        length = (headers.get("Content-Length") or "0").strip()
        return bool(headers.get("Transfer-Encoding")) or length != "0"

    def finish(self) -> None:
        with self.server.owner.lock:
            self.server.owner.idle.pop(self, None)
        with contextlib.suppress(OSError):
            super().finish()

    # -- routes ----------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self._path() in HEALTH_PATHS:
            healthy, detail = self.server.owner.health()
            self._reply(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE,
                        json.dumps(detail).encode(), JSON)
        elif self._path() == LOGS_PATH:
            self._reply(HTTPStatus.METHOD_NOT_ALLOWED, b"", "text/plain",
                        headers={"Allow": "POST"})
        else:
            self._reply(HTTPStatus.NOT_FOUND, b"", "text/plain")

    def do_HEAD(self) -> None:  # noqa: N802
        healthy, _ = self.server.owner.health() if self._path() in HEALTH_PATHS else (False, {})
        self._reply(HTTPStatus.OK if healthy else HTTPStatus.NOT_FOUND, b"", "text/plain")

    def do_POST(self) -> None:  # noqa: N802
        owner = self.server.owner
        receiver = owner.receiver
        self._body_read = False
        if self._path() != LOGS_PATH:
            self.close_connection = True
            self._reply(HTTPStatus.NOT_FOUND, b"", "text/plain")
            return
        media = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        as_json = media == JSON
        try:
            if owner.stopping:
                raise _Refused(HTTPStatus.SERVICE_UNAVAILABLE, "shutting down")
            if not receiver.authorized(self.headers.get("Authorization")):
                raise _Refused(HTTPStatus.UNAUTHORIZED, "missing or invalid bearer token")
            if media not in (PROTOBUF, JSON):
                receiver.refuse(Status.INVALID, "unsupported content type")
                raise _Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                               f"Content-Type must be {PROTOBUF} or {JSON}")
            body = self._body(receiver.limits.max_request_bytes)
            try:
                request = (parse_json if as_json else parse_protobuf)(
                    body, max_depth=receiver.limits.max_depth)
            except RequestError as e:
                receiver.refuse(Status.INVALID, str(e))
                raise _Refused(HTTPStatus.BAD_REQUEST, str(e), close=False) from None
        except _Refused as refused:
            self._refused(refused, as_json)
            return
        outcome = receiver.export(request)
        self._answer(outcome, as_json)

    # -- helpers ---------------------------------------------------------------------
    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def _body(self, limit: int) -> bytes:
        """The request body, decompressed, at most `limit` bytes either way."""
        receiver = self.server.owner.receiver
        transfer = (self.headers.get("Transfer-Encoding") or "").strip().lower()
        if transfer and transfer != "chunked":
            receiver.refuse(Status.INVALID, "unsupported transfer encoding")
            raise _Refused(HTTPStatus.NOT_IMPLEMENTED, "unsupported Transfer-Encoding")
        if transfer and self.headers.get("Content-Length") is not None:
            # Both framings at once is how requests are smuggled past proxies: refuse.
            receiver.refuse(Status.INVALID, "ambiguous framing")
            raise _Refused(HTTPStatus.BAD_REQUEST,
                           "Transfer-Encoding and Content-Length together")
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("identity", "gzip", "deflate"):
            receiver.refuse(Status.INVALID, "unsupported content encoding")
            raise _Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                           "Content-Encoding must be gzip, deflate or identity")
        if transfer == "chunked":
            self._body_read = True  # a chunked body is never drained
            raw = self._read_chunked(limit)
        else:
            length_text = self.headers.get("Content-Length")
            if length_text is None:
                receiver.refuse(Status.INVALID, "no content length")
                raise _Refused(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            try:
                length = int(length_text)
                if length < 0:
                    raise ValueError
            except ValueError:
                receiver.refuse(Status.INVALID, "bad content length")
                raise _Refused(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
            if length > limit:
                receiver.refuse(Status.TOO_LARGE, "request too large")
                raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"request body over {limit} bytes")
            raw = self._read_exactly(length)
        self._body_read = True
        if encoding == "identity":
            return raw
        return self._decompress(raw, limit)

    def _discard_body(self) -> None:
        """Read (and drop) a modest unread body, so the client can finish sending and see
        the answer instead of a broken pipe; a huge one is cut off."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return
        if self._body_read or not 0 < length <= _DISCARD_LIMIT:
            return
        self._body_read = True
        with contextlib.suppress(OSError, _Refused):
            self._read_exactly(length)

    def _read_exactly(self, length: int) -> bytes:
        parts, remaining = [], length
        while remaining:
            chunk = self.rfile.read(min(remaining, _READ_CHUNK))
            if not chunk:
                raise _Refused(HTTPStatus.BAD_REQUEST, "request body ended early")
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)

    def _read_chunked(self, limit: int) -> bytes:
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1026)
            digits = line.split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(digits):  # int(x, 16) would also take "0x1", "+5", "1_0"
                raise _Refused(HTTPStatus.BAD_REQUEST, "bad chunked encoding")
            size = int(digits, 16)
            if size == 0:
                for _ in range(_MAX_TRAILERS + 1):
                    if self.rfile.readline(8194) in (b"\r\n", b"\n", b""):
                        return b"".join(parts)
                raise _Refused(HTTPStatus.BAD_REQUEST, "too many trailer lines")
            total += size
            if size < 0 or total > limit:
                self.server.owner.receiver.refuse(Status.TOO_LARGE, "request too large")
                raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"request body over {limit} bytes")
            parts.append(self._read_exactly(size))
            self.rfile.readline(3)

    def _decompress(self, raw: bytes, limit: int) -> bytes:
        receiver = self.server.owner.receiver
        # wbits 47: zlib or gzip header, detected; deflate without a header is retried below.
        for wbits in (47, -15):
            inflater = zlib.decompressobj(wbits)
            try:
                out = inflater.decompress(raw, limit + 1)
            except zlib.error:
                continue
            if len(out) > limit or inflater.unconsumed_tail:
                receiver.refuse(Status.TOO_LARGE, "request too large after decompression")
                raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                               f"decompressed request body over {limit} bytes", close=False)
            if inflater.eof and not inflater.unused_data:
                return out
        receiver.refuse(Status.INVALID, "bad compressed body")
        raise _Refused(HTTPStatus.BAD_REQUEST, "request body is not valid gzip/deflate data",
                       close=False)

    def _answer(self, outcome: Outcome, as_json: bool) -> None:
        if outcome.status is Status.OK:
            response = ExportLogsServiceResponse()
            if outcome.rejected:
                response.partial_success.CopyFrom(ExportLogsPartialSuccess(
                    rejected_log_records=outcome.rejected, error_message=outcome.message))
            if as_json:
                self._reply(HTTPStatus.OK, json_format.MessageToJson(response, indent=None).encode(),
                            JSON)
            else:
                self._reply(HTTPStatus.OK, response.SerializeToString(), PROTOBUF)
            return
        headers = {}
        if outcome.status is Status.BUSY:
            headers["Retry-After"] = str(max(1, round(outcome.retry_after)))
        self._error(_HTTP_STATUS[outcome.status], outcome.message, as_json,
                    _RPC_CODES[outcome.status], headers)

    def _refused(self, refused: _Refused, as_json: bool) -> None:
        if refused.close:
            self.close_connection = True  # the body may be unread
            self._discard_body()
        headers: dict[str, str] = {}
        code = 3
        if refused.status is HTTPStatus.UNAUTHORIZED:
            headers["WWW-Authenticate"] = 'Bearer realm="otlp"'
            code = 16
        elif refused.status is HTTPStatus.SERVICE_UNAVAILABLE:
            headers["Retry-After"] = "1"
            code = 14
        self._error(refused.status, str(refused), as_json, code, headers)

    def _error(self, status: HTTPStatus, message: str, as_json: bool, code: int,
               headers: dict[str, str]) -> None:
        rpc = RpcStatus(code=code, message=message)
        if as_json:
            body, media = json_format.MessageToJson(rpc, indent=None).encode(), JSON
        else:
            body, media = rpc.SerializeToString(), PROTOBUF
        self._reply(status, body, media, headers=headers)

    def _reply(self, status: HTTPStatus, body: bytes, media: str,
               headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class HttpReceiverServer:
    """Serves OTLP/HTTP logs for `receiver` (and the health endpoint) on `host:port`."""

    def __init__(self, receiver: Receiver | None, host: str, port: int, *,
                 tls: TLSFiles | None = None, health: HealthCheck | None = None,
                 max_connections: int = 64, idle_timeout: float = 30.0) -> None:
        self.receiver = receiver  # None: a health-only server
        self.health = health or (lambda: (True, {"status": "ok"}))
        self.ssl_context = tls.ssl_context() if tls is not None else None
        self.idle_timeout = idle_timeout
        self.slots = threading.BoundedSemaphore(max_connections)
        self.lock = threading.Lock()
        self.threads: set[threading.Thread] = set()
        self.idle: dict[_Handler, socket.socket] = {}
        # Requests under way: (start, socket). idle_timeout bounds each read, but a client
        # trickling one byte at a time would hold a connection slot forever; a whole
        # request (headers and body) must finish within request_timeout.
        self.active: dict[_Handler, tuple[float, socket.socket]] = {}
        self.request_timeout = max(2 * idle_timeout, 1.0)
        self._reaper_stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="otlp-http-reaper", daemon=True)
        self.stopping = False
        handler = _Handler if receiver is not None else _HealthOnlyHandler
        self._server = _Server((host, port), handler, owner=self)
        self.address = (host, self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2}, name="otlp-http-accept",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._reaper.start()

    def _reap(self) -> None:
        """Cut the connections whose request has run past request_timeout."""
        while not self._reaper_stop.wait(min(0.25, self.request_timeout / 4)):
            now = time.monotonic()
            with self.lock:
                late = [sock for started, sock in self.active.values()
                        if now - started > self.request_timeout]
            for sock in late:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self, grace: float) -> None:
        """Stop accepting, close idle connections, let requests in progress finish."""
        self._reaper_stop.set()
        self.stopping = True
        self._server.shutdown()
        self._server.server_close()
        with self.lock:
            idle = list(self.idle.values())
        for sock in idle:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self.lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join(grace)


class _HealthOnlyHandler(_Handler):
    """The health_check extension's server: health on every GET path, nothing else."""

    def do_GET(self) -> None:  # noqa: N802
        healthy, detail = self.server.owner.health()
        self._reply(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE,
                    json.dumps(detail).encode(), JSON)

    def do_POST(self) -> None:  # noqa: N802
        self.close_connection = True
        self._reply(HTTPStatus.NOT_FOUND, b"", "text/plain")
