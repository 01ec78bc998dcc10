"""Server-sent events framing for Coze chat streams, robust to any network chunking.

The parser works on raw bytes: an event, a line, a ``\\r\\n`` pair or a multi-byte UTF-8
character may be split across chunks, so bytes go through an incremental UTF-8 decoder and
lines are cut only on ``\\r``, ``\\n`` or ``\\r\\n`` (never on U+2028 and the other separators
``str.splitlines`` knows, which JSON may carry raw). Field handling follows the WHATWG SSE
rules: comments (``:``) are ignored, one optional space after the colon is stripped, several
``data`` lines join with ``\\n``.

This module knows nothing of Coze's event names; :mod:`kai_bridge.coze.events` turns a
:class:`ServerSentEvent` into a typed chat event.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent", "aiter_sse"]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event. ``event`` is ``"message"`` when the stream named none."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: ``feed(bytes)`` returns the events completed so far.

    At the end of the stream call :meth:`close`: complete lines still pending are dispatched
    as a last event (some servers close right after the last ``data`` line without the blank
    line), while a final line that never got its line break is dropped as truncated.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._started = False
        self._skip_lf = False  # the previous chunk ended with \r: a leading \n belongs to it
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._has_fields = False

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        text = self._decoder.decode(chunk)
        return self._consume(text)

    def close(self) -> list[ServerSentEvent]:
        """Finish the stream: flush the decoder and dispatch what is complete."""
        events = self._consume(self._decoder.decode(b"", final=True))
        # A dangling unterminated line is a cut stream: do not pretend it is whole.
        self._buffer = ""
        if self._has_fields:
            event = self._dispatch()
            if event is not None:
                events.append(event)
        return events

    def _consume(self, text: str) -> list[ServerSentEvent]:
        if not text:
            return []
        if not self._started:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        buffer = self._buffer + text
        events: list[ServerSentEvent] = []
        start = 0
        length = len(buffer)
        while start < length:
            cr = buffer.find("\r", start)
            lf = buffer.find("\n", start)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, next_start = lf, lf + 1
            elif cr + 1 < length:
                end = cr
                next_start = cr + 2 if buffer[cr + 1] == "\n" else cr + 1
            else:
                # \r is the last char we have: it ends the line, and a \n arriving next is its pair.
                end, next_start = cr, cr + 1
                self._skip_lf = True
            event = self._line(buffer[start:end])
            if event is not None:
                events.append(event)
            start = next_start
        self._buffer = buffer[start:]
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            if value.isdigit():
                self._retry = int(value)
        else:
            return None  # unknown field: ignored, as the SSE rules say
        self._has_fields = True
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event: ServerSentEvent | None = None
        if self._data or self._event:
            # An event line with no data still matters to Coze-style streams (a bare ``done``).
            event = ServerSentEvent(
                event=self._event or "message", data="\n".join(self._data), id=self._id, retry=self._retry
            )
        self._event = ""
        self._data = []
        self._retry = None
        self._has_fields = False
        return event


async def aiter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[ServerSentEvent]:
    """Yield the events of a byte stream as soon as each one is complete."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.close():
        yield event
