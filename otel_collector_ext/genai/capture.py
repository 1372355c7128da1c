"""One OpenAI-compatible HTTP call, watched as it passes: the state behind one gen_ai row.

The payload middleware feeds it the request body, the response start and each
response chunk as it goes to the client; nothing here delays or holds a chunk. A
streamed (SSE) response is parsed incrementally and only what the row needs is kept:
ids, usage, finish reasons and, with content capture on, the reassembled output,
within `max_content_bytes`. Memory per call is bounded by the SSE limits, the content
limit and (for JSON bodies, which are parsed at the end) `max_body_bytes`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from . import messages as M
from . import openai_api as O
from . import record as R
from .sse import SSEParser

DEFAULT_MAX_CONTENT_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class GenAISettings:
    """The gen_ai collection's settings, as the capture wants them."""

    capture_content: bool = False
    max_content_bytes: int = DEFAULT_MAX_CONTENT_BYTES
    max_body_bytes: int = 16 * 1024 * 1024  # JSON bodies larger than this are not parsed
    provider_name: str = "openai"


def _loads(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


class GenAICapture:
    """Feed it the exchange's events; `columns()` at the end gives the row's columns."""

    __slots__ = ("api", "path", "settings", "_started", "_request", "_request_size",
                 "_status", "_streamed", "_parser", "_assembler", "_response", "_response_size",
                 "_first_token_at", "_ended_at", "_flags", "_error_type")

    def __init__(self, api: str, path: str, settings: GenAISettings,
                 started: float | None = None) -> None:
        self.api = api
        self.path = path
        self.settings = settings
        self._started = time.perf_counter() if started is None else started
        self._request = bytearray()
        self._request_size = 0
        self._status: int | None = None
        self._streamed = False
        self._parser: SSEParser | None = None
        limit = settings.max_content_bytes if settings.capture_content else 0
        self._assembler = O.StreamAssembler(api, limit)
        self._response = bytearray()
        self._response_size = 0
        self._first_token_at: float | None = None
        self._ended_at: float | None = None
        self._flags: list[str] = []
        self._error_type: str | None = None

    # -- events ------------------------------------------------------------------

    def request_body(self, data: bytes) -> None:
        self._request_size += len(data)
        if self._request_size <= self.settings.max_body_bytes:
            self._request += data
        elif self._request:
            self._request = bytearray()  # never parsed: do not hold it

    def response_start(self, status: int, content_type: str | None) -> None:
        self._status = status
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media == "text/event-stream":
            self._streamed = True
            self._parser = SSEParser()

    def response_body(self, data: bytes) -> None:
        if not data:
            return
        if self._parser is None:
            self._response_size += len(data)
            if self._response_size <= self.settings.max_body_bytes:
                self._response += data
            elif self._response:
                self._response = bytearray()
            return
        self._events(self._parser.feed(data))

    def _events(self, events: list[Any]) -> None:
        assembler = self._assembler
        for event in events:
            if event.data[:1] != "{" and event.data.strip() == "[DONE]":
                assembler.done = True
                continue
            data = _loads(event.data)
            if not isinstance(data, dict):
                self.flag(R.FLAG_RESPONSE_NOT_JSON)
                continue
            if "error" in data and self._error_type is None:
                self._error_type = O.error_type(data) or "stream_error"
            assembler.chunk(data, event.event)
            if assembler.first_token and self._first_token_at is None:
                self._first_token_at = time.perf_counter()

    def end(self) -> None:
        """The last byte of the response passed (or the exchange ended without it)."""
        if self._ended_at is None:
            self._ended_at = time.perf_counter()

    def client_disconnected(self) -> None:
        """The client left before the response's last byte. Once the stream's final event
        ([DONE], response.completed) has passed, the client has the whole answer: a
        client that closes then, without waiting for the end of the chunked body, is
        not flagged."""
        if not (self._streamed and self._assembler.done):
            self.flag(R.FLAG_CLIENT_DISCONNECT)

    def flag(self, flag: str) -> None:
        if flag not in self._flags:
            self._flags.append(flag)

    def failed(self, error_type: str) -> None:
        """The application raised `error_type` while serving the call."""
        self.flag(R.FLAG_APP_ERROR)
        self._error_type = self._error_type or error_type[: R.MAX_NAME_CHARS]

    # -- the row -----------------------------------------------------------------

    def columns(self) -> dict[str, Any]:
        """The row's columns (before `record.gen_ai_row` types them)."""
        self.end()
        settings = self.settings
        capture = settings.capture_content
        cols: dict[str, Any] = {R.PROVIDER: settings.provider_name, R.PATH: self.path[:4096],
                                R.STATUS: self._status}
        request_budget = M.Budget(settings.max_content_bytes) if capture else None
        if self._request_size > settings.max_body_bytes:
            self.flag(R.FLAG_REQUEST_TOO_LARGE)
            cols[R.OPERATION] = O.OPERATION_NAMES[self.api]
        else:
            body = _loads(bytes(self._request)) if self._request else None
            if isinstance(body, dict):
                cols.update(O.request_columns(self.api, body, request_budget))
            else:
                cols[R.OPERATION] = O.OPERATION_NAMES[self.api]
                if self._request_size:
                    self.flag(R.FLAG_REQUEST_NOT_JSON)
        output_budget = M.Budget(settings.max_content_bytes) if capture else None
        if self._streamed:
            self._stream_columns(cols, output_budget)
        else:
            self._json_columns(cols, output_budget)
        assert self._ended_at is not None
        cols[R.DURATION] = max(0.0, self._ended_at - self._started)
        if self._first_token_at is not None:
            cols[R.TIME_TO_FIRST_TOKEN] = max(0.0, self._first_token_at - self._started)
        if self._status is not None and self._status >= 400 and self._error_type is None:
            self._error_type = str(self._status)
        cols[R.ERROR_TYPE] = self._error_type
        if any(b is not None and b.truncated for b in (request_budget, output_budget)) or (
                capture and self._assembler.truncated):
            self.flag(R.FLAG_CONTENT_TRUNCATED)
        if self._error_type is None and cols.get(R.INPUT_TOKENS) is None and \
                cols.get(R.OUTPUT_TOKENS) is None:
            self.flag(R.FLAG_USAGE_MISSING)  # never guessed: null, and said so
        cols[R.FLAGS] = self._flags or None
        return cols

    def _stream_columns(self, cols: dict[str, Any], budget: M.Budget | None) -> None:
        assert self._parser is not None
        self._events(self._parser.close())
        if self._parser.dropped:
            self.flag(R.FLAG_SSE_MALFORMED)
        cols[R.STREAM] = True
        cols.update(self._assembler.result(budget))
        if not self._assembler.done:
            self.flag(R.FLAG_STREAM_INCOMPLETE)

    def _json_columns(self, cols: dict[str, Any], budget: M.Budget | None) -> None:
        if self._response_size > self.settings.max_body_bytes:
            self.flag(R.FLAG_RESPONSE_TOO_LARGE)
            return
        if not self._response:
            return
        body = _loads(bytes(self._response))
        if not isinstance(body, dict):
            self.flag(R.FLAG_RESPONSE_NOT_JSON)
            return
        if self._status is not None and self._status >= 400:
            self._error_type = self._error_type or O.error_type(body)
            return
        cols.update(O.response_columns(self.api, body, budget))
