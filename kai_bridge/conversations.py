"""Conversations with a Coze bot, as plain async functions the doors (MCP tools, CLI) call.

:class:`ConversationService` keeps which Coze conversation belongs to which (user, bot) in
the store, so a user's next message continues the same conversation across restarts and
replicas. :meth:`ConversationService.send_message` streams the reply (each text delta goes
to ``on_delta``), saves the chat record as it goes (a client that lost the reply fetches it
later by chat id), and resolves ``requires_action`` pauses itself: a local plugin whose name
is in the tool registry is run through the registry and its output submitted back, for at
most ``max_rounds`` rounds. If the caller is cancelled (an MCP client cancels or goes
away), the Coze chat is cancelled too and the record says so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Final, Literal

import anyio
from pydantic import BaseModel, Field

from kai_bridge.coze import (
    Chat,
    ChatEvent,
    ChatEventType,
    CozeClient,
    EnterMessage,
    Message,
    MessageRole,
    MessageType,
    ToolCall,
    ToolOutput,
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
from kai_bridge.store import ChatRecord, Store
from kai_bridge.tools.registry import NullToolContext, ToolRegistry

__all__ = [
    "CONVERSATION_TOOL_NAMES",
    "ChatResult",
    "ConversationInfo",
    "ConversationMessage",
    "ConversationService",
    "MessageList",
    "SendResult",
    "UsageInfo",
]

logger = logging.getLogger(__name__)

#: Tools a Coze chat may not call back into through requires_action (a chat starting chats).
CONVERSATION_TOOL_NAMES: Final = frozenset(
    {"create_conversation", "send_message", "get_conversation_messages", "cancel_chat", "get_chat_result"}
)
_CLEANUP_TIMEOUT: Final = 5.0
_ANSWER_TYPES: Final = frozenset({MessageType.ANSWER, MessageType.UNSET})

ChatState = Literal["in_progress", "requires_action", "completed", "failed", "canceled"]


# ---- results (pydantic: they double as the MCP tools' output schemas) ------------------------
class UsageInfo(BaseModel):
    token_count: int = 0
    output_count: int = 0
    input_count: int = 0


class ConversationInfo(BaseModel):
    conversation_id: str = Field(description="the Coze conversation id; pass it to send_message")
    bot_id: str
    user_id: str = Field(description="whose current conversation this now is")


class SendResult(BaseModel):
    answer: str = Field(description="the bot's whole answer")
    conversation_id: str
    chat_id: str = Field(description="fetch this answer again later with get_chat_result")
    bot_id: str
    usage: UsageInfo | None = None
    rounds: int = Field(description="local plugin rounds resolved (requires_action) during this chat")


class ConversationMessage(BaseModel):
    id: str | None
    role: str
    type: str
    content: str
    content_type: str
    chat_id: str | None = None
    created_at: int | None = None


class MessageList(BaseModel):
    conversation_id: str
    messages: list[ConversationMessage]
    first_id: str | None = Field(default=None, description="pass as before_id to page further back")
    last_id: str | None = Field(default=None, description="pass as after_id to page forward")
    has_more: bool = False


class ChatResult(BaseModel):
    chat_id: str
    conversation_id: str
    bot_id: str
    status: str = Field(description="in_progress, requires_action, completed, failed or canceled")
    answer: str = Field(description="the whole answer when completed; what had arrived otherwise")
    usage: UsageInfo | None = None
    error: str | None = None
    updated_at: float = Field(description="Unix time of the last change")


def _usage(chat: Chat | None) -> UsageInfo | None:
    if chat is None or chat.usage is None:
        return None
    return UsageInfo(**chat.usage.model_dump())


@dataclass
class _Run:
    """What is known about one send_message while it runs (for records and cleanup)."""

    user_id: str
    bot_id: str
    conversation_id: str | None
    chat_id: str | None = None
    parts: list[str] = field(default_factory=list)
    streamed: set[str] = field(default_factory=set)  # answer message ids that came as deltas
    usage: UsageInfo | None = None
    rounds: int = 0
    chars: int = 0
    first_write: asyncio.Task[None] | None = None  # the "in_progress" record, written beside the stream
    on_chat: Callable[[str, str], None] | None = None  # told (chat_id, conversation_id) once known

    @property
    def answer(self) -> str:
        return "".join(self.parts)


class ConversationService:
    """Coze conversations for the doors; see the module docstring."""

    def __init__(
        self,
        *,
        coze: CozeClient,
        store: Store,
        registry: ToolRegistry,
        default_bot_id: str,
        max_rounds: int,
        chat_timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_rounds < 1:
            raise ValueError("max_rounds must be at least 1")
        self._coze = coze
        self._store = store
        self.registry = registry
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
    ) -> MessageList:
        """A page of a conversation's messages (the user's current one when no id is given)."""
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
            messages=[_message_out(m) for m in page.items],
            first_id=page.first_id,
            last_id=page.last_id,
            has_more=page.has_more,
        )

    # ---- chats -------------------------------------------------------------------------------
    async def cancel_chat(self, *, conversation_id: str, chat_id: str) -> ChatResult:
        """Cancel a running chat upstream and record it as canceled."""
        chat = await self._coze.cancel_chat(conversation_id=conversation_id, chat_id=chat_id)
        previous = await self._store.get_chat(chat_id=chat_id)
        record = ChatRecord(
            chat_id=chat_id,
            conversation_id=conversation_id,
            user_id=previous.user_id if previous else "",
            bot_id=chat.bot_id or (previous.bot_id if previous else ""),
            status=str(chat.status),
            answer=previous.answer if previous else "",
            usage=previous.usage if previous else None,
            error="canceled by request" if str(chat.status) == "canceled" else (previous.error if previous else None),
            updated_at=self._clock(),
        )
        await self._store.save_chat(record)
        return _chat_result(record)

    async def get_chat_result(self, *, chat_id: str) -> ChatResult:
        """The recorded outcome of a chat; a chat still marked running is refreshed from Coze."""
        record = await self._store.get_chat(chat_id=chat_id)
        if record is None:
            raise ToolError(f"no chat with id '{chat_id}' was sent through this bridge")
        if record.status in ("in_progress", "created"):
            record = await self._refresh(record)
        return _chat_result(record)

    async def _refresh(self, record: ChatRecord) -> ChatRecord:
        try:
            chat = await self._coze.retrieve_chat(conversation_id=record.conversation_id, chat_id=record.chat_id)
        except CozeError as exc:
            logger.info("could not refresh chat %s from Coze: %s", record.chat_id, exc)
            return record
        status = str(chat.status)
        if status == record.status:
            return record
        answer = record.answer
        if status == "completed":
            messages = await self._coze.list_chat_messages(conversation_id=record.conversation_id,
                                                           chat_id=record.chat_id)
            answer = "".join(m.content for m in messages if _is_answer(m))
        error = None
        if status == "failed" and chat.last_error is not None:
            error = f"{chat.last_error.msg} [code {chat.last_error.code}]"
        usage = _usage(chat)
        updated = ChatRecord(
            chat_id=record.chat_id,
            conversation_id=record.conversation_id,
            user_id=record.user_id,
            bot_id=record.bot_id,
            status=status,
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
        on_delta: Callable[[str], Awaitable[None]] | None = None,
        on_chat: Callable[[str, str], None] | None = None,
    ) -> SendResult:
        """Send ``message`` and stream the reply; see the module docstring for the whole contract.

        ``on_chat(chat_id, conversation_id)`` is called once Coze has named the chat (a caller
        that cannot wait for the end can hand out the chat id for ``get_chat_result``).

        Raises ChatFailedError, ChatTimeoutError (the chat is canceled upstream), ChatError
        (too many plugin rounds), or CozeError subclasses; all carry the Coze logid when known.
        """
        bot = bot_id or self.default_bot_id
        stored = False
        if conversation_id is None:
            conversation_id = await self._store.get_conversation(user_id=user_id, bot_id=bot)
            stored = conversation_id is not None
        run = _Run(user_id=user_id, bot_id=bot, conversation_id=conversation_id, on_chat=on_chat)
        try:
            with anyio.move_on_after(self.chat_timeout) as deadline:
                try:
                    await self._converse(run, message, on_delta)
                except CozeNotFoundError:
                    if not stored or run.chat_id is not None:
                        raise
                    # The stored conversation is gone upstream (deleted, or a fresh sandbox):
                    # start a new one instead of failing the user forever.
                    logger.info("stored conversation %s of user %s is gone; starting a new one",
                                conversation_id, user_id)
                    run.conversation_id = None
                    await self._converse(run, message, on_delta)
        except anyio.get_cancelled_exc_class():
            await self._abandon(run, status="canceled", error="canceled: the caller stopped waiting")
            raise
        except CozeTransportError as exc:
            if run.chat_id is None:
                raise
            # The stream broke but the chat may well finish upstream: keep it "in_progress" so
            # get_chat_result refreshes it from Coze later.
            hint = f"the chat may still finish: fetch it later with get_chat_result(chat_id='{run.chat_id}')"
            await self._record(run, status="in_progress", error=f"{exc}; {hint}")
            raise ChatError(f"{exc}; {hint}", chat_id=run.chat_id, conversation_id=run.conversation_id) from exc
        except ChatCanceledError as exc:
            await self._record(run, status="canceled", error=str(exc))
            raise
        except KaiBridgeError as exc:
            await self._record(run, status="failed", error=str(exc))
            raise
        if deadline.cancelled_caught:
            await self._abandon(run, status="failed", error=f"timed out after {self.chat_timeout:g} s")
            raise ChatTimeoutError(
                f"the Coze chat did not finish within {self.chat_timeout:g} s and was canceled"
                + (f"; the partial answer is kept under chat_id {run.chat_id}" if run.chat_id else ""),
                chat_id=run.chat_id,
                conversation_id=run.conversation_id,
            )
        if run.chat_id is None or run.conversation_id is None:  # _converse returns only once both are known
            raise ChatError("the Coze chat stream carried no chat id")
        await self._record(run, status="completed", error=None)
        if not stored or conversation_id != run.conversation_id:
            await self._store.set_conversation(user_id=user_id, bot_id=bot, conversation_id=run.conversation_id)
        return SendResult(
            answer=run.answer,
            conversation_id=run.conversation_id,
            chat_id=run.chat_id,
            bot_id=bot,
            usage=run.usage,
            rounds=run.rounds,
        )

    # ---- the stream loop ---------------------------------------------------------------------
    async def _converse(self, run: _Run, message: str, on_delta: Callable[[str], Awaitable[None]] | None) -> None:
        events: AsyncIterator[ChatEvent] = self._coze.stream_chat(
            bot_id=run.bot_id,
            user_id=run.user_id,
            messages=[EnterMessage.user(message)],
            conversation_id=run.conversation_id,
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
            await self._record(run, status="requires_action", error=None)
            outputs = await self._run_tool_calls(run, paused.required_action.tool_calls if paused.required_action
                                                 else [])
            events = self._coze.submit_tool_outputs_stream(
                conversation_id=paused.conversation_id, chat_id=paused.id, tool_outputs=outputs
            )

    async def _drain(
        self, run: _Run, events: AsyncIterator[ChatEvent], on_delta: Callable[[str], Awaitable[None]] | None
    ) -> Chat | None:
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
                        # Written while the answer streams on; every later record waits for it.
                        run.first_write = asyncio.ensure_future(self._record_first(run))
                        if run.on_chat is not None:
                            run.on_chat(chat.id, chat.conversation_id)
                if kind is ChatEventType.MESSAGE_DELTA and event.message is not None:
                    if _is_answer(event.message) and event.message.content:
                        run.streamed.add(event.message.id or "")
                        await self._emit(run, event.message.content, on_delta)
                elif kind is ChatEventType.MESSAGE_COMPLETED and event.message is not None:
                    msg = event.message
                    if _is_answer(msg) and (msg.id or "") not in run.streamed and msg.content:
                        # An answer that came whole, without deltas: pass it on as one piece.
                        await self._emit(run, msg.content, on_delta)
                elif kind is ChatEventType.CHAT_COMPLETED:
                    run.usage = _usage(chat)
                    completed = True
                elif kind is ChatEventType.CHAT_REQUIRES_ACTION and chat is not None:
                    return chat
                elif kind is ChatEventType.CHAT_FAILED:
                    raise failed_error(chat, logid=event.logid)
                elif kind is ChatEventType.ERROR:
                    raise failed_error(chat, error=event.error, logid=event.logid)
                elif kind is ChatEventType.DONE:
                    break
        if not completed and chat is not None and str(chat.status) != "canceled":
            # The stream ended early: ask Coze why (someone may have canceled the chat).
            try:
                chat = await self._coze.retrieve_chat(conversation_id=chat.conversation_id, chat_id=chat.id)
            except CozeError as exc:
                logger.info("could not look up chat %s after its stream ended: %s", chat.id, exc)
        if chat is not None and str(chat.status) == "canceled":
            raise ChatCanceledError(f"the Coze chat {chat.id} was canceled (cancel_chat or the Coze console)",
                                    chat_id=chat.id, conversation_id=chat.conversation_id)
        if not completed or run.chat_id is None:
            raise ChatError(
                "the Coze chat stream ended before the chat completed",
                chat_id=run.chat_id,
                conversation_id=run.conversation_id,
            )
        return None

    async def _emit(self, run: _Run, text: str, on_delta: Callable[[str], Awaitable[None]] | None) -> None:
        run.parts.append(text)
        run.chars += len(text)
        if on_delta is not None:
            await on_delta(text)

    # ---- requires_action ---------------------------------------------------------------------
    async def _run_tool_calls(self, run: _Run, calls: list[ToolCall]) -> list[ToolOutput]:
        outputs: list[ToolOutput | None] = [None] * len(calls)

        async def one(index: int, call: ToolCall) -> None:
            outputs[index] = ToolOutput(tool_call_id=call.id, output=await self._tool_output(run, call))

        async with anyio.create_task_group() as tg:
            for index, call in enumerate(calls):
                tg.start_soon(one, index, call)
        return [out for out in outputs if out is not None]

    async def _tool_output(self, run: _Run, call: ToolCall) -> str:
        name = call.function.name
        if name not in self.registry or name in CONVERSATION_TOOL_NAMES:
            logger.warning("chat %s asked for local tool %r, which this bridge does not run", run.chat_id, name)
            return _json({"error": f"unknown tool {name}"})
        try:
            arguments = call.function.parsed_arguments()
        except ValueError as exc:
            return _json({"error": f"the arguments for {name} are not a JSON object: {exc}"})
        try:
            result = await self.registry.call(name, arguments, ctx=NullToolContext(caller_id=run.user_id))
        except ToolError as exc:
            return _json({"error": str(exc)})
        return _json(result)

    # ---- records and cleanup -----------------------------------------------------------------
    async def _record_first(self, run: _Run) -> None:
        try:
            await self._record(run, status="in_progress", error=None)
        except KaiBridgeError as exc:
            logger.warning("could not record chat %s as in progress: %s", run.chat_id, exc)

    async def _record(self, run: _Run, *, status: ChatState, error: str | None) -> None:
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
                status=status,
                answer=run.answer,
                usage=run.usage.model_dump() if run.usage else None,
                error=error,
                updated_at=self._clock(),
            )
        )

    async def _cancel_upstream(self, run: _Run) -> None:
        if run.chat_id is None or run.conversation_id is None:
            return
        try:
            await self._coze.cancel_chat(conversation_id=run.conversation_id, chat_id=run.chat_id)
        except CozeError as exc:
            # Already finished, or cannot be canceled in its state (4104): nothing left to stop.
            logger.info("cancel of Coze chat %s not done: %s", run.chat_id, exc)

    async def _abandon(self, run: _Run, *, status: ChatState, error: str) -> None:
        """Cancel the chat upstream and record why; shielded so it runs while being cancelled."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLEANUP_TIMEOUT):
            await self._cancel_upstream(run)
            try:
                await self._record(run, status=status, error=error)
            except KaiBridgeError as exc:
                logger.warning("could not record the end of chat %s: %s", run.chat_id, exc)


def _is_answer(message: Message) -> bool:
    return message.role == MessageRole.ASSISTANT and message.type in _ANSWER_TYPES


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _message_out(message: Message) -> ConversationMessage:
    return ConversationMessage(
        id=message.id,
        role=str(message.role),
        type=str(message.type),
        content=message.content,
        content_type=str(message.content_type),
        chat_id=message.chat_id,
        created_at=message.created_at,
    )


def _chat_result(record: ChatRecord) -> ChatResult:
    return ChatResult(
        chat_id=record.chat_id,
        conversation_id=record.conversation_id,
        bot_id=record.bot_id,
        status=record.status,
        answer=record.answer,
        usage=UsageInfo(**record.usage) if record.usage else None,
        error=record.error,
        updated_at=record.updated_at,
    )
