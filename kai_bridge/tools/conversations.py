"""Conversation tools: thin doors over :class:`~kai_bridge.conversations.ConversationService`.

Who is talking: the door's caller identity (an MCP session or bearer credential, a Coze user,
the CLI user), and within it the ``user_id`` argument, a slot of the caller's own (:class:`Scope`;
``conversations_shared_user_ids`` makes user ids global instead). While ``send_message`` streams, the answer's text is reported as progress
(message = the new text, progress = characters so far) and as a log line where the client
asked for logs; the result holds the whole answer. Deltas are not sent one notification each:
:class:`DeltaRelay` sends whatever text has arrived whenever the previous notification is out,
so a slow stream is forwarded delta by delta while a burst (a fast bot, a busy client) goes out
in a few notifications instead of dozens. Text is not dropped or reordered: the messages
concatenate to the answer, and all of them are sent before the result (if sending fails, the
client is gone or broken: the rest is dropped and the call still completes).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Final, Literal, Protocol

import anyio
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from kai_bridge.conversations import (
    ChatResult,
    ConversationInfo,
    ConversationService,
    MayTouch,
    MessageList,
    SendResult,
)
from kai_bridge.errors import ToolError
from kai_bridge.tools.registry import Tool, ToolAnnotations, ToolContext, typed_tool

__all__ = [
    "CANCEL_CHAT",
    "CONVERSATION_TOOL_NAMES",
    "CREATE_CONVERSATION",
    "DEFAULT_USER_ID",
    "GET_CHAT_RESULT",
    "GET_CONVERSATION_MESSAGES",
    "SEND_MESSAGE",
    "BotGuard",
    "DeltaRelay",
    "Scope",
    "conversation_tools",
    "relay_deltas",
]

logger = logging.getLogger(__name__)

DEFAULT_USER_ID: Final = "default"

CREATE_CONVERSATION: Final = "create_conversation"
SEND_MESSAGE: Final = "send_message"
GET_CONVERSATION_MESSAGES: Final = "get_conversation_messages"
CANCEL_CHAT: Final = "cancel_chat"
GET_CHAT_RESULT: Final = "get_chat_result"
#: The tools a Coze chat may not call back into through requires_action (a chat starting chats).
CONVERSATION_TOOL_NAMES: Final = frozenset(
    {CREATE_CONVERSATION, SEND_MESSAGE, GET_CONVERSATION_MESSAGES, CANCEL_CHAT, GET_CHAT_RESULT}
)

CozeId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def _storable_user_id(value: str) -> str:
    # The store keeps text exactly except NUL and lone surrogates (read back as U+FFFD): two ids
    # differing only there would share one conversation. Control characters are refused too.
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F or 0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        raise ValueError("must not contain control characters (NUL, newline...) or unpaired surrogates")
    return value


UserId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"\S"), AfterValidator(_storable_user_id)
]

_USER_ID_DOC = (
    "a name for one of your own conversation slots (e.g. the end user you act for); by default your own "
    "(your MCP session or token, or the Coze user)"
)
_BOT_ID_DOC = "the Coze bot; defaults to the configured bot"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateConversationIn(_In):
    user_id: UserId | None = Field(default=None, description=_USER_ID_DOC)
    bot_id: CozeId | None = Field(default=None, description=_BOT_ID_DOC)


class SendMessageIn(_In):
    message: Annotated[str, StringConstraints(min_length=1, max_length=10000, pattern=r"\S")] = Field(
        description="what to say to the bot"
    )
    conversation_id: CozeId | None = Field(
        default=None, description="continue this conversation; by default your current one (a new one the first time)"
    )
    bot_id: CozeId | None = Field(default=None, description=_BOT_ID_DOC)
    user_id: UserId | None = Field(default=None, description=_USER_ID_DOC)


class GetMessagesIn(_In):
    conversation_id: CozeId | None = Field(default=None, description="by default your current conversation")
    limit: int = Field(default=20, ge=1, le=50, description="messages per page (1-50)")
    before_id: CozeId | None = Field(default=None, description="page back: the first_id of the previous page")
    after_id: CozeId | None = Field(default=None, description="page forward: the last_id of the previous page")
    order: Literal["asc", "desc"] = Field(default="desc", description="desc = newest first")
    user_id: UserId | None = Field(default=None, description=_USER_ID_DOC)
    bot_id: CozeId | None = Field(default=None, description=_BOT_ID_DOC)


class CancelChatIn(_In):
    conversation_id: CozeId
    chat_id: CozeId


class GetChatResultIn(_In):
    chat_id: CozeId = Field(description="the chat_id returned by send_message (or shown in its error)")


class BotGuard(Protocol):
    """Why a conversation may not start with a bot (Coze said it was deleted), or None if it may."""

    async def refusal(self, bot_id: str) -> str | None: ...


def _escape(caller: str) -> str:
    # "|" separates a caller from its user ids in a user key: inside a caller id it is escaped,
    # so no caller's keys can start with another caller's prefix.
    return caller.replace("%", "%25").replace("|", "%7C")


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose conversations a call may use: the caller's own, or (shared user ids) anyone's.

    A scoped caller's ``user_id`` names a slot in its own space (store key ``<caller>|<user_id>``,
    the caller itself when there is none); what belongs to other callers is out of reach, and a
    chat or conversation of theirs is answered like an unknown one. Doors with no caller identity
    (internal ones: event routes configured by the operator) are not scoped.
    """

    prefix: str | None  # the caller's escaped id; None: unscoped
    fallback: str  # the key when no user_id is given and there is no prefix

    @classmethod
    def of(cls, ctx: ToolContext, *, shared: bool) -> Scope:
        caller = ctx.caller_id
        if shared or caller is None:
            return cls(prefix=None, fallback=caller or DEFAULT_USER_ID)
        return cls(prefix=_escape(caller), fallback=caller)

    def key(self, user_id: str | None) -> str:
        if self.prefix is None:
            return user_id or self.fallback
        return self.prefix if user_id is None else f"{self.prefix}|{user_id}"

    def shown(self, user_id: str | None) -> str:
        """The user id as the caller knows it (not the store key)."""
        return user_id or self.fallback

    @property
    def may(self) -> MayTouch | None:
        prefix = self.prefix
        if prefix is None:
            return None
        return lambda key: key == prefix or key.startswith(prefix + "|")


class DeltaRelay:
    """Forwards streamed text to a tool context as progress and log lines, coalescing bursts.

    :meth:`push` only queues (it never waits on the client); :meth:`run` sends everything
    queued so far as one notification, then again for what arrived meanwhile, until
    :meth:`close` and the queue is empty. Progress is the number of characters sent so far.
    """

    def __init__(self, ctx: ToolContext) -> None:
        self._ctx = ctx
        self._pending: list[str] = []
        self._wake = anyio.Event()
        self._closed = False
        self.chars = 0
        self.notifications = 0

    async def push(self, text: str) -> None:
        if self._closed:
            raise RuntimeError("the delta relay is closed")
        self._pending.append(text)
        self._wake.set()

    def close(self) -> None:
        """No more text: :meth:`run` returns once what is queued has been sent."""
        self._closed = True
        self._wake.set()

    async def run(self) -> None:
        failed = False
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._pending:
                text = "".join(self._pending)
                self._pending.clear()
                self.chars += len(text)
                if failed:
                    continue
                try:
                    await self._ctx.report_progress(self.chars, None, text)
                    await self._ctx.log("info", text)
                except Exception:
                    # Progress is best effort: the answer still comes back as the result.
                    logger.warning("streaming progress to the caller failed; the rest is dropped", exc_info=True)
                    failed = True
                else:
                    self.notifications += 1
            if self._closed:
                return


@asynccontextmanager
async def relay_deltas(ctx: ToolContext) -> AsyncIterator[Callable[[str], Awaitable[None]]]:
    """``async with relay_deltas(ctx) as on_delta:`` — text pushed inside is all sent on a clean exit.

    On an error the relay stops without flushing (the call failed anyway) and the error comes
    out as it was raised, not wrapped in an exception group; cancellation passes through.
    """
    relay = DeltaRelay(ctx)
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(relay.run)
        try:
            yield relay.push
        except Exception as exc:
            error = exc
            tg.cancel_scope.cancel()
        finally:
            relay.close()
    if error is not None:
        raise error


def conversation_tools(
    service: ConversationService,
    *,
    send_timeout: float | None = None,
    bot_guard: BotGuard | None = None,
    shared_user_ids: bool = False,
) -> list[Tool]:
    """The five conversation tools over ``service``.

    ``send_timeout`` bounds a whole send_message; by default a little more than the
    service's own chat timeout, so the service's clearer timeout error wins. ``bot_guard``
    (the webhook door's bot states) refuses new conversations and messages to a bot Coze
    reported deleted, with that reason. ``shared_user_ids``: see :class:`Scope`.
    """

    def scope(ctx: ToolContext) -> Scope:
        return Scope.of(ctx, shared=shared_user_ids)

    async def check_bot(bot_id: str | None) -> None:
        target = bot_id or service.default_bot_id
        if bot_guard is not None and target and (reason := await bot_guard.refusal(target)):
            raise ToolError(reason)

    async def create_conversation(params: CreateConversationIn, ctx: ToolContext) -> ConversationInfo:
        await check_bot(params.bot_id)
        mine = scope(ctx)
        info = await service.create_conversation(user_id=mine.key(params.user_id), bot_id=params.bot_id)
        return info.model_copy(update={"user_id": mine.shown(params.user_id)})

    async def send_message(params: SendMessageIn, ctx: ToolContext) -> SendResult:
        await check_bot(params.bot_id)

        def on_chat(chat_id: str, conversation_id: str) -> None:
            ctx.offer_poll({"chat_id": chat_id})

        mine = scope(ctx)
        if not ctx.can_report:  # nobody to stream to: no relay to run
            return await service.send_message(
                user_id=mine.key(params.user_id),
                message=params.message,
                conversation_id=params.conversation_id,
                bot_id=params.bot_id,
                on_chat=on_chat,
                may=mine.may,
                send_key=ctx.idempotency_key,
            )
        async with relay_deltas(ctx) as on_delta:
            return await service.send_message(
                user_id=mine.key(params.user_id),
                message=params.message,
                conversation_id=params.conversation_id,
                bot_id=params.bot_id,
                on_delta=on_delta,
                on_chat=on_chat,
                may=mine.may,
                send_key=ctx.idempotency_key,
            )

    async def get_conversation_messages(params: GetMessagesIn, ctx: ToolContext) -> MessageList:
        mine = scope(ctx)
        return await service.get_conversation_messages(
            conversation_id=params.conversation_id,
            user_id=mine.key(params.user_id),
            may=mine.may,
            bot_id=params.bot_id,
            limit=params.limit,
            before_id=params.before_id,
            after_id=params.after_id,
            order=params.order,
        )

    async def cancel_chat(params: CancelChatIn, ctx: ToolContext) -> ChatResult:
        return await service.cancel_chat(conversation_id=params.conversation_id, chat_id=params.chat_id,
                                         may=scope(ctx).may)

    async def get_chat_result(params: GetChatResultIn, ctx: ToolContext) -> ChatResult:
        return await service.get_chat_result(chat_id=params.chat_id, may=scope(ctx).may)

    # Waiting for an earlier message to the same conversation, then the chat: each up to chat_timeout.
    timeout = send_timeout if send_timeout is not None else 2 * service.chat_timeout + 15.0
    return [
        typed_tool(
            name=CREATE_CONVERSATION,
            title="New Coze conversation",
            description=(
                "Start a new conversation with the Coze bot and make it your current one; later send_message "
                "calls without conversation_id continue it. Returns conversation_id."
            ),
            input_model=CreateConversationIn,
            output_model=ConversationInfo,
            annotations=ToolAnnotations(read_only=False, destructive=False, idempotent=False, open_world=True),
            func=create_conversation,
        ),
        typed_tool(
            name=SEND_MESSAGE,
            title="Send a message to the Coze bot",
            description=(
                "Send a message to the Coze bot and return its whole answer (streamed as progress while it "
                "arrives). Continues your current conversation unless conversation_id is given. Local plugin "
                "calls the bot makes are run by this bridge. If the call is interrupted, fetch the answer "
                "later with get_chat_result(chat_id)."
            ),
            input_model=SendMessageIn,
            output_model=SendResult,
            annotations=ToolAnnotations(read_only=False, destructive=False, idempotent=False, open_world=True),
            func=send_message,
            timeout=timeout,
            poll_with="get_chat_result",
        ),
        typed_tool(
            name=GET_CONVERSATION_MESSAGES,
            title="Read a Coze conversation",
            description=(
                "List messages of a conversation (your current one by default), newest first. Page with "
                "before_id=first_id (older) or after_id=last_id (newer)."
            ),
            input_model=GetMessagesIn,
            output_model=MessageList,
            annotations=ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=True),
            func=get_conversation_messages,
        ),
        typed_tool(
            name=CANCEL_CHAT,
            title="Cancel a running Coze chat",
            description="Cancel a chat that is still running (e.g. one that takes too long).",
            input_model=CancelChatIn,
            output_model=ChatResult,
            annotations=ToolAnnotations(read_only=False, destructive=True, idempotent=True, open_world=True),
            func=cancel_chat,
        ),
        typed_tool(
            name=GET_CHAT_RESULT,
            title="Fetch a chat's answer",
            description=(
                "Fetch the outcome of an earlier send_message by chat_id: status and the whole answer once "
                "completed (useful when the original call was interrupted)."
            ),
            input_model=GetChatResultIn,
            output_model=ChatResult,
            annotations=ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=True),
            func=get_chat_result,
        ),
    ]
