"""Payload logging for ASGI applications (FastAPI, Starlette, any ASGI 3 app).

    app = ASGIMiddleware(app)            # any ASGI app
    app.add_middleware(ASGIMiddleware)   # Starlette / FastAPI

Messages pass through unchanged and at once (streaming responses, chunked uploads
and server-sent events keep streaming); the middleware keeps a bounded copy of the
bodies on the side and adds `x-request-id` to the response headers.

It also flushes the collected records when the server shuts the app down (ASGI
lifespan): uvicorn re-raises SIGTERM after a graceful shutdown, so the process dies
without running `atexit` handlers, and records still queued would be lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..pipeline.wiring import check_configuration, flush
from ..scoring.context import correlation_scope
from .exchange import (
    FLAG_BODY_NOT_CAPTURED,
    REQUEST_ID_HEADER,
    Exchange,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID = REQUEST_ID_HEADER.encode()
_SHUTDOWN_DONE = ("lifespan.shutdown.complete", "lifespan.shutdown.failed")
FLUSH_TIMEOUT_MILLIS = 10_000
_log = logging.getLogger("otel_collector_ext.middleware")


class ASGIMiddleware:
    """Wraps an ASGI app: correlation id, `request`/`response` records, streaming-safe."""

    def __init__(self, app: ASGIApp) -> None:
        check_configuration()  # a broken configuration: the app does not start
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, _flush_before_shutdown_completes(send))
            return
        if scope["type"] != "http":  # websocket: not recorded
            await self.app(scope, receive, send)
            return
        exchange = Exchange.begin(
            scope.get("method", ""),
            scope.get("path", ""),
            scope.get("query_string", b"").decode("latin-1"),
            scope.get("headers", ()),  # ASGI servers send lower-case names
        )
        request_id = exchange.request_id.encode()

        async def receive_and_copy() -> Message:
            message = await receive()
            kind = message.get("type")
            if kind == "http.request":
                exchange.request_body(message.get("body", b""), message.get("more_body", False))
            elif kind == "http.disconnect":
                exchange.client_disconnected()
            return message

        async def copy_and_send(message: Message) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                headers = [(n, v) for n, v in message.get("headers", ())
                           if n.lower() != _REQUEST_ID]
                headers.append((_REQUEST_ID, request_id))
                message = {**message, "headers": headers}
                exchange.response_start(message.get("status", 0),
                                        ((n.lower(), v) for n, v in headers))
            elif kind == "http.response.body":
                exchange.response_body(message.get("body", b""), message.get("more_body", False))
            elif kind in ("http.response.pathsend", "http.response.zerocopysend"):
                exchange.flag(FLAG_BODY_NOT_CAPTURED, request=False)
                exchange.response_body(b"", message.get("more_body", False))
            await send(message)

        with correlation_scope(exchange.context):
            try:
                await self.app(scope, receive_and_copy, copy_and_send)
            except asyncio.CancelledError:
                exchange.client_disconnected()
                raise
            except BaseException as e:
                exchange.app_failed(e)
                raise
            finally:
                exchange.finish()


def _flush_before_shutdown_completes(send: Send) -> Send:
    async def send_after_flush(message: Message) -> None:
        if message.get("type") in _SHUTDOWN_DONE:
            try:
                # Blocking is fine here: the server serves nothing more.
                if not flush(FLUSH_TIMEOUT_MILLIS):
                    _log.warning("payload logging: flushing at shutdown timed out")
            except Exception as e:
                _log.warning("payload logging: flushing at shutdown failed: %s", e)
        await send(message)

    return send_after_flush
