"""Payload logging for WSGI applications (Flask, Django, any PEP 3333 app).

    app.wsgi_app = WSGIMiddleware(app.wsgi_app)   # Flask
    application = WSGIMiddleware(application)     # any WSGI app

The request body is copied as the application reads `wsgi.input`; the response
iterable is passed through chunk by chunk, so generators (streaming, server-sent
events) keep streaming. The correlation context is current while the application
runs and while its response iterable is iterated and closed, so generator code
(Flask's streamed responses) collects under the same correlation id.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from ..pipeline.wiring import check_configuration
from ..scoring.context import correlation_scope
from .exchange import (
    FLAG_CLIENT_DISCONNECT,
    REQUEST_ID_HEADER,
    Exchange,
    wanted_headers,
)

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

_ENVIRON_KEYS: dict[str, str] = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


@functools.lru_cache(maxsize=256)
def _environ_key(header: str) -> str:
    return _ENVIRON_KEYS.get(header) or "HTTP_" + header.upper().replace("-", "_")


def _request_headers(environ: Environ) -> Iterator[tuple[str, str]]:
    for name in wanted_headers():
        value = environ.get(_environ_key(name))
        if value is not None:
            yield name, value


def _wsgi_text(raw: str) -> str:
    # PEP 3333 carries the raw bytes of the path and query as latin-1 text.
    try:
        return raw.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return raw


class _Input:
    """`wsgi.input` that copies what the application reads into the exchange."""

    def __init__(self, stream: Any, exchange: Exchange, length: int | None) -> None:
        self._stream = stream
        self._exchange = exchange
        self._left = length  # bytes still expected, when Content-Length says so

    def _seen(self, data: bytes, at_end: bool) -> None:
        if self._left is not None:
            self._left -= len(data)
            if at_end and self._left > 0:  # the stream ended before Content-Length
                self._exchange.flag(FLAG_CLIENT_DISCONNECT)
            at_end = at_end or self._left <= 0
        self._exchange.request_body(data, not at_end)

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._stream, method)(*args)
        except (OSError, ValueError):  # what servers raise when the client is gone
            self._exchange.flag(FLAG_CLIENT_DISCONNECT)
            raise

    def read(self, size: int | None = -1) -> bytes:
        everything = size is None or size < 0
        data = self._call("read") if everything else self._call("read", size)
        self._seen(data, everything or (not data and size != 0))
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        # Werkzeug's LimitedStream (Flask) reads this way: copy what was filled in.
        view = memoryview(buffer).cast("B")
        if hasattr(self._stream, "readinto"):
            count = self._call("readinto", view) or 0
            data = bytes(view[:count])
        else:
            data = self._call("read", len(view))
            count = len(data)
            view[:count] = data
        self._seen(data, count == 0 and len(view) != 0)
        return count

    def readline(self, size: int | None = -1) -> bytes:
        data = self._call("readline", -1 if size is None else size)
        self._seen(data, not data and size != 0)
        return data

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.readline, b"")

    def __getattr__(self, name: str) -> Any:  # servers' own extensions pass through
        return getattr(self._stream, name)


class _Response:
    """The application's response iterable, passed through chunk by chunk."""

    def __init__(self, result: Iterable[bytes], exchange: Exchange) -> None:
        self._result = result
        self._iterator: Iterator[bytes] | None = None
        self._exchange = exchange

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        exchange = self._exchange
        with correlation_scope(exchange.context):
            try:
                if self._iterator is None:
                    self._iterator = iter(self._result)
                chunk = next(self._iterator)
            except StopIteration:
                exchange.response_body(b"", False)
                raise
            except BaseException as e:
                exchange.app_failed(e)
                raise
        exchange.response_body(chunk, True)
        return chunk

    def close(self) -> None:
        exchange = self._exchange
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                with correlation_scope(exchange.context):
                    close()
        finally:
            # A server stops iterating early only when it could not write: the client left.
            exchange.client_disconnected()
            exchange.finish()


class WSGIMiddleware:
    """Wraps a WSGI app: correlation id, `request`/`response` records, streaming-safe."""

    def __init__(self, app: WSGIApp) -> None:
        check_configuration()  # a broken configuration: the app does not start
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        exchange = Exchange.begin(
            environ.get("REQUEST_METHOD", ""),
            _wsgi_text(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")),
            _wsgi_text(environ.get("QUERY_STRING", "")),
            _request_headers(environ),
        )
        if exchange.capturing and "wsgi.input" in environ:
            length = environ.get("CONTENT_LENGTH", "")
            environ["wsgi.input"] = _Input(
                environ["wsgi.input"], exchange, int(length) if length.isdigit() else None
            )
        request_id = exchange.request_id

        def start(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
                  ) -> Callable[[bytes], object]:
            headers = [(n, v) for n, v in headers if n.lower() != REQUEST_ID_HEADER]
            headers.append(("X-Request-Id", request_id))
            code = status[:3]
            exchange.response_start(
                int(code) if code.isdigit() else 0, ((n.lower(), v) for n, v in headers)
            )
            write = start_response(status, headers, exc_info) if exc_info else start_response(
                status, headers)

            def write_and_copy(data: bytes) -> object:
                exchange.response_body(data, True)
                return write(data)

            return write_and_copy

        with correlation_scope(exchange.context):
            try:
                result = self.app(environ, start)
            except BaseException as e:
                exchange.app_failed(e)
                exchange.finish()
                raise
        return _Response(result, exchange)
