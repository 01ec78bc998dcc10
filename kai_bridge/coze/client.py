"""The async Coze Open API client: conversations, messages, chat v3 (poll and stream), bots, users.

Thin, keyword-only resource methods over :class:`~kai_bridge.coze.pipeline.CozePipeline`, which
every request goes through (breaker, token, HTTP, envelope, retry). One :class:`CozeClient`
sits on one injected ``httpx.AsyncClient``; the composition root owns that client (sizes its
pool with :func:`~kai_bridge.coze.pipeline.build_http_client`) and closes it. The client knows
no application settings: whoever builds it passes the numbers (``kai_bridge.wiring``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import random
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from kai_bridge.coze.auth import TokenProvider
from kai_bridge.coze.breaker import CircuitBreaker
from kai_bridge.coze.events import collect_answer, failed_error
from kai_bridge.coze.models import (
    Bot,
    BotPage,
    Chat,
    ChatEvent,
    ChatEventType,
    ChatPoll,
    ChatRequest,
    ChatStatus,
    Conversation,
    ConversationPage,
    EnterMessage,
    Message,
    MessageContentType,
    MessagePage,
    MessageRole,
    Section,
    ToolOutput,
    User,
)
from kai_bridge.coze.observer import CozeObserver
from kai_bridge.coze.pipeline import CozePipeline, drop_none
from kai_bridge.coze.quota import RequestQuota
from kai_bridge.coze.retry import RetryPolicy
from kai_bridge.errors import (
    ChatCanceledError,
    ChatTimeoutError,
    CozeAPIError,
    CozeError,
    CozeServerError,
    CozeTransportError,
)

__all__ = ["SEND_TAG_KEY", "CozeClient"]

#: The ``meta_data`` key that marks a question sent by this client, to tell whether a failed create started a chat.
SEND_TAG_KEY = "kai_bridge_send"


def send_tag(send_key: str) -> str:
    """The tag of a keyed send: 24 hex characters like a random one, and not the key itself."""
    return hashlib.sha256(send_key.encode()).hexdigest()[:24]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


def _validate(model: type[M], data: Any, *, context: str, logid: str | None) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in err["loc"]) or "body" for err in exc.errors()[:3])
        raise CozeAPIError(
            f"{context}: Coze answered with an unexpected shape (fields: {fields})", logid=logid
        ) from None


class CozeClient:
    """Typed, keyword-only access to the Coze Open API (see the module docstring)."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str,
        auth: TokenProvider,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        poll_interval: float = 1.0,
        chat_timeout: float = 120.0,
        bot_id: str | None = None,
        workspace_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        quota: RequestQuota | None = None,
    ) -> None:
        self._pipe = CozePipeline(
            http=http, base_url=base_url, auth=auth, retry=retry, breaker=breaker, clock=clock, sleep=sleep,
            rand=rand, quota=quota,
        )
        self._poll_interval = poll_interval
        self._chat_timeout = chat_timeout
        self._bot_id = bot_id
        self._workspace_id = workspace_id
        self._clock = clock
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"CozeClient(base_url={self._pipe.base_url!r}, auth={self._pipe.auth.mode})"

    @property
    def base_url(self) -> str:
        return self._pipe.base_url

    @property
    def http(self) -> httpx.AsyncClient:
        return self._pipe.http

    @property
    def auth(self) -> TokenProvider:
        return self._pipe.auth

    @property
    def breaker(self) -> CircuitBreaker:
        return self._pipe.breaker

    @property
    def quota(self) -> RequestQuota | None:
        """The outgoing quota every request waits on (None: none configured)."""
        return self._pipe.quota

    def observe(self, observer: CozeObserver | None) -> None:
        """Report every request attempt to ``observer`` (None: stop); see :mod:`kai_bridge.coze.observer`."""
        self._pipe.observer = observer

    @property
    def counters(self) -> dict[str, int]:
        """Requests, retries, re-auths, errors, streams and cut streams so far (live, not a copy)."""
        return self._pipe.counters

    # ---- conversations ---------------------------------------------------------------------
    async def create_conversation(
        self,
        *,
        bot_id: str | None = None,
        messages: list[EnterMessage] | None = None,
        meta_data: dict[str, str] | None = None,
        name: str | None = None,
    ) -> Conversation:
        body = drop_none(
            {
                "bot_id": bot_id,
                "messages": [m.wire() for m in messages] if messages else None,
                "meta_data": meta_data,
                "name": name,
            }
        )
        # Repeated after a failure, a create can at worst leave an empty conversation behind,
        # which costs nothing: it is retried like a read (a chat create never is, see stream_chat).
        env = await self._pipe.call("POST", "/v1/conversation/create", body=body, idempotent=True,
                                    context="create_conversation")
        return _validate(Conversation, env.data, context="create_conversation", logid=env.logid)

    async def retrieve_conversation(self, *, conversation_id: str) -> Conversation:
        env = await self._pipe.call("GET", "/v1/conversation/retrieve", params={"conversation_id": conversation_id},
                                    idempotent=True, context="retrieve_conversation")
        return _validate(Conversation, env.data, context="retrieve_conversation", logid=env.logid)

    async def list_conversations(self, *, bot_id: str, page_num: int = 1, page_size: int = 50) -> ConversationPage:
        env = await self._pipe.call("GET", "/v1/conversations",
                                    params={"bot_id": bot_id, "page_num": page_num, "page_size": page_size},
                                    idempotent=True, context="list_conversations")
        return _validate(ConversationPage, env.data, context="list_conversations", logid=env.logid)

    async def clear_conversation(self, *, conversation_id: str) -> Section:
        env = await self._pipe.call("POST", f"/v1/conversations/{conversation_id}/clear", idempotent=False,
                                    context="clear_conversation")
        return _validate(Section, env.data, context="clear_conversation", logid=env.logid)

    # ---- messages --------------------------------------------------------------------------
    async def create_message(
        self,
        *,
        conversation_id: str,
        role: MessageRole | str,
        content: str,
        content_type: MessageContentType | str = "text",
        meta_data: dict[str, str] | None = None,
    ) -> Message:
        body = drop_none({"role": str(role), "content": content, "content_type": str(content_type),
                           "meta_data": meta_data})
        env = await self._pipe.call("POST", "/v1/conversation/message/create",
                                    params={"conversation_id": conversation_id}, body=body, idempotent=False,
                                    context="create_message")
        return _validate(Message, env.data, context="create_message", logid=env.logid)

    async def list_messages(
        self,
        *,
        conversation_id: str,
        order: str = "desc",
        chat_id: str | None = None,
        before_id: str | None = None,
        after_id: str | None = None,
        limit: int = 50,
        retries: int | None = None,
    ) -> MessagePage:
        body = {"order": order, "chat_id": chat_id, "before_id": before_id, "after_id": after_id, "limit": limit}
        env = await self._pipe.call("POST", "/v1/conversation/message/list",
                                    params={"conversation_id": conversation_id}, body=drop_none(body),
                                    idempotent=True, context="list_messages", retries=retries)
        page = {
            "items": env.data if isinstance(env.data, list) else [],
            "first_id": env.body.get("first_id") or None,
            "last_id": env.body.get("last_id") or None,
            "has_more": bool(env.body.get("has_more")),
        }
        return _validate(MessagePage, page, context="list_messages", logid=env.logid)

    async def iter_messages(
        self, *, conversation_id: str, order: str = "desc", chat_id: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Message]:
        """Every message of a conversation, page after page (next page: ``after_id=last_id``)."""
        after_id: str | None = None
        seen: set[str] = set()
        while True:
            page = await self.list_messages(conversation_id=conversation_id, order=order, chat_id=chat_id,
                                            after_id=after_id, limit=page_size)
            for message in page.items:
                yield message
            if not page.has_more or not page.last_id or page.last_id in seen:
                return  # a repeated cursor would loop forever: stop
            seen.add(page.last_id)
            after_id = page.last_id

    # ---- chat ------------------------------------------------------------------------------
    async def create_chat(self, request: ChatRequest) -> Chat:
        env = await self._pipe.call("POST", "/v3/chat", params={"conversation_id": request.conversation_id},
                                    body=request.body(stream=False), idempotent=False, context="create_chat")
        return _validate(Chat, env.data, context="create_chat", logid=env.logid)

    async def _retrieve_chat(self, *, conversation_id: str, chat_id: str) -> tuple[Chat, str | None]:
        env = await self._pipe.call("GET", "/v3/chat/retrieve",
                                    params={"conversation_id": conversation_id, "chat_id": chat_id},
                                    idempotent=True, context="retrieve_chat")
        return _validate(Chat, env.data, context="retrieve_chat", logid=env.logid), env.logid

    async def retrieve_chat(self, *, conversation_id: str, chat_id: str) -> Chat:
        chat, _ = await self._retrieve_chat(conversation_id=conversation_id, chat_id=chat_id)
        return chat

    async def list_chat_messages(self, *, conversation_id: str, chat_id: str) -> list[Message]:
        env = await self._pipe.call("GET", "/v3/chat/message/list",
                                    params={"conversation_id": conversation_id, "chat_id": chat_id},
                                    idempotent=True, context="list_chat_messages")
        items = env.data if isinstance(env.data, list) else []
        return [_validate(Message, item, context="list_chat_messages", logid=env.logid) for item in items]

    async def cancel_chat(self, *, conversation_id: str, chat_id: str) -> Chat:
        env = await self._pipe.call("POST", "/v3/chat/cancel",
                                    body={"conversation_id": conversation_id, "chat_id": chat_id},
                                    idempotent=True, context="cancel_chat")
        return _validate(Chat, env.data, context="cancel_chat", logid=env.logid)

    async def _cancel_quietly(self, chat: Chat) -> None:
        try:
            await self.cancel_chat(conversation_id=chat.conversation_id, chat_id=chat.id)
        except CozeError as exc:
            # 4104: it already finished or cannot be canceled now; either way nothing to undo.
            log.info("cancel of chat %s not done: %s", chat.id, exc)

    async def create_and_poll(
        self,
        request: ChatRequest,
        *,
        poll_interval: float | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (on timeout the Coze chat is canceled too)
    ) -> ChatPoll:
        """Start a chat and poll it to a terminal status; return it with its messages.

        ``completed`` and ``requires_action`` return; ``failed`` raises ChatFailedError,
        ``canceled`` ChatCanceledError; past ``timeout`` the chat is canceled upstream and
        ChatTimeoutError raised. If the awaiting task is cancelled, the Coze chat is cancelled
        too (best effort) before the CancelledError propagates. Polling needs the history
        saved, so ``auto_save_history`` is forced on.
        """
        chat = await self.create_chat(dataclasses.replace(request, auto_save_history=True))
        return await self._poll(chat, poll_interval=poll_interval, limit_seconds=timeout)

    async def poll_chat(
        self,
        *,
        conversation_id: str,
        chat_id: str,
        poll_interval: float | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (on timeout the Coze chat is canceled too)
    ) -> ChatPoll:
        """Poll an existing chat (e.g. after a non-stream submit_tool_outputs) like create_and_poll."""
        chat = await self.retrieve_chat(conversation_id=conversation_id, chat_id=chat_id)
        return await self._poll(chat, poll_interval=poll_interval, limit_seconds=timeout)

    async def _poll(self, chat: Chat, *, poll_interval: float | None, limit_seconds: float | None) -> ChatPoll:
        interval = self._poll_interval if poll_interval is None else poll_interval
        limit = self._chat_timeout if limit_seconds is None else limit_seconds
        deadline = self._clock() + limit
        logid: str | None = None
        try:
            while not chat.status.is_terminal:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    await self._cancel_quietly(chat)
                    raise ChatTimeoutError(
                        f"the Coze chat {chat.id} did not finish within {limit:g}s and was canceled",
                        chat_id=chat.id, conversation_id=chat.conversation_id,
                    )
                await self._sleep(min(interval, remaining))
                chat, logid = await self._retrieve_chat(conversation_id=chat.conversation_id, chat_id=chat.id)
        except asyncio.CancelledError:
            # Do not leave a chat running upstream (it would also block the conversation with 4016).
            cleanup = asyncio.ensure_future(self._cancel_quietly(chat))
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, CozeError):
                await asyncio.wait_for(asyncio.shield(cleanup), timeout=5.0)
            raise
        if chat.status is ChatStatus.FAILED:
            raise failed_error(chat, logid=logid)
        if chat.status is ChatStatus.CANCELED:
            raise ChatCanceledError(f"the Coze chat {chat.id} was canceled", chat_id=chat.id,
                                    conversation_id=chat.conversation_id)
        messages_out = await self.list_chat_messages(conversation_id=chat.conversation_id, chat_id=chat.id)
        return ChatPoll(chat=chat, messages=messages_out)

    def stream_chat(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        """The chat's events as they arrive. Close it early with ``contextlib.aclosing``.

        In an existing conversation a failed create is never blindly repeated: the question is
        tagged (``meta_data``), and when the create fails in a way that may have reached Coze
        the conversation is searched for the tag. There: the chat that did start is followed by
        polling, as events of the same shape. Not there after a 5xx (Coze answered, so it is done
        with the request): it did not start the chat, and it is sent again (backoff,
        ``max_retries``). Not there after the connection was lost or timed out once the request
        was sent: the request may still be on its way, so it is *not* sent again (a duplicate
        chat is worse than a failed one). Without a conversation id nothing can be searched,
        and the create is not repeated.
        """
        if request.conversation_id is None or not request.messages:
            return self._open_chat_stream(request)
        return self._stream_chat_checked(request, request.conversation_id)

    def _open_chat_stream(self, request: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        return self._pipe.stream_events(path="/v3/chat", params={"conversation_id": request.conversation_id},
                                        body=request.body(stream=True), context="stream_chat")

    async def _stream_chat_checked(self, request: ChatRequest, conversation_id: str) -> AsyncGenerator[ChatEvent, None]:
        tag = send_tag(request.send_key) if request.send_key is not None else secrets.token_hex(12)
        *context, question = request.messages
        tagged = dataclasses.replace(request, messages=[*context, question.tagged(SEND_TAG_KEY, tag)])
        started: str | None = None  # a chat this send already started: followed instead of sent (again)
        if request.send_key is not None:
            # A send that may have been made before (by a process that died mid-chat): follow that chat.
            started = await self._find_tagged(conversation_id=conversation_id, tag=tag, retries=None)
            if started is not None:
                self._pipe.counters["sends_followed"] += 1
                log.info("stream_chat: this send was made before (chat %s); following it instead of sending again",
                         started)
        retry = 0
        while started is None:
            events = self._open_chat_stream(tagged)
            try:
                first = await anext(events)
            except (CozeServerError, CozeTransportError) as exc:
                await events.aclose()
                if retry >= self._pipe.retry.max_retries:
                    raise
                self._pipe.counters["chat_creates_checked"] += 1
                # After a 5xx the check decides whether to send again: it gets the retry budget.
                # After a timeout or a lost connection nothing is sent again whatever it finds: it
                # only looks for a chat to follow, in one try (one request timeout), not retries.
                once = not isinstance(exc, CozeServerError)
                try:
                    started = await self._find_tagged(conversation_id=conversation_id, tag=tag,
                                                      retries=0 if once else None)
                except CozeError as check_error:
                    # Cannot tell whether it started: never send it again; the create's error is the story.
                    log.warning("stream_chat: could not check whether the failed create started a chat: %s",
                                check_error)
                    raise exc from None
                if started is not None:
                    self._pipe.counters["chat_creates_resumed"] += 1
                    log.warning("stream_chat: the create failed (%s) but Coze started chat %s; following it",
                                type(exc).__name__, started)
                    break
                if not isinstance(exc, CozeServerError):
                    raise  # lost after sending and not (yet) in the conversation: maybe still coming
                await self._pipe.backoff(exc, retry=retry, context="stream_chat (not started: sending again)")
                retry += 1
                continue
            async with contextlib.aclosing(events):
                yield first
                async for event in events:
                    yield event
            return
        async with contextlib.aclosing(self._follow(conversation_id=conversation_id, chat_id=started)) as followed:
            async for event in followed:
                yield event

    async def _find_tagged(self, *, conversation_id: str, tag: str, retries: int | None) -> str | None:
        """The chat id of the newest message carrying ``tag``, if Coze has one."""
        page = await self.list_messages(conversation_id=conversation_id, order="desc", limit=20, retries=retries)
        for message in page.items:
            if (message.meta_data or {}).get(SEND_TAG_KEY) == tag and message.chat_id:
                return message.chat_id
        return None

    async def _follow(self, *, conversation_id: str, chat_id: str) -> AsyncGenerator[ChatEvent, None]:
        """A started chat as stream events, by polling: created, then its end (answers, or the pause)."""
        chat = await self.retrieve_chat(conversation_id=conversation_id, chat_id=chat_id)
        yield ChatEvent(event=ChatEventType.CHAT_CREATED, chat=chat)
        poll = await self._poll(chat, poll_interval=None, limit_seconds=None)
        if poll.chat.status is ChatStatus.REQUIRES_ACTION:
            yield ChatEvent(event=ChatEventType.CHAT_REQUIRES_ACTION, chat=poll.chat)
            return
        for message in poll.messages:
            yield ChatEvent(event=ChatEventType.MESSAGE_COMPLETED, message=message)
        yield ChatEvent(event=ChatEventType.CHAT_COMPLETED, chat=poll.chat)
        yield ChatEvent(event=ChatEventType.DONE)

    async def stream_and_collect(self, request: ChatRequest) -> ChatPoll:
        """A streamed chat drained to its whole answer (raises ChatFailedError on failure)."""
        return await collect_answer(self.stream_chat(request))

    async def submit_tool_outputs(
        self, *, conversation_id: str, chat_id: str, tool_outputs: list[ToolOutput]
    ) -> Chat:
        body = {"tool_outputs": [t.model_dump() for t in tool_outputs], "stream": False}
        env = await self._pipe.call("POST", "/v3/chat/submit_tool_outputs",
                                    params={"conversation_id": conversation_id, "chat_id": chat_id}, body=body,
                                    idempotent=False, context="submit_tool_outputs")
        return _validate(Chat, env.data, context="submit_tool_outputs", logid=env.logid)

    def submit_tool_outputs_stream(
        self, *, conversation_id: str, chat_id: str, tool_outputs: list[ToolOutput]
    ) -> AsyncGenerator[ChatEvent, None]:
        body = {"tool_outputs": [t.model_dump() for t in tool_outputs], "stream": True}
        return self._pipe.stream_events(path="/v3/chat/submit_tool_outputs",
                                        params={"conversation_id": conversation_id, "chat_id": chat_id},
                                        body=body, context="submit_tool_outputs_stream")

    # ---- bots ------------------------------------------------------------------------------
    async def list_bots(self, *, workspace_id: str, page_index: int = 1, page_size: int = 20) -> BotPage:
        env = await self._pipe.call("GET", "/v1/bots",
                                    params={"workspace_id": workspace_id, "page_index": page_index,
                                            "page_size": page_size},
                                    idempotent=True, context="list_bots")
        return _validate(BotPage, env.data, context="list_bots", logid=env.logid)

    async def retrieve_bot(self, *, bot_id: str) -> Bot:
        env = await self._pipe.call("GET", f"/v1/bots/{bot_id}", idempotent=True, context="retrieve_bot")
        return _validate(Bot, env.data, context="retrieve_bot", logid=env.logid)

    # ---- users -----------------------------------------------------------------------------
    async def get_me(self) -> User:
        """The Coze user the token belongs to (``GET /v1/users/me``): proves a token works without any id."""
        env = await self._pipe.call("GET", "/v1/users/me", idempotent=True, context="get_me")
        return _validate(User, env.data, context="get_me", logid=env.logid)

    # ---- health ----------------------------------------------------------------------------
    async def ping(self) -> None:
        """A cheap authenticated call: the configured bot, else the workspace's bots, else who am I."""
        if self._bot_id:
            await self.retrieve_bot(bot_id=self._bot_id)
        elif self._workspace_id:
            await self.list_bots(workspace_id=self._workspace_id, page_size=1)
        else:
            await self.get_me()

    def diagnostics(self) -> dict[str, Any]:
        """State for /diagnostics/coze: no secrets (no token, key, JWT or PAT)."""
        return self._pipe.diagnostics()
