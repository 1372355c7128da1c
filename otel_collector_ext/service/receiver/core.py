"""What an OTLP logs request turns into, independent of the transport that carried it.

Both servers (gRPC and HTTP) parse the request, then call `Receiver.export`,
which decodes the records and hands them to a `Sink` (the service's pipelines).
The outcome says how the transport answers: accepted (possibly with some
records rejected: partial success), malformed, too large, busy (retry later),
unauthenticated, or shutting down.
"""

from __future__ import annotations

import enum
import hmac
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.sdk._logs import ReadableLogRecord

from exporters.otlp.codec import DecodeBudget

from .decode import RequestError, TooManyRecords, decode_request, parse_json, parse_protobuf

_log = logging.getLogger(__name__)

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may hold (every limit applies to both transports)."""

    max_request_bytes: int = 16 * MiB  # compressed and decompressed
    max_records: int = 8192
    max_depth: int = 32  # AnyValue nesting
    # What a request may decode to (docs/otlp.md, "Limits"): declared rows are checked
    # before anything is allocated, so a small request cannot build a huge table.
    max_rows_per_record: int = 1_000_000
    max_cells: int = 2_000_000
    max_decoded_bytes: int = 256 * MiB

    def budget(self) -> DecodeBudget:
        """A fresh decoding budget for one request."""
        return DecodeBudget(max_rows_per_record=self.max_rows_per_record,
                            max_cells=self.max_cells, max_bytes=self.max_decoded_bytes)


class Busy(Exception):  # noqa: N818 - a state, not a failure
    """The sink cannot take the records now; the client should retry after `retry_after` s."""

    def __init__(self, retry_after: float = 1.0, *, stopping: bool = False) -> None:
        super().__init__("shutting down" if stopping else "queue full")
        self.retry_after = retry_after
        self.stopping = stopping


@dataclass(frozen=True)
class Rejected:
    """Records a sink took but will not store (no exporter for them), and why, for clients."""

    count: int
    reason: str  # a counter suffix: records_rejected_<reason>
    message: str


class Sink(Protocol):
    """Takes decoded records; raises Busy instead of accepting what it could lose.

    It also gets the `request` they came from, which a write-ahead log keeps."""

    def accept(self, records: Sequence[ReadableLogRecord],
               request: ExportLogsServiceRequest | None = None) -> Rejected | None: ...


class Status(enum.Enum):
    OK = "ok"
    INVALID = "invalid"
    TOO_LARGE = "too_large"
    BUSY = "busy"
    UNAUTHENTICATED = "unauthenticated"
    INTERNAL = "internal"


@dataclass(frozen=True)
class Outcome:
    status: Status
    message: str = ""
    rejected: int = 0  # with OK: records rejected (partial success)
    retry_after: float = 0.0


def success_response(outcome: Outcome) -> ExportLogsServiceResponse:
    """The OTLP answer to an accepted request, with partial success when some were rejected."""
    response = ExportLogsServiceResponse()
    if outcome.rejected:
        response.partial_success.CopyFrom(ExportLogsPartialSuccess(
            rejected_log_records=outcome.rejected, error_message=outcome.message))
    return response


class BearerAuth:
    """Checks `Authorization: Bearer <token>` in constant time."""

    def __init__(self, token: str) -> None:
        if not token or any(c.isspace() for c in token):
            raise ValueError("the bearer token must be non-empty and contain no whitespace")
        self._expected = ("bearer " + token).encode()

    def check(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        given = (scheme.lower() + " " + value.strip()).encode("utf-8", "replace")
        return hmac.compare_digest(given, self._expected)


class Counters:
    """What the receiver did, for the health endpoint and logs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values = {
            "requests": 0, "records_accepted": 0, "records_rejected": 0,
            "requests_invalid": 0, "requests_busy": 0, "requests_unauthenticated": 0,
            "requests_too_large": 0, "requests_failed": 0, "records_rejected_not_inference": 0,
        }

    def add(self, **amounts: int) -> None:
        with self._lock:
            for key, n in amounts.items():
                self.values[key] = self.values.get(key, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.values)


class Receiver:
    """The transport-neutral part of the OTLP receiver: limits, auth, decoding, the sink."""

    def __init__(self, sink: Sink, *, limits: Limits | None = None,
                 auth: BearerAuth | None = None, name: str = "otlp") -> None:
        self.sink = sink
        self.limits = limits or Limits()
        self.auth = auth
        self.name = name
        self.counters = Counters()

    def authorized(self, authorization: str | None) -> bool:
        if self.auth is None or self.auth.check(authorization):
            return True
        self.counters.add(requests=1, requests_unauthenticated=1)
        return False

    def refuse(self, status: Status, message: str) -> Outcome:
        """Count and describe a request refused before decoding (bad bytes, too large)."""
        key = {Status.INVALID: "requests_invalid", Status.TOO_LARGE: "requests_too_large"}.get(
            status, "requests_failed")
        self.counters.add(requests=1, **{key: 1})
        return Outcome(status, message)

    def export_bytes(self, data: bytes, *, as_json: bool = False) -> Outcome:
        """Parse a serialized request (binary protobuf or OTLP/JSON), then `export` it."""
        try:
            request = (parse_json if as_json else parse_protobuf)(
                data, max_depth=self.limits.max_depth)
        except RequestError as e:
            return self.refuse(Status.INVALID, str(e))
        return self.export(request)

    def export(self, request: ExportLogsServiceRequest) -> Outcome:
        limits = self.limits
        try:
            decoded = decode_request(request, max_depth=limits.max_depth,
                                     max_records=limits.max_records, budget=limits.budget())
        except TooManyRecords as e:
            return self.refuse(Status.TOO_LARGE, str(e))
        except RequestError as e:
            return self.refuse(Status.INVALID, str(e))
        except Exception:
            _log.exception("%s: decoding a request failed", self.name)
            return self.refuse(Status.INTERNAL, "internal error")
        unstored: Rejected | None = None
        try:
            if decoded.records:
                unstored = self.sink.accept(decoded.records, request)
        except Busy as e:
            self.counters.add(requests=1, requests_busy=1)
            return Outcome(Status.BUSY, str(e), retry_after=e.retry_after)
        except Exception:
            _log.exception("%s: the pipeline failed to take %d records", self.name,
                           len(decoded.records))
            return self.refuse(Status.INTERNAL, "internal error")
        if decoded.rejected:
            _log.info("%s: rejected %d record(s): %s", self.name, decoded.rejected, decoded.error)
        accepted, rejected, message = len(decoded.records), decoded.rejected, decoded.error
        extra: dict[str, int] = {}
        if unstored is not None and unstored.count:
            accepted -= unstored.count
            rejected += unstored.count
            message = "; ".join(m for m in (message, unstored.message) if m)
            extra[f"records_rejected_{unstored.reason}"] = unstored.count
        self.counters.add(requests=1, records_accepted=accepted, records_rejected=rejected,
                          **extra)
        return Outcome(Status.OK, message, rejected=rejected)
