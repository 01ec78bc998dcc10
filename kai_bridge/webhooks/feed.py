"""The recent-events feed behind the MCP resource: what to show, and who to tell when it changes.

Changes (an event stored, an event's outcome recorded) are coalesced: while one round of
notifications is going out, further changes wait and go out together in the next round, so
a burst of callbacks costs each subscriber a few notifications, not one per event. A slow or
broken subscriber is given a few seconds per round and never holds up the dispatcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import anyio
from pydantic import JsonValue

from kai_bridge.webhooks.inbox import Inbox, event_json, summary_json

__all__ = ["EventFeed"]

logger = logging.getLogger(__name__)

_DELIVERY_TIMEOUT: Final = 5.0

Listener = Callable[[list[str]], Awaitable[None]]


class EventFeed:
    """Recent inbox events as JSON, and change notifications for whoever subscribed."""

    def __init__(self, *, inbox: Inbox, recent_limit: int = 50) -> None:
        self._inbox = inbox
        self._limit = recent_limit
        self._listeners: dict[object, Listener] = {}
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def recent(self) -> dict[str, JsonValue]:
        """The newest events (summaries, newest first) and the count of each status."""
        events = await self._inbox.list_events(limit=self._limit)
        counts: dict[str, JsonValue] = dict(await self._inbox.counts())
        return {"events": [summary_json(e) for e in events], "counts": counts}

    async def event(self, event_id: str) -> dict[str, JsonValue] | None:
        found = await self._inbox.get(event_id)
        return None if found is None else event_json(found)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``await listener(event_ids)`` after changes; returns the unsubscribe function."""
        token = object()
        self._listeners[token] = listener

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe

    def changed(self, event_id: str) -> None:
        """``event_id`` was stored or finished: tell the subscribers soon. Call from the event loop."""
        if not self._listeners:
            return
        self._pending.add(event_id)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._deliver(), name="kai-bridge-event-feed")

    async def aclose(self) -> None:
        self._listeners.clear()
        self._pending.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _deliver(self) -> None:
        while self._pending:
            ids = sorted(self._pending)
            self._pending.clear()
            for listener in list(self._listeners.values()):
                try:
                    with anyio.move_on_after(_DELIVERY_TIMEOUT):
                        await listener(ids)
                except Exception:
                    logger.warning("an event feed subscriber failed; it is skipped this time", exc_info=True)
