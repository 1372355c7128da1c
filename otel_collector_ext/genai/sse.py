"""An incremental server-sent-events parser with bounded memory.

Fed the response body as the server sends it (chunks split anywhere, even inside a
UTF-8 character or between the CR and LF of a line end), it returns the complete
events seen so far, following the WHATWG event-stream rules (fields `event`, `data`,
`id`; comments; CR, LF or CRLF line ends).

Why not a library: `httpx-sse` (the maintained SSE client) has the same two-stage
design, but its line decoder and event decoder both keep everything they are given
until a line or an event ends, so a stream that never sends a newline grows without
bound, and it takes text (decoded beforehand) and imports httpx. Here a line longer
than `max_line_bytes` and an event holding more than `max_event_bytes` of data are
dropped and counted (`dropped`), so what a never-ending or hostile stream costs is at
most those two limits.
"""

from __future__ import annotations

from typing import NamedTuple

DEFAULT_MAX_LINE_BYTES = 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024
_FIELDS = frozenset({b"data", b"event", b"id"})  # `retry` means nothing to a recorder


class ServerSentEvent(NamedTuple):
    event: str  # "" when the event named none (the default type, "message")
    data: str
    id: str


class SSEParser:
    """`feed(bytes)` → complete events; `close()` → the last event if the body ended mid-way."""

    __slots__ = ("max_line", "max_event", "dropped", "_pending", "_skipping", "_event",
                 "_data", "_data_bytes", "_id", "_has_data", "_oversized", "_after_cr")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_line = max_line_bytes
        self.max_event = max_event_bytes
        self.dropped = 0  # lines and events dropped for being over a limit, or not UTF-8
        self._pending = bytearray()  # the start of a line whose end has not come yet
        self._skipping = False  # inside a line already over the limit: drop until its end
        self._event = ""
        self._data: list[str] = []
        self._data_bytes = 0
        self._id = ""
        self._has_data = False
        self._oversized = False  # this event's data went over max_event: drop it
        self._after_cr = False  # the last chunk ended with CR: an LF next is part of it

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        if not chunk:
            return events
        if self._after_cr:
            self._after_cr = False
            if chunk[:1] == b"\n":  # the LF of a CRLF split across two chunks
                chunk = chunk[1:]
        if (chunk[:6] == b"data: " and chunk[-2:] == b"\n\n" and not self._pending
                and not self._has_data and chunk.count(b"\n") == 2 and b"\r" not in chunk
                and len(chunk) <= self.max_line and not self._skipping):
            # The usual chunk of an LLM stream: exactly one whole one-line event.
            try:
                event = ServerSentEvent(self._event, chunk[6:-2].decode("utf-8"), self._id)
            except UnicodeDecodeError:
                pass  # the general path counts it
            else:
                self._event = ""
                return [event]
        if b"\r" in chunk:  # CR and CRLF end lines too; LF alone is the common case
            self._after_cr = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        rest = lines.pop()  # the start of a line whose end has not come yet
        for i, line in enumerate(lines):
            if i == 0 and (self._pending or self._skipping):
                if self._skipping:  # the end of a line already over the limit
                    self._skipping = False
                    continue
                self._pending += line
                line = bytes(self._pending)
                self._pending.clear()
            self._line(line, events)
        if rest:
            self._keep(rest)
        return events

    def close(self) -> list[ServerSentEvent]:
        """The body ended: a last line without its line end still counts; an event not
        ended by a blank line is dispatched too (servers that stop without one)."""
        events: list[ServerSentEvent] = []
        if self._skipping:
            self._skipping = False
        elif self._pending:
            line = bytes(self._pending)
            self._pending.clear()
            self._line(line, events)
        self._dispatch(events)
        return events

    # -- internals -------------------------------------------------------------------

    def _keep(self, part: bytes) -> None:
        if self._skipping:
            return
        if len(self._pending) + len(part) > self.max_line:
            self._pending.clear()
            self._skipping = True
            self.dropped += 1
            return
        self._pending += part

    def _line(self, raw: bytes, events: list[ServerSentEvent]) -> None:
        if not raw:
            self._dispatch(events)
            return
        if len(raw) > self.max_line:
            self.dropped += 1
            return
        name, colon, value = raw.partition(b":")
        if name not in _FIELDS:  # a comment (no name), or a field that is ignored
            return
        if colon and value[:1] == b" ":
            value = value[1:]
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            self.dropped += 1
            return
        if name == b"data":
            self._has_data = True
            if self._oversized:
                return
            self._data_bytes += len(value)
            if self._data_bytes > self.max_event:
                self._oversized = True
                self._data = []
                return
            self._data.append(text)
        elif name == b"event":
            self._event = text
        elif "\0" not in text:  # id
            self._id = text

    def _dispatch(self, events: list[ServerSentEvent]) -> None:
        if self._has_data:
            if self._oversized:
                self.dropped += 1
            else:
                data = self._data
                events.append(ServerSentEvent(
                    self._event, data[0] if len(data) == 1 else "\n".join(data), self._id))
        self._event = ""
        self._data = []
        self._data_bytes = 0
        self._has_data = False
        self._oversized = False
