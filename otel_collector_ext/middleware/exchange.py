"""What the ASGI and WSGI middlewares share: one HTTP exchange being captured.

An `Exchange` chooses the correlation id, holds bounded copies of the request and
response bodies and the allow-listed headers, and at the end emits the `request` and
`response` records through the ordinary `Collector`. The server-specific modules only
translate their protocol into calls on it. No method raises: collection trouble is
logged (rate-limited) and the exchange carries on without capture.
"""

from __future__ import annotations

import functools
import logging
import re
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from exporters import contract as A

from ..genai.capture import GenAICapture, GenAISettings
from ..genai.openai_api import api_of_path
from ..genai.record import SOURCE, SOURCE_MIDDLEWARE
from ..pipeline.config import FORBIDDEN_HEADERS, Config
from ..pipeline.wiring import Pipeline, get_pipeline
from ..scoring.collector import Collector
from ..scoring.context import BasicCorrelationContext, new_correlation_id

_log = logging.getLogger("otel_collector_ext.middleware")

REQUEST_ID_HEADER = "x-request-id"
TRACEPARENT_HEADER = "traceparent"
MAX_REQUEST_ID_LENGTH = 128
# Starts with a letter or digit; no '/', '\\', spaces or control characters, so an id
# can never name another path, split a log line or forge a header.
_REQUEST_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:\-]{{0,{MAX_REQUEST_ID_LENGTH - 1}}}")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")
MAX_HEADER_VALUE = 4096  # characters kept of a captured header value
MAX_PATH = 4096  # characters kept of a path or query string

# Flags on records; documented in docs/payload-logging.md.
FLAG_TRUNCATED = "truncated"  # bytes beyond max_body_bytes were not recorded
FLAG_INCOMPLETE = "incomplete"  # the body recorded is not the whole body
FLAG_CLIENT_DISCONNECT = "client_disconnect"
FLAG_APP_ERROR = "app_error"  # the application raised
FLAG_STREAMED = "streamed"  # the response body was sent in several chunks
FLAG_REQUEST_ID_INVALID = "request_id_invalid"  # x-request-id rejected; an id was generated
FLAG_HEADER_TRUNCATED = "header_truncated"
FLAG_BODY_NOT_CAPTURED = "body_not_captured"  # sent by the server from a file



@functools.cache
def payload_collector(name: str) -> Collector:
    """The `request` or `response` Collector, made on first use: importing the middleware
    must not read the configuration (the middleware's constructor checks it)."""
    return Collector(name=name, on_error=lambda e: _log.warning("%s record: %s", name, e))

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(what: str, error: BaseException) -> None:
    with _warned_lock:
        if what in _warned:
            return
        _warned.add(what)
    _log.warning("payload logging: %s failed (%s: %s); the request is served without capture",
                 what, type(error).__name__, error)


def correlation_id(request_id: str | None, traceparent: str | None) -> tuple[str, bool]:
    """(the id of this exchange, whether a client's x-request-id was rejected).

    A valid x-request-id wins; else a W3C traceparent gives `<trace-id>-<parent-id>`
    (unique per client call, so two calls of one trace never merge); else a UUID.
    """
    if request_id is not None:
        request_id = request_id.strip()
        if _REQUEST_ID.fullmatch(request_id):
            return request_id, False
    if traceparent is not None:
        match = _TRACEPARENT.fullmatch(traceparent.strip())
        if (match and match[1] != "ff" and match[2].strip("0") and match[3].strip("0")):
            return f"{match[2]}-{match[3]}", request_id is not None
    return new_correlation_id(), request_id is not None


@dataclass(frozen=True, slots=True)
class Settings:
    """The payload-logging part of a Config, in the form the hot path wants.

    Header-name sets hold each name as str and as latin-1 bytes, so ASGI's raw byte
    headers are matched without decoding the ones that are not wanted.
    """

    capture_headers: frozenset[str | bytes]
    capture_query: bool
    exclude_exact: frozenset[str]  # request paths not recorded
    exclude_prefixes: tuple[str, ...]
    memory_limit: int
    max_body: int
    # Request headers an exchange must look at: the allow-list plus those it interprets.
    wanted: frozenset[str | bytes]
    wanted_names: frozenset[str]  # the same, str only
    response_wanted: frozenset[str | bytes]
    gen_ai: GenAISettings | None  # None: the gen_ai collection is off

    @classmethod
    def of(cls, config: Config) -> Settings:
        capture = frozenset(h.lower() for h in config.capture_headers) - FORBIDDEN_HEADERS
        return cls(
            capture_headers=_both(capture),
            capture_query=config.capture_query,
            exclude_exact=frozenset(p for p in config.exclude_paths if not p.endswith("*")),
            exclude_prefixes=tuple(p[:-1] for p in config.exclude_paths if p.endswith("*")),
            memory_limit=config.inline_limit_bytes,
            max_body=config.max_body_bytes,
            wanted=_both(capture | _INTERPRETED),
            wanted_names=capture | _INTERPRETED,
            response_wanted=_both(capture | {"content-type", "content-length"}),
            gen_ai=_gen_ai_settings(config),
        )


def _gen_ai_settings(config: Config) -> GenAISettings | None:
    collection = config.collection(A.GEN_AI_COLLECTION)
    if collection is None:
        return None
    return GenAISettings(capture_content=collection.capture_content,
                         max_content_bytes=collection.max_content_bytes,
                         max_body_bytes=config.max_body_bytes,
                         provider_name=collection.provider_name)


_INTERPRETED = frozenset({REQUEST_ID_HEADER, TRACEPARENT_HEADER, "content-type",
                          "content-length", "transfer-encoding"})


def _both(names: frozenset[str]) -> frozenset[str | bytes]:
    return frozenset(names) | {n.encode("latin-1") for n in names}


def _text(value: str | bytes) -> str:
    return value if type(value) is str else value.decode("latin-1")  # type: ignore[union-attr]


_MINIMAL_NAMES = frozenset({REQUEST_ID_HEADER, TRACEPARENT_HEADER})
_MINIMAL = _both(_MINIMAL_NAMES)


_settings_cache: tuple[Config, Settings] | None = None


def settings_for(config: Config) -> Settings:
    """`Settings.of(config)`, computed once per configuration."""
    global _settings_cache
    cached = _settings_cache
    if cached is not None and cached[0] is config:
        return cached[1]
    settings = Settings.of(config)
    _settings_cache = (config, settings)
    return settings


def wanted_headers() -> frozenset[str]:
    """Lower-case request header names the middleware reads (for WSGI environ lookups)."""
    try:
        return settings_for(get_pipeline().config).wanted_names
    except Exception:
        return _MINIMAL_NAMES


class BodyBuffer:
    """A bounded copy of a body: in memory up to `memory_limit`, then in a temporary file.

    Bytes beyond `max_body` are counted but not kept. The file is created only when a
    body outgrows the memory limit, and is deleted by `close()`.
    """

    __slots__ = ("memory_limit", "max_body", "size", "kept", "chunks", "_chunks", "_file")

    def __init__(self, memory_limit: int, max_body: int) -> None:
        self.memory_limit = memory_limit
        self.max_body = max_body
        self.size = 0  # bytes seen
        self.kept = 0  # bytes recorded
        self.chunks = 0
        self._chunks: list[bytes] = []
        self._file: IO[bytes] | None = None

    @property
    def truncated(self) -> bool:
        return self.kept < self.size

    @property
    def in_memory(self) -> int:
        """Bytes held in memory right now (never more than the memory limit)."""
        return 0 if self._file is not None else self.kept

    @property
    def spilled(self) -> bool:
        return self._file is not None

    def add(self, data: bytes) -> None:
        if not data:
            return
        if type(data) is not bytes:  # a memoryview or bytearray may change after send
            data = bytes(data)
        self.size += len(data)
        self.chunks += 1
        room = self.max_body - self.kept
        if room <= 0:
            return
        if len(data) > room:
            data = data[:room]
        if self._file is None:
            if self.kept + len(data) <= self.memory_limit:
                self._chunks.append(data)
                self.kept += len(data)
                return
            # Closed in close(), which every exchange reaches through finish().
            self._file = tempfile.TemporaryFile(prefix="otel-collector-body-")  # noqa: SIM115
            for chunk in self._chunks:
                self._file.write(chunk)
            self._chunks = []
        self._file.write(data)
        self.kept += len(data)

    def value(self) -> bytes:
        """The recorded bytes (read back from the file if the body spilled)."""
        if self._file is None:
            return self._chunks[0] if len(self._chunks) == 1 else b"".join(self._chunks)
        self._file.seek(0)
        return self._file.read()

    def close(self) -> None:
        self._chunks = []
        if self._file is not None:
            self._file.close()
            self._file = None


def _cap(value: str, limit: int, flags: list[str], flag: str) -> str:
    if len(value) <= limit:
        return value
    if flag not in flags:
        flags.append(flag)
    return value[:limit]


class Exchange:
    """One request/response pair: its correlation context and what is captured of it.

    Create it with `Exchange.begin()` when the request arrives, feed it the body
    chunks and the response start as they pass, and call `finish()` once at the end.
    """

    __slots__ = (
        "context", "request_id", "settings", "_started", "_method", "_path", "_query",
        "_request_headers", "_request_type", "_request_length", "_request_body",
        "_request_complete", "_response_body", "_response_headers", "_response_type",
        "_response_length", "_response_sent",
        "_status", "response_started", "response_complete", "_latency_ms", "_flags", "_gen_ai",
        "_request_flags", "_response_flags", "_finished",
    )

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.context = BasicCorrelationContext(request_id)
        self.settings: Settings | None = None  # None: nothing is captured
        self._started = time.perf_counter()
        self._flags: list[str] = []  # flags of both records
        self._request_flags: list[str] = []
        self._response_flags: list[str] = []
        self._request_body: BodyBuffer | None = None
        self._response_body: BodyBuffer | None = None
        self._method = self._path = ""
        self._query: str | None = None
        self._request_headers: dict[str, str] = {}
        self._request_type: str | None = None
        self._request_length: int | None = None
        self._request_complete = False
        self._response_headers: dict[str, str] = {}
        self._response_type: str | None = None
        self._response_length: int | None = None  # the response's Content-Length
        self._response_sent = 0
        self.response_started = False
        self.response_complete = False
        self._status: int | None = None
        self._latency_ms: float | None = None
        self._finished = False
        self._gen_ai: GenAICapture | None = None  # an OpenAI-compatible call: a gen_ai row

    @classmethod
    def begin(
        cls,
        method: str,
        path: str,
        query: str,
        headers: Iterable[tuple[str | bytes, str | bytes]],
    ) -> Exchange:
        """Start an exchange; `headers` are the request's (lower-case name, value) pairs,
        str or latin-1 bytes. Only names in `wanted_headers()` matter; others may be left out.
        """
        pipeline: Pipeline | None
        try:
            pipeline = get_pipeline()
            config = pipeline.config
            settings = settings_for(config)
        except Exception as e:  # a broken configuration must not break serving
            _warn_once("reading the configuration", e)
            pipeline = settings = None
        found: dict[str, str] = {}
        wanted = settings.wanted if settings else _MINIMAL
        for raw_name, raw_value in headers:
            if raw_name in wanted:
                name, value = _text(raw_name), _text(raw_value)
                found[name] = f"{found[name]}, {value}" if name in found else value
        cid, rejected = correlation_id(found.get(REQUEST_ID_HEADER), found.get(TRACEPARENT_HEADER))
        exchange = cls(cid)
        if rejected:
            exchange._flags.append(FLAG_REQUEST_ID_INVALID)
        if pipeline is None or settings is None:
            return exchange
        if path in settings.exclude_exact or (
            settings.exclude_prefixes and path.startswith(settings.exclude_prefixes)
        ):
            return exchange  # a health check or probe: served with an id, not recorded
        try:
            sampler = pipeline.sampler
            want_request = (config.collection("request") is not None
                            and sampler.should_sample("request", cid))
            want_response = (config.collection("response") is not None
                             and sampler.should_sample("response", cid))
            gen_ai = settings.gen_ai
            api = api_of_path(path) if gen_ai is not None and method == "POST" else None
            if gen_ai is not None and api is not None and sampler.should_sample(
                    A.GEN_AI_COLLECTION, cid):
                exchange._gen_ai = GenAICapture(api, path, gen_ai, exchange._started)
            if not (want_request or want_response or exchange._gen_ai is not None):
                return exchange
            exchange.settings = settings
            exchange._note_request(settings, method, path, query, found)
            if want_request:
                exchange._request_body = BodyBuffer(settings.memory_limit, settings.max_body)
            if want_response:
                exchange._response_body = BodyBuffer(settings.memory_limit, settings.max_body)
        except Exception as e:
            _warn_once("starting a capture", e)
            exchange.settings = None
        return exchange

    def _note_request(self, settings: Settings, method: str, path: str, query: str,
                      found: dict[str, str]) -> None:
        """The request line and the captured headers (capped), and whether a body follows."""
        flags = self._flags
        self._method = method if len(method) <= 32 else _cap(
            method, 32, flags, FLAG_HEADER_TRUNCATED)
        self._path = path if len(path) <= MAX_PATH else _cap(
            path, MAX_PATH, flags, FLAG_HEADER_TRUNCATED)
        self._query = (_cap(query, MAX_PATH, flags, FLAG_HEADER_TRUNCATED)
                       if settings.capture_query and query else None)
        self._request_headers = self._captured(found.items())
        self._request_type = found.get("content-type")
        length = found.get("content-length", "")
        self._request_length = int(length) if length.isdigit() else None
        # A request with neither Content-Length nor Transfer-Encoding has no body.
        self._request_complete = self._request_length == 0 or (
            self._request_length is None and "transfer-encoding" not in found)

    def _captured(self, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
        """Attributes of the allow-listed headers among decoded (name, value) pairs."""
        assert self.settings is not None
        allowed = self.settings.capture_headers
        out: dict[str, str] = {}
        for name, value in headers:
            if name in allowed and name not in FORBIDDEN_HEADERS:
                key = A.HTTP_HEADERS_PREFIX + name
                value = f"{out[key]}, {value}" if key in out else value
                if len(value) > MAX_HEADER_VALUE:
                    value = _cap(value, MAX_HEADER_VALUE, self._flags, FLAG_HEADER_TRUNCATED)
                out[key] = value
        return out

    @property
    def capturing(self) -> bool:
        return self.settings is not None

    # -- events, in the order a server sees them -------------------------------

    def request_body(self, data: bytes, more: bool) -> None:
        """A chunk of the request body as the application reads it."""
        buffer = self._request_body
        if buffer is not None and not self._finished:
            try:
                buffer.add(data)
            except Exception as e:
                self._stop_capture("buffering a request body", e)
        if self._gen_ai is not None and not self._finished:
            self._gen_ai_call("reading a GenAI request", GenAICapture.request_body, data)
        if not more:
            self._request_complete = True

    def response_start(self, status: int,
                       headers: Iterable[tuple[str | bytes, str | bytes]]) -> None:
        """The response status and headers: (lower-case name, value), str or latin-1 bytes."""
        self.response_started = True
        self._status = status
        settings = self.settings
        if settings is None:
            return
        try:
            wanted = settings.response_wanted
            found = [(_text(n), _text(v)) for n, v in headers if n in wanted]
            self._response_headers = self._captured(found)
            for name, value in found:
                if name == "content-type":
                    self._response_type = value
                elif name == "content-length" and value.strip().isdigit():
                    self._response_length = int(value)
        except Exception as e:
            self._stop_capture("reading response headers", e)
        if self._gen_ai is not None:
            self._gen_ai_call("reading a GenAI response", GenAICapture.response_start,
                              status, self._response_type)

    def response_body(self, data: bytes, more: bool) -> None:
        """A chunk of the response body, before it goes to the client.

        The chunk that completes the response (the last one, or the one reaching the
        Content-Length) emits the records before it is sent, so a client holding the
        whole response knows its records are already queued.
        """
        if self._finished:
            return
        buffer = self._response_body
        if buffer is not None:
            try:
                buffer.add(data)
            except Exception as e:
                self._stop_capture("buffering a response body", e)
        if self._gen_ai is not None:
            self._gen_ai_call("reading a GenAI response", GenAICapture.response_body, data)
        self._response_sent += len(data)
        length = self._response_length
        if not more or (length is not None and self._response_sent >= length):
            self.response_complete = True
            if self._gen_ai is not None:
                self._gen_ai.end()
            self._latency_ms = (time.perf_counter() - self._started) * 1000.0
            self.finish()

    def flag(self, flag: str, *, request: bool = True, response: bool = True) -> None:
        """Mark the request record, the response record or both."""
        for flags, wanted in ((self._request_flags, request), (self._response_flags, response)):
            if wanted and flag not in flags:
                flags.append(flag)

    def client_disconnected(self) -> None:
        """The client went away; harmless once the response is complete."""
        if not self.response_complete:
            self.flag(FLAG_CLIENT_DISCONNECT)
            if self._gen_ai is not None:
                self._gen_ai.client_disconnected()

    def app_failed(self, error: BaseException) -> None:
        """The application raised `error` while serving the request."""
        self.flag(FLAG_APP_ERROR)
        if self._gen_ai is not None:
            self._gen_ai.failed(type(error).__qualname__)

    def _gen_ai_call(self, what: str, method: Any, *args: Any) -> None:
        try:
            method(self._gen_ai, *args)
        except Exception as e:  # the GenAI capture stops; the rest carries on
            _warn_once(what, e)
            self._gen_ai = None

    def _stop_capture(self, what: str, error: BaseException) -> None:
        _warn_once(what, error)
        self.settings = None
        self._close_buffers()

    # -- the end --------------------------------------------------------------

    def finish(self) -> None:
        """Emit the request and response records (once); never raises."""
        if self._finished:
            return
        self._finished = True
        try:
            if self.settings is not None:
                self._emit()
        except Exception as e:
            _warn_once("emitting records", e)
        finally:
            self._close_buffers()

    def _emit(self) -> None:
        if self._latency_ms is None:
            self._latency_ms = (time.perf_counter() - self._started) * 1000.0
        common: dict[str, Any] = {A.HTTP_METHOD: self._method, A.HTTP_PATH: self._path}
        if self._query is not None:
            common[A.HTTP_QUERY] = self._query
        if self._request_body is not None:
            body = self._request_body
            flags = self._request_flags
            if not self._request_complete or (
                self._request_length is not None and body.size < self._request_length
            ):
                flags.append(FLAG_INCOMPLETE)
            attrs = {**common, **self._request_headers}
            self._body_attributes(attrs, body, self._request_type, flags)
            payload_collector("request").collect(body.value(), self.context, attributes=attrs)
        if self._response_body is not None:
            body = self._response_body
            flags = self._response_flags
            if not self.response_complete and FLAG_BODY_NOT_CAPTURED not in flags:
                flags.append(FLAG_INCOMPLETE)
            if body.chunks > 1:
                flags.append(FLAG_STREAMED)
            attrs = {**common, **self._response_headers}
            if self._status is not None:
                attrs[A.HTTP_STATUS] = self._status
            attrs[A.HTTP_LATENCY_MS] = round(self._latency_ms, 3)
            self._body_attributes(attrs, body, self._response_type, flags)
            payload_collector("response").collect(body.value(), self.context, attributes=attrs)
        if self._gen_ai is not None:
            columns = self._gen_ai.columns()
            columns[SOURCE] = SOURCE_MIDDLEWARE
            payload_collector(A.GEN_AI_COLLECTION).collect(columns, self.context)

    def _body_attributes(
        self, attrs: dict[str, Any], body: BodyBuffer, content_type: str | None, flags: list[str]
    ) -> None:
        if content_type:
            attrs[A.CONTENT_TYPE] = _cap(content_type, 256, flags, FLAG_HEADER_TRUNCATED)
        attrs[A.BODY_SIZE] = body.size
        if body.truncated:
            attrs[A.BODY_TRUNCATED] = True
            flags.append(FLAG_TRUNCATED)
        all_flags = self._flags + flags
        if all_flags:
            attrs[A.FLAGS] = tuple(all_flags)

    def _close_buffers(self) -> None:
        for buffer in (self._request_body, self._response_body):
            if buffer is not None:
                buffer.close()
