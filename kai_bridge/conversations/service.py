"""Conversations with a Coze bot, as plain async functions the doors (MCP tools, CLI, plugin face) call.

:class:`ConversationService` keeps which Coze conversation belongs to which (user, bot) in
the store, so a user's next message continues the same conversation across restarts and
replicas. :meth:`ConversationService.send_message` streams the reply (each text delta goes
to ``on_delta``), saves the chat record as it goes (a client that lost the reply fetches it
later by chat id), and resolves ``requires_action`` pauses itself: every local plugin call
goes to the :class:`~kai_bridge.conversations.plugins.PluginRunner` it was given and the
outputs are submitted back, for at most ``max_rounds`` rounds. If the caller is cancelled
(an MCP client cancels or goes away), the Coze chat is cancelled too and the record says so.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Final, Literal

import anyio

from kai_bridge.conversations.models import (
    ChatResult,
    ConversationInfo,
    MessageList,
    SendResult,
    chat_result,
    message_out,
    usage_of,
)
from kai_bridge.conversations.plugins import PluginRunner, run_tool_calls
from kai_bridge.conversations.queue import ConversationQueue
from kai_bridge.conversations.records import ChatRecorder, ChatRun
from kai_bridge.coze import (
    Chat,
    ChatEvent,
    ChatEventType,
    ChatRequest,
    ChatStatus,
    CozeClient,
    EnterMessage,
    Message,
    MessageRole,
    MessageType,
)
from kai_bridge.coze.events import failed_error
from kai_bridge.errors import (
    ChatCanceledError,
    ChatError,
    ChatTimeoutError,
    CozeError,
    CozeNotFoundError,
    CozeTransportError,
    KaiBridgeError,
    ToolError,
)
from kai_bridge.logs import note_log_fields
from kai_bridge.store import ChatRecord, Store

__all__ = ["ConversationService", "MayTouch"]

logger = logging.getLogger(__name__)

_CLEANUP_TIMEOUT: Final = 5.0
_ANSWER_TYPES: Final = frozenset({MessageType.ANSWER, MessageType.UNSET})
_RUNNING: Final = frozenset({ChatStatus.IN_PROGRESS, ChatStatus.CREATED})

OnDelta = Callable[[str], Awaitable[None]]
#: ``may(user_key)``: whether the caller may touch what belongs to that user key (its own scope).
MayTouch = Callable[[str], bool]


def _not_yours(chat_id: str) -> str:
    return f"no chat with id '{chat_id}' was sent by you through this bridge"


class ConversationService:
    """Coze conversations for the doors; see the module docstring."""

    def __init__(
        self,
        *,
        coze: CozeClient,
        store: Store,
        plugins: PluginRunner,
        queue: ConversationQueue | None = None,
        lease: float = 30.0,
        default_bot_id: str,
        max_rounds: int,
        chat_timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_rounds < 1:
            raise ValueError("max_rounds must be at least 1")
        self._coze = coze
        self._store = store
        self._plugins = plugins
        self._records = ChatRecorder(store=store, clock=clock)
        self._queue = queue or ConversationQueue(store=store, ttl=lease)
        self.default_bot_id = default_bot_id
        self.max_rounds = max_rounds
        self.chat_timeout = chat_timeout
        self._clock = clock

    # ---- conversations -----------------------------------------------------------------------
    async def create_conversation(self, *, user_id: str, bot_id: str | None = None) -> ConversationInfo:
        """Start a new Coze conversation and make it the user's current one for that bot."""
        bot = bot_id or self.default_bot_id
        conversation = await self._coze.create_conversation(bot_id=bot)
        await self._store.set_conversation(user_id=user_id, bot_id=bot, conversation_id=conversation.id)
        return ConversationInfo(conversation_id=conversation.id, bot_id=bot, user_id=user_id)

    async def current_conversation(self, *, user_id: str, bot_id: str | None = None) -> str | None:
        return await self._store.get_conversation(user_id=user_id, bot_id=bot_id or self.default_bot_id)

    async def get_conversation_messages(
        self,
        *,
        conversation_id: str | None = None,
        user_id: str | None = None,
        bot_id: str | None = None,
        limit: int = 20,
        before_id: str | None = None,
        after_id: str | None = None,
        order: Literal["asc", "desc"] = "desc",
        may: MayTouch | None = None,
    ) -> MessageList:
        """A page of a conversation's messages (the user's current one when no id is given).

        ``may``: which user keys the caller may read; a named conversation known under none of
        them is refused (None: no restriction).
        """
        if conversation_id is not None:
            await self._check_conversation(conversation_id, may)
        if conversation_id is None:
            if user_id is None:
                raise ToolError("give conversation_id (or a user_id whose current conversation to read)")
            conversation_id = await self.current_conversation(user_id=user_id, bot_id=bot_id)
            if conversation_id is None:
                raise ToolError(
                    f"user '{user_id}' has no conversation yet: call send_message or create_conversation first"
                )
        page = await self._coze.list_messages(
            conversation_id=conversation_id, order=order, before_id=before_id, after_id=after_id, limit=limit
        )
        return MessageList(
            conversation_id=conversation_id,
            messages=[message_out(m) for m in page.items],
            first_id=page.first_id,
            last_id=page.last_id,
            has_more=page.has_more,
        )

    # ---- chats -------------------------------------------------------------------------------
    async def cancel_chat(
        self, *, conversation_id: str, chat_id: str, may: MayTouch | None = None
    ) -> ChatResult:
        """Cancel a running chat upstream and record it as canceled (``may``: as for get_chat_result)."""
        previous = await self._store.get_chat(chat_id=chat_id)
        if may is not None and (previous is None or not may(previous.user_id)):
            raise ToolError(_not_yours(chat_id))
        chat = await self._coze.cancel_chat(conversation_id=conversation_id, chat_id=chat_id)
        canceled = chat.status is ChatStatus.CANCELED
        record = ChatRecord(
            chat_id=chat_id,
            conversation_id=conversation_id,
            user_id=previous.user_id if previous else "",
            bot_id=chat.bot_id or (previous.bot_id if previous else ""),
            status=chat.status.value,
            answer=previous.answer if previous else "",
            usage=previous.usage if previous else None,
            error="canceled by request" if canceled else (previous.error if previous else None),
            updated_at=self._clock(),
        )
        await self._store.save_chat(record)
        return chat_result(record)

    async def get_chat_result(self, *, chat_id: str, may: MayTouch | None = None) -> ChatResult:
        """The recorded outcome of a chat; a chat still marked running is refreshed from Coze.

        ``may``: which user keys the caller may read; another caller's chat is answered exactly
        like an unknown one (its existence is not revealed).
        """
        record = await self._store.get_chat(chat_id=chat_id)
        if record is None or (may is not None and not may(record.user_id)):
            raise ToolError(_not_yours(chat_id))
        if ChatStatus(record.status) in _RUNNING:
            record = await self._refresh(record)
        return chat_result(record)

    async def _refresh(self, record: ChatRecord) -> ChatRecord:
        try:
            chat = await self._coze.retrieve_chat(conversation_id=record.conversation_id, chat_id=record.chat_id)
        except CozeError as exc:
            logger.info("could not refresh chat %s from Coze: %s", record.chat_id, exc)
            return record
        if chat.status.value == record.status:
            return record
        answer = record.answer
        if chat.status is ChatStatus.COMPLETED:
            messages = await self._coze.list_chat_messages(conversation_id=record.conversation_id,
                                                           chat_id=record.chat_id)
            answer = "".join(m.content for m in messages if _is_answer(m))
        error = None
        if chat.status is ChatStatus.FAILED and chat.last_error is not None:
            error = f"{chat.last_error.msg} [code {chat.last_error.code}]"
        usage = usage_of(chat)
        updated = ChatRecord(
            chat_id=record.chat_id,
            conversation_id=record.conversation_id,
            user_id=record.user_id,
            bot_id=record.bot_id,
            status=chat.status.value,
            answer=answer,
            usage=usage.model_dump() if usage else record.usage,
            error=error or record.error,
            updated_at=self._clock(),
        )
        await self._store.save_chat(updated)
        return updated

    async def send_message(
        self,
        *,
        user_id: str,
        message: str,
        conversation_id: str | None = None,
        bot_id: str | None = None,
        on_delta: OnDelta | None = None,
        on_chat: Callable[[str, str], None] | None = None,
        may: MayTouch | None = None,
        send_key: str | None = None,
    ) -> SendResult:
        """Send ``message`` and stream the reply; see the module docstring for the whole contract.

        ``send_key`` names this send across repeats (an event dispatched again after the process
        that first handled it died): if the conversation already holds the chat of a send with
        this key, that chat is followed and no new one is started.

        ``on_chat(chat_id, conversation_id)`` is called once Coze has named the chat (a caller
        that cannot wait for the end can hand out the chat id for ``get_chat_result``).
        ``may``: which user keys the caller may write as; a named conversation known under none
        of them is refused.

        Sends into one conversation are queued, one at a time, in arrival order (up to
        ``chat_timeout`` of waiting, then ChatError), and then the chat has ``chat_timeout``
        itself. Raises ChatFailedError, ChatTimeoutError (the chat is canceled upstream),
        ChatError (too many plugin rounds, waited too long), or CozeError subclasses; all carry
        the Coze logid when known.
        """
        bot = bot_id or self.default_bot_id
        async with contextlib.AsyncExitStack() as held:
            if conversation_id is None:
                # The user's slot is held while their current conversation is found or made, so
                # two first messages at once do not make two conversations.
                async with self._queue.hold(f"user:{bot}:{user_id}", timeout=self.chat_timeout):
                    conversation_id = await self._current_or_new(user_id=user_id, bot_id=bot)
                    await held.enter_async_context(self._hold(conversation_id))
                explicit = False
            else:
                await self._check_conversation(conversation_id, may)
                await held.enter_async_context(self._hold(conversation_id))
                explicit = True
            run = ChatRun(user_id=user_id, bot_id=bot, conversation_id=conversation_id, on_chat=on_chat)
            try:
                with anyio.move_on_after(self.chat_timeout) as deadline:
                    try:
                        await self._converse(run, message, on_delta, send_key)
                    except CozeNotFoundError:
                        if explicit or run.chat_id is not None:
                            raise
                        # The stored conversation is gone upstream (deleted, or a fresh sandbox):
                        # start a new one instead of failing the user forever.
                        logger.info("stored conversation %s of user %s is gone; starting a new one",
                                    conversation_id, user_id)
                        replacement = await self._replace_conversation(user_id=user_id, bot_id=bot,
                                                                       gone=conversation_id)
                        await held.enter_async_context(self._hold(replacement))
                        run.conversation_id = replacement
                        await self._converse(run, message, on_delta, send_key)
            except anyio.get_cancelled_exc_class():
                await self._abandon(run, status=ChatStatus.CANCELED, error="canceled: the caller stopped waiting")
                raise
            except CozeTransportError as exc:
                if run.chat_id is None:
                    raise
                # The stream broke but the chat may well finish upstream: keep it "in_progress" so
                # get_chat_result refreshes it from Coze later.
                hint = f"the chat may still finish: fetch it later with get_chat_result(chat_id='{run.chat_id}')"
                await self._records.record(run, status=ChatStatus.IN_PROGRESS, error=f"{exc}; {hint}")
                raise ChatError(f"{exc}; {hint}", chat_id=run.chat_id, conversation_id=run.conversation_id) from exc
            except ChatCanceledError as exc:
                await self._records.record(run, status=ChatStatus.CANCELED, error=str(exc))
                raise
            except KaiBridgeError as exc:
                await self._records.record(run, status=ChatStatus.FAILED, error=str(exc))
                raise
            if deadline.cancelled_caught:
                await self._abandon(run, status=ChatStatus.FAILED, error=f"timed out after {self.chat_timeout:g} s")
                raise ChatTimeoutError(
                    f"the Coze chat did not finish within {self.chat_timeout:g} s and was canceled"
                    + (f"; the partial answer is kept under chat_id {run.chat_id}" if run.chat_id else ""),
                    chat_id=run.chat_id,
                    conversation_id=run.conversation_id,
                )
            if run.chat_id is None or run.conversation_id is None:  # _converse returns only once both are known
                raise ChatError("the Coze chat stream carried no chat id")
            await self._records.record(run, status=ChatStatus.COMPLETED, error=None)
            if explicit:
                # A conversation named by the caller becomes their current one.
                await self._store.set_conversation(user_id=user_id, bot_id=bot, conversation_id=run.conversation_id)
            return SendResult(
                answer=run.answer,
                conversation_id=run.conversation_id,
                chat_id=run.chat_id,
                bot_id=bot,
                usage=run.usage,
                rounds=run.rounds,
            )

    async def _check_conversation(self, conversation_id: str, may: MayTouch | None) -> None:
        if may is None:
            return
        owners = await self._store.conversation_owners(conversation_id=conversation_id)
        if not any(may(owner) for owner in owners):
            raise ToolError(
                f"conversation '{conversation_id}' is not one of yours (it was not made or used through this "
                "bridge by you): leave conversation_id out to use your current one"
            )

    def _hold(self, conversation_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        return self._queue.hold(f"conversation:{conversation_id}", timeout=self.chat_timeout)

    async def _current_or_new(self, *, user_id: str, bot_id: str) -> str:
        """The user's current conversation, or a new one made current now (before any chat in it).

        Made first and explicitly (not by the chat create): a chat in a known conversation can be
        checked for after a failed create, so it is never sent twice (see ``CozeClient.stream_chat``).
        """
        current = await self._store.get_conversation(user_id=user_id, bot_id=bot_id)
        if current is not None:
            return current
        conversation = await self._coze.create_conversation(bot_id=bot_id)
        await self._store.set_conversation(user_id=user_id, bot_id=bot_id, conversation_id=conversation.id)
        return conversation.id

    async def _replace_conversation(self, *, user_id: str, bot_id: str, gone: str) -> str:
        """A new current conversation for the user, unless another send already replaced ``gone``."""
        current = await self._store.get_conversation(user_id=user_id, bot_id=bot_id)
        if current is not None and current != gone:
            return current
        conversation = await self._coze.create_conversation(bot_id=bot_id)
        await self._store.set_conversation(user_id=user_id, bot_id=bot_id, conversation_id=conversation.id)
        return conversation.id

    # ---- the stream loop ---------------------------------------------------------------------
    async def _converse(self, run: ChatRun, message: str, on_delta: OnDelta | None, send_key: str | None) -> None:
        events: AsyncIterator[ChatEvent] = self._coze.stream_chat(
            ChatRequest(
                bot_id=run.bot_id,
                user_id=run.user_id,
                messages=[EnterMessage.user(message)],
                conversation_id=run.conversation_id,
                send_key=send_key,
            )
        )
        while True:
            paused = await self._drain(run, events, on_delta)
            if paused is None:
                return
            if run.rounds >= self.max_rounds:
                await self._cancel_upstream(run)
                raise ChatError(
                    f"the Coze chat {paused.id} asked for local tools more than {self.max_rounds} times; "
                    "it was canceled (raise requires_action_max_rounds if the bot needs more rounds)",
                    chat_id=paused.id,
                    conversation_id=paused.conversation_id,
                )
            run.rounds += 1
            await self._records.record(run, status=ChatStatus.REQUIRES_ACTION, error=None)
            calls = paused.required_action.tool_calls if paused.required_action else []
            outputs = await run_tool_calls(self._plugins, calls, user_id=run.user_id, chat_id=run.chat_id)
            events = self._coze.submit_tool_outputs_stream(
                conversation_id=paused.conversation_id, chat_id=paused.id, tool_outputs=outputs
            )

    async def _drain(self, run: ChatRun, events: AsyncIterator[ChatEvent], on_delta: OnDelta | None) -> Chat | None:
        """Consume one stream; return the chat if it paused on requires_action, else None."""
        chat: Chat | None = None
        completed = False
        async with aclosing(events) as stream:  # type: ignore[type-var]  # AsyncIterator has aclose at runtime
            async for event in stream:
                kind = event.event
                if event.chat is not None:
                    chat = event.chat
                    if run.chat_id is None:
                        run.chat_id = chat.id
                        run.conversation_id = chat.conversation_id
                        note_log_fields(chat_id=chat.id)  # later log lines of this call name the chat
                        self._records.start(run)  # written while the answer streams on
                        if run.on_chat is not None:
                            run.on_chat(chat.id, chat.conversation_id)
                if kind is ChatEventType.MESSAGE_DELTA and event.message is not None:
                    if _is_answer(event.message) and event.message.content:
                        run.streamed.add(event.message.id or "")
                        await _emit(run, event.message.content, on_delta)
                elif kind is ChatEventType.MESSAGE_COMPLETED and event.message is not None:
                    msg = event.message
                    if _is_answer(msg) and (msg.id or "") not in run.streamed and msg.content:
                        # An answer that came whole, without deltas: pass it on as one piece.
                        await _emit(run, msg.content, on_delta)
                elif kind is ChatEventType.CHAT_COMPLETED:
                    run.usage = usage_of(chat)
                    completed = True
                elif kind is ChatEventType.CHAT_REQUIRES_ACTION and chat is not None:
                    return chat
                elif kind is ChatEventType.CHAT_FAILED:
                    raise failed_error(chat, logid=event.logid)
                elif kind is ChatEventType.ERROR:
                    raise failed_error(chat, error=event.error, logid=event.logid)
                elif kind is ChatEventType.DONE:
                    break
        if not completed and chat is not None and chat.status is not ChatStatus.CANCELED:
            # The stream ended early: ask Coze why (someone may have canceled the chat).
            try:
                chat = await self._coze.retrieve_chat(conversation_id=chat.conversation_id, chat_id=chat.id)
            except CozeError as exc:
                logger.info("could not look up chat %s after its stream ended: %s", chat.id, exc)
        if chat is not None and chat.status is ChatStatus.CANCELED:
            raise ChatCanceledError(f"the Coze chat {chat.id} was canceled (cancel_chat or the Coze console)",
                                    chat_id=chat.id, conversation_id=chat.conversation_id)
        if not completed or run.chat_id is None:
            raise ChatError(
                "the Coze chat stream ended before the chat completed",
                chat_id=run.chat_id,
                conversation_id=run.conversation_id,
            )
        return None

    # ---- cleanup -----------------------------------------------------------------------------
    async def _cancel_upstream(self, run: ChatRun) -> None:
        if run.chat_id is None or run.conversation_id is None:
            return
        try:
            await self._coze.cancel_chat(conversation_id=run.conversation_id, chat_id=run.chat_id)
        except CozeError as exc:
            # Already finished, or cannot be canceled in its state (4104): nothing left to stop.
            logger.info("cancel of Coze chat %s not done: %s", run.chat_id, exc)

    async def _abandon(self, run: ChatRun, *, status: ChatStatus, error: str) -> None:
        """Cancel the chat upstream and record why; shielded so it runs while being cancelled."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_TIMEOUT):
            await self._cancel_upstream(run)
            try:
                await self._records.record(run, status=status, error=error)
            except KaiBridgeError as exc:
                logger.warning("could not record the end of chat %s: %s", run.chat_id, exc)


async def _emit(run: ChatRun, text: str, on_delta: OnDelta | None) -> None:
    run.parts.append(text)
    if on_delta is not None:
        await on_delta(text)


def _is_answer(message: Message) -> bool:
    return message.role == MessageRole.ASSISTANT and message.type in _ANSWER_TYPES
