"""The inbox service over the store: storing received events, and what operators do with them.

:meth:`Inbox.receive` gives an event its inbox id and commits it (deduplicated); it returns
only once the event is durable, which is what lets the door answer 2xx. Listeners (the
dispatcher's wake-up, the MCP resource feed) hear about each new event after its commit.
The rest serves ``kai-bridge events`` and the MCP resource: list, show, replay, purge, and the
JSON views of an event.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import JsonValue

from kai_bridge.store import Store
from kai_bridge.store.base import EventSummary, InboxEvent, InsertResult, NewEvent
from kai_bridge.webhooks.events import ParsedEvent, dedup_key

__all__ = ["Inbox", "Received", "ReplayOutcome", "event_json", "iso", "new_event_id", "summary_json"]

ReplayOutcome = Literal["replayed", "missing", "busy"]


# Seeded once from the OS: ids need to be unlikely to collide, not unpredictable, and a
# getrandom() call per event costs ~0.1 ms on a busy VM.
_ID_RANDOM = random.Random(os.urandom(16))


def new_event_id(now: float) -> str:
    """An inbox id: ``ev`` + 13-digit milliseconds + 6 random hex digits (sorts by arrival)."""
    return f"ev{int(now * 1000):013d}{_ID_RANDOM.getrandbits(24):06x}"


def iso(epoch: float) -> str:
    """UTC ISO 8601 with milliseconds, ``Z``-suffixed."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def summary_json(event: EventSummary) -> dict[str, JsonValue]:
    """One line of ``kai-bridge events list --json`` (and an item of the MCP resource)."""
    return {
        "id": event.id,
        "event_type": event.event_type,
        "status": event.status,
        "attempts": event.attempts,
        "received_at": iso(event.received_at),
        "dedup_key": event.dedup_key,
        "source": event.source,
        "last_error": event.last_error,
    }


def _parsed(text: str | None) -> JsonValue:
    if text is None:
        return None
    try:
        value: JsonValue = json.loads(text)
    except ValueError:
        return text
    return value


def event_json(event: InboxEvent) -> dict[str, JsonValue]:
    """An event in full: the summary, the body as sent, the handlers' outcome, the lease."""
    view = summary_json(event.summary())
    view.update(
        {
            "due_at": iso(event.due_at) if event.status in ("pending", "retrying", "processing") else None,
            "lease_owner": event.lease_owner,
            "updated_at": iso(event.updated_at),
            "body": _parsed(event.body),
            "result": _parsed(event.result),
        }
    )
    return view


@dataclass(frozen=True, slots=True)
class Received:
    """What :meth:`Inbox.receive` did: the event's inbox id, and whether it was already there."""

    id: str
    duplicate: bool


class Inbox:
    """Stores received events in ``store`` and serves the operators' view of them."""

    def __init__(self, *, store: Store, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self._listeners: list[Callable[[str], None]] = []
        self._last_received = -1e9  # time.monotonic() of the last receive

    def busy(self, *, window: float = 0.25) -> bool:
        """Whether an event was received within the last ``window`` seconds (the door is under load)."""
        return time.monotonic() - self._last_received < window

    def on_new(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(event_id)`` after each new event's commit (not for duplicates)."""
        self._listeners.append(listener)

    async def receive(self, event: ParsedEvent, raw: bytes, *, source: str) -> Received:
        """Commit ``event`` (raw body ``raw``) unless it is already stored. Raises StoreError."""
        self._last_received = time.monotonic()
        now = self._clock()
        new = NewEvent(
            id=new_event_id(now),
            dedup_key=dedup_key(event, raw),
            event_type=event.event_type,
            source=source,
            body=event.text,
            received_at=now,
        )
        result: InsertResult = await self._store.insert_event(new)
        if not result.duplicate:
            for listener in self._listeners:
                listener(result.id)
        return Received(id=result.id, duplicate=result.duplicate)

    async def list_events(self, *, status: str | None = None, limit: int = 50) -> list[EventSummary]:
        return await self._store.list_events(status=status, limit=limit)

    async def get(self, event_id: str) -> InboxEvent | None:
        return await self._store.get_event(event_id=event_id)

    async def counts(self) -> dict[str, int]:
        return await self._store.count_events()

    async def replay(self, event_id: str) -> ReplayOutcome:
        """Make ``event_id`` pending again (its handlers all run again); tell listeners."""
        if await self._store.replay_event(event_id=event_id):
            for listener in self._listeners:
                listener(event_id)
            return "replayed"
        return "missing" if await self._store.get_event(event_id=event_id) is None else "busy"

    async def purge(self, *, before: float) -> int:
        """Delete done and dead events received before ``before`` (epoch seconds)."""
        return await self._store.purge_events(before=before)
