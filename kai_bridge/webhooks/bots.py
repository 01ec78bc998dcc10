"""Per-bot state from Coze's bot events, read back for the conversation tools and diagnostics.

:class:`BotStates` answers "may a conversation start with this bot?" from what the last
``bot.*`` callback said (kept in the store by the bot-state handler, so every replica and
every restart sees it). Only a deletion refuses: an unpublished bot may still be published
to the API channel, and Coze itself answers for that. A store that cannot answer does not
block chats (the guard is advisory; Coze refuses a deleted bot too).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pydantic import JsonValue

from kai_bridge.errors import StoreError
from kai_bridge.store import Store

__all__ = ["BotStates"]

logger = logging.getLogger(__name__)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class BotStates:
    """The bots Coze told this bridge about, by bot id."""

    def __init__(self, *, store: Store) -> None:
        self._store = store

    async def refusal(self, bot_id: str) -> str | None:
        """Why a conversation with ``bot_id`` cannot start (it was deleted), or None."""
        try:
            state = await self._store.get_bot_state(bot_id=bot_id)
        except StoreError as exc:
            logger.warning("bot state of %s unknown (%s); letting the call through", bot_id, exc)
            return None
        if state is None or state.state != "deleted":
            return None
        name = f" ({state.bot_name})" if state.bot_name else ""
        return (
            f"the Coze bot {bot_id}{name} was deleted: Coze sent bot.deleted at {_iso(state.changed_at)} "
            f"(webhook event {state.event_id}); choose another bot_id"
        )

    async def snapshot(self) -> list[dict[str, JsonValue]]:
        """Every known bot's state, for /diagnostics/coze."""
        return [
            {
                "bot_id": s.bot_id,
                "state": s.state,
                "bot_name": s.bot_name,
                "connector_id": s.connector_id,
                "event_type": s.event_type,
                "event_id": s.event_id,
                "changed_at": _iso(s.changed_at),
            }
            for s in await self._store.list_bot_states()
        ]
