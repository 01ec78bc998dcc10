"""A read-stream wrapper that notices when an MCP transport ends.

The SDK's ``ClientSession`` fails pending and later requests with "Connection closed" once the
transport's read stream ends (a stdio server exited, an HTTP stream closed), but tells nobody
else. Wrapping the stream lets the upstream supervisor learn of it at once and reconnect,
instead of waiting for the next call or heartbeat.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar

import anyio
from mcp.client._transport import ReadStream

__all__ = ["WatchedReadStream"]

T = TypeVar("T")

_ENDED = (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError)


class WatchedReadStream(Generic[T]):
    """Delegates to ``inner``; calls ``on_end()`` (once) when the stream ends or is closed."""

    __slots__ = ("_ended", "_inner", "_on_end")

    def __init__(self, inner: ReadStream[T], *, on_end: Callable[[], None]) -> None:
        self._inner = inner
        self._on_end = on_end
        self._ended = False

    @property
    def last_context(self) -> Any:
        # The dispatcher reads the sender's contextvars snapshot here (HTTP transport only).
        return getattr(self._inner, "last_context", None)

    def _end(self) -> None:
        if not self._ended:
            self._ended = True
            self._on_end()

    async def receive(self) -> T:
        try:
            return await self._inner.receive()
        except _ENDED:
            self._end()
            raise

    async def aclose(self) -> None:
        self._end()
        await self._inner.aclose()

    def __aiter__(self) -> WatchedReadStream[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self._inner.receive()
        except anyio.EndOfStream:
            self._end()
            raise StopAsyncIteration from None
        except _ENDED:
            self._end()
            raise

    async def __aenter__(self) -> WatchedReadStream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None
