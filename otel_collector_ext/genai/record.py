"""The `gen_ai` row: one typed record per model call, whatever recorded it.

Column names follow the OpenTelemetry GenAI semantic conventions (attributes of the
inference span and of the `gen_ai.client.inference.operation.details` event, and the
server metrics for the two durations); `load()` returns them exactly as written here.
Three columns are this project's own: `url.path`, `ml.inference.source` and
`ml.inference.flags` (see `FLAGS` below and docs/genai.md).

`gen_ai_row()` is the one place a row is made typed: the payload middleware, the
mapping of upstream OpenTelemetry events and `Collector(name="gen_ai").collect(dict)`
all go through it, so the table keeps one type per column (ints stay ints, the
temperature is always a float, finish reasons a list of strings). Message columns stay
Python lists until `messages_as_json()` turns them into JSON text, after redaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from exporters.contract import GEN_AI_COLLECTION

__all__ = ["GEN_AI_COLLECTION", "GenAIRecordError", "gen_ai_row", "messages_as_json"]

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
FINISH_REASONS = "gen_ai.response.finish_reasons"
TEMPERATURE = "gen_ai.request.temperature"
MAX_TOKENS = "gen_ai.request.max_tokens"
TOP_P = "gen_ai.request.top_p"
INPUT_TOKENS = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
TIME_TO_FIRST_TOKEN = "gen_ai.server.time_to_first_token"
DURATION = "gen_ai.server.request.duration"
STATUS = "http.response.status_code"
ERROR_TYPE = "error.type"
STREAM = "gen_ai.request.stream"
PATH = "url.path"
SOURCE = "ml.inference.source"
FLAGS = "ml.inference.flags"

MESSAGE_COLUMNS = (INPUT_MESSAGES, OUTPUT_MESSAGES)

# Column → the Python type its values have (None allowed everywhere). Order is the
# order of the stored columns.
COLUMNS: dict[str, type] = {
    OPERATION: str, PROVIDER: str, REQUEST_MODEL: str, RESPONSE_MODEL: str,
    RESPONSE_ID: str, FINISH_REASONS: list, TEMPERATURE: float, MAX_TOKENS: int,
    TOP_P: float, INPUT_TOKENS: int, OUTPUT_TOKENS: int, INPUT_MESSAGES: list,
    OUTPUT_MESSAGES: list, TIME_TO_FIRST_TOKEN: float, DURATION: float, STATUS: int,
    ERROR_TYPE: str, STREAM: bool, PATH: str, SOURCE: str, FLAGS: list,
}

# Values of `ml.inference.source`.
SOURCE_MIDDLEWARE = "middleware"  # the ASGI / WSGI payload middleware
SOURCE_COLLECT = "collect"  # Collector(name="gen_ai").collect(dict)
SOURCE_OTEL_EVENT = "otel_event"  # a gen_ai.client.inference.operation.details event

# Flags (`ml.inference.flags`), documented in docs/genai.md.
FLAG_USAGE_MISSING = "usage_missing"  # a stream without a usage chunk: tokens are null
FLAG_CONTENT_TRUNCATED = "content_truncated"  # message text cut at max_content_bytes
FLAG_CONTENT_NOT_CAPTURED = "content_not_captured"  # capture_content is off
FLAG_REQUEST_NOT_JSON = "request_not_json"
FLAG_RESPONSE_NOT_JSON = "response_not_json"  # a body (or SSE data) that is not JSON
FLAG_REQUEST_TOO_LARGE = "request_too_large"  # over max_body_bytes: not parsed
FLAG_RESPONSE_TOO_LARGE = "response_too_large"  # a JSON body over max_body_bytes
FLAG_SSE_MALFORMED = "sse_malformed"  # lines or events over the SSE limits were dropped
FLAG_STREAM_INCOMPLETE = "stream_incomplete"  # the stream ended without its final event
FLAG_CLIENT_DISCONNECT = "client_disconnect"
FLAG_APP_ERROR = "app_error"

MAX_NAME_CHARS = 256  # model names, ids, error types, finish reasons


class GenAIRecordError(TypeError):
    """A GenAI record given to `collect()` has an unknown key or a value of a wrong type."""


def _number(value: Any, key: str, kind: type) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GenAIRecordError(f"{key} must be a number, not {type(value).__name__}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise GenAIRecordError(f"{key} must be a whole number, not {value!r}")
        return int(value)
    return float(value)


def _text(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise GenAIRecordError(f"{key} must be a string, not {type(value).__name__}")
    return value[:MAX_NAME_CHARS]


def _strings(value: Any, key: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise GenAIRecordError(f"{key} must be a list of strings")
    return [v[:MAX_NAME_CHARS] for v in value]


def _messages(value: Any, key: str) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)):  # JSON text, as stored
        try:
            value = json.loads(value)
        except ValueError:
            raise GenAIRecordError(f"{key} must be a list of messages or its JSON text") from None
    if not isinstance(value, (list, tuple)):
        raise GenAIRecordError(f"{key} must be a list of messages, not {type(value).__name__}")
    return list(value)


def gen_ai_row(record: Mapping[str, Any], *, source: str, capture_content: bool) -> dict[str, Any]:
    """A typed row with every column (missing ones None) from a mapping of those columns.

    GenAIRecordError on a key that is not a column or a value of the wrong type. With
    `capture_content` off, the message columns are null and the row is flagged.
    """
    if not isinstance(record, Mapping):
        raise GenAIRecordError(f"a GenAI record is a dict of its columns, not {type(record).__name__}")
    unknown = [k for k in record if k not in COLUMNS]
    if unknown:
        raise GenAIRecordError(f"unknown GenAI column(s) {sorted(map(str, unknown))}; "
                               f"the columns are {list(COLUMNS)}")
    row: dict[str, Any] = {}
    for key, kind in COLUMNS.items():
        value = record.get(key)
        if kind is str:
            row[key] = _text(value, key)
        elif kind is bool:
            if value is not None and not isinstance(value, bool):
                raise GenAIRecordError(f"{key} must be true or false")
            row[key] = value
        elif kind in (int, float):
            row[key] = _number(value, key, kind)
        elif key in MESSAGE_COLUMNS:
            row[key] = _messages(value, key)
        else:
            row[key] = _strings(value, key)
    row[SOURCE] = row[SOURCE] or source
    flags = row[FLAGS] or []
    if not capture_content:
        row[INPUT_MESSAGES] = row[OUTPUT_MESSAGES] = None
        if FLAG_CONTENT_NOT_CAPTURED not in flags:
            flags.append(FLAG_CONTENT_NOT_CAPTURED)
    row[FLAGS] = flags or None
    return row


def messages_as_json(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with its message lists as JSON text (the stored form), after redaction."""
    for key in MESSAGE_COLUMNS:
        value = row.get(key)
        if value is not None and not isinstance(value, str):
            row[key] = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return row
