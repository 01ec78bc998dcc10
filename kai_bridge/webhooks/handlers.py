"""The built-in event handlers: a log line, per-bot state, conversation events, and event routes.

- :class:`LogHandler`: one INFO line per event (id, type, source, attempt; never the body).
- :class:`BotStateHandler`: ``bot.published`` / ``bot.unpublished`` / ``bot.deleted`` set the
  bot's state in the store (newest event wins, so a late re-send cannot undo a deletion);
  read back by :class:`~kai_bridge.webhooks.bots.BotStates`.
- :class:`ConversationHandler`: an event whose fields carry a ``conversation_id`` (the seed
  guide's ``{"event": "conversation.message", "data": {"conversation_id", "message"}}``) is
  recorded against that conversation.
- :class:`RouteHandler`: one per configured event route; calls the route's tool through the
  registry and keeps its result (or error) on the event.

Every handler is idempotent: the dispatcher delivers at least once.
"""

from __future__ import annotations

import json
import logging
from typing import Final

from pydantic import JsonValue

from kai_bridge.errors import ToolError, ToolInputError
from kai_bridge.store import Store
from kai_bridge.store.base import BotState, ConversationEvent
from kai_bridge.tools.registry import NullToolContext, ToolRegistry
from kai_bridge.webhooks.dispatch import HandlerError, StoredEvent
from kai_bridge.webhooks.event_routes import CompiledRoute, MappingError

__all__ = ["BOT_EVENT_STATES", "BotStateHandler", "ConversationHandler", "LogHandler", "RouteHandler"]

logger = logging.getLogger(__name__)

BOT_EVENT_STATES: Final = {"bot.published": "published", "bot.unpublished": "unpublished", "bot.deleted": "deleted"}
_MAX_RESULT_CHARS: Final = 64 * 1024
_MAX_MESSAGE_CHARS: Final = 100_000


def _id_text(value: JsonValue) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


class LogHandler:
    """Logs one line per event."""

    name = "log"

    def applies(self, event: StoredEvent) -> bool:
        return True

    async def handle(self, event: StoredEvent) -> JsonValue:
        logger.info(
            "webhook event %s: %s from %s (attempt %d)", event.id, event.event_type, event.source, event.attempts
        )
        return None


class BotStateHandler:
    """Keeps each bot's published / unpublished / deleted state from Coze's bot events."""

    name = "bot_state"

    def __init__(self, *, store: Store) -> None:
        self._store = store

    def applies(self, event: StoredEvent) -> bool:
        return event.event_type in BOT_EVENT_STATES

    async def handle(self, event: StoredEvent) -> JsonValue:
        payload = event.parsed.payload
        bot_id = _id_text(payload.get("bot_id"))
        if bot_id is None:
            raise HandlerError(f"a {event.event_type} event without a bot_id in its fields", permanent=True)
        name = payload.get("bot_name")
        state = BotState(
            bot_id=bot_id,
            state=BOT_EVENT_STATES[event.event_type],
            event_type=event.event_type,
            event_id=event.id,
            bot_name=name if isinstance(name, str) and name else None,
            connector_id=_id_text(event.parsed.header.get("connector_id")),
            changed_at=event.parsed.created_at or event.received_at,
        )
        applied = await self._store.set_bot_state(state)
        return {"bot_id": bot_id, "state": state.state, "applied": applied}


class ConversationHandler:
    """Records events that name a conversation against it."""

    name = "conversation"

    def __init__(self, *, store: Store) -> None:
        self._store = store

    def applies(self, event: StoredEvent) -> bool:
        return _id_text(event.parsed.payload.get("conversation_id")) is not None

    async def handle(self, event: StoredEvent) -> JsonValue:
        payload = event.parsed.payload
        conversation_id = _id_text(payload.get("conversation_id"))
        assert conversation_id is not None
        message = payload.get("message")
        text = message if isinstance(message, str) else None
        await self._store.add_conversation_event(
            ConversationEvent(
                conversation_id=conversation_id,
                event_id=event.id,
                event_type=event.event_type,
                message=None if text is None else text[:_MAX_MESSAGE_CHARS],
                data=json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
                received_at=event.received_at,
            )
        )
        return {"conversation_id": conversation_id}


def _kept(result: dict[str, JsonValue]) -> JsonValue:
    """A tool result as stored on the event: whole, or its first 64 KiB of JSON text."""
    text = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
    if len(text) <= _MAX_RESULT_CHARS:
        return result
    return {"truncated": True, "json": text[:_MAX_RESULT_CHARS]}


class RouteHandler:
    """One configured event route: the event's mapped fields go to a registry tool."""

    def __init__(self, *, route: CompiledRoute, registry: ToolRegistry) -> None:
        self._route = route
        self._registry = registry
        self.name = f"route:{route.name}"

    def applies(self, event: StoredEvent) -> bool:
        return self._route.applies(event.document)

    async def handle(self, event: StoredEvent) -> JsonValue:
        route = self._route
        try:
            arguments = route.arguments(event.document)
        except MappingError as exc:
            raise HandlerError(f"cannot build the arguments of {route.tool}: {exc}", permanent=True) from None
        # The same key on every attempt: a send that a dead dispatcher started is followed, not repeated.
        ctx = NullToolContext(caller_id=f"webhook-route-{route.name}", idempotency_key=f"event:{event.id}:{self.name}")
        try:
            result = await self._registry.call(route.tool, arguments, ctx=ctx)
        except ToolInputError as exc:
            raise HandlerError(str(exc), permanent=True) from None  # the same event maps the same way again
        except ToolError as exc:
            raise HandlerError(str(exc)) from None
        return {"tool": route.tool, "result": _kept(result)}
