"""One send_message while it runs, and its chat records written in order.

The first record ("in_progress") is written beside the stream, so the answer's first delta
does not wait for the store; every later record waits for that first one, so records land
in the order they were made even when the caller is cancelled meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from kai_bridge.conversations.models import UsageInfo
from kai_bridge.coze import ChatStatus
from kai_bridge.errors import KaiBridgeError
from kai_bridge.store import ChatRecord, Store

__all__ = ["ChatRecorder", "ChatRun"]

logger = logging.getLogger(__name__)


@dataclass
class ChatRun:
    """What is known about one send_message while it runs (for records and cleanup)."""

    user_id: str
    bot_id: str
    conversation_id: str | None
    chat_id: str | None = None
    parts: list[str] = field(default_factory=list)
    streamed: set[str] = field(default_factory=set)  # answer message ids that came as deltas
    usage: UsageInfo | None = None
    rounds: int = 0
    first_write: asyncio.Task[None] | None = None  # the "in_progress" record, written beside the stream
    on_chat: Callable[[str, str], None] | None = None  # told (chat_id, conversation_id) once Coze names the chat

    @property
    def answer(self) -> str:
        return "".join(self.parts)


class ChatRecorder:
    """Saves :class:`ChatRun` states to the store as chat records, in order."""

    def __init__(self, *, store: Store, clock: Callable[[], float]) -> None:
        self._store = store
        self._clock = clock

    def start(self, run: ChatRun) -> None:
        """Write the first ("in_progress") record in the background, now that the chat id is known."""
        run.first_write = asyncio.ensure_future(self._first(run))

    async def _first(self, run: ChatRun) -> None:
        try:
            await self.record(run, status=ChatStatus.IN_PROGRESS, error=None)
        except KaiBridgeError as exc:
            logger.warning("could not record chat %s as in progress: %s", run.chat_id, exc)

    async def record(self, run: ChatRun, *, status: ChatStatus, error: str | None) -> None:
        if run.chat_id is None or run.conversation_id is None:
            return
        first = run.first_write
        if first is not None and not first.done() and asyncio.current_task() is not first:
            # Records must land in order; the first one is short, so wait for it even when cancelled.
            with anyio.CancelScope(shield=True):
                await asyncio.wait([first])
        await self._store.save_chat(
            ChatRecord(
                chat_id=run.chat_id,
                conversation_id=run.conversation_id,
                user_id=run.user_id,
                bot_id=run.bot_id,
                status=status.value,
                answer=run.answer,
                usage=run.usage.model_dump() if run.usage else None,
                error=error,
                updated_at=self._clock(),
            )
        )
