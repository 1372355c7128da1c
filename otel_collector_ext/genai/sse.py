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

from dataclasses import dataclass

DEFAULT_MAX_LINE_BYTES = 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
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
        start, size = 0, len(chunk)
        if self._after_cr and size:
            self._after_cr = False
            if chunk[0] == 0x0A:  # the LF of a CRLF split across two chunks
                start = 1
        while start < size:
            # The next line end: LF, CR or CRLF.
            lf = chunk.find(b"\n", start)
            cr = chunk.find(b"\r", start, lf if lf >= 0 else size)
            end = cr if cr >= 0 else lf
            if end < 0:
                self._keep(chunk[start:])
                break
            self._keep(chunk[start:end])
            self._line(events)
            start = end + 1
            if chunk[end] == 0x0D:
                if start < size:
                    if chunk[start] == 0x0A:
                        start += 1
                else:
                    self._after_cr = True
        return events

    def close(self) -> list[ServerSentEvent]:
        """The body ended: a last line without its line end still counts; an event not
        ended by a blank line is dispatched too (servers that stop without one)."""
        events: list[ServerSentEvent] = []
        if self._pending or self._skipping:
            self._line(events)
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

    def _line(self, events: list[ServerSentEvent]) -> None:
        if self._skipping:
            self._skipping = False
            return
        raw = bytes(self._pending)
        self._pending.clear()
        if not raw:
            self._dispatch(events)
            return
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.dropped += 1
            return
        if line.startswith(":"):
            return
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._has_data = True
            if self._oversized:
                return
            self._data_bytes += len(raw)
            if self._data_bytes > self.max_event:
                self._oversized = True
                self._data = []
                return
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value

    def _dispatch(self, events: list[ServerSentEvent]) -> None:
        if self._has_data:
            if self._oversized:
                self.dropped += 1
            else:
                events.append(ServerSentEvent(self._event, "\n".join(self._data), self._id))
        self._event = ""
        self._data = []
        self._data_bytes = 0
        self._has_data = False
        self._oversized = False
