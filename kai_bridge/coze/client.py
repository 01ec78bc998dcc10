"""The async Coze Open API client: conversations, messages, chat v3 (poll and stream), bots.

One :class:`CozeClient` sits on one injected ``httpx.AsyncClient`` (the composition root
owns it, sizes its pool with :func:`build_http_client` and closes it). Every call goes
through the same small pipeline:

    circuit breaker ─► token (cached; single flight) ─► HTTP ─► envelope / error mapping
          ▲                                                              │
          └──── retry (jittered backoff) when the error is transient ◄───┘
                and repeating the call is safe; one re-auth on 401/4100

A call is repeated only when that cannot do something twice upstream: reads, cancel and
the token exchange may always be retried; a chat create, a stream or submit_tool_outputs
only when Coze provably did not start it (a connect error, where no byte was sent, or a
rate-limit refusal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from kai_bridge.config import Settings
from kai_bridge.coze.auth import TokenProvider, auth_from_settings
from kai_bridge.coze.breaker import CircuitBreaker
from kai_bridge.coze.envelope import Envelope, logid_of, parse_envelope
from kai_bridge.coze.events import chat_event_from_sse, collect_answer, failed_error
from kai_bridge.coze.models import (
    Bot,
    BotPage,
    Chat,
    ChatEvent,
    ChatEventType,
    ChatPoll,
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
from kai_bridge.coze.quota import RequestQuota
from kai_bridge.coze.retry import RetryPolicy
from kai_bridge.coze.streaming import SSEDecoder
from kai_bridge.errors import (
    ChatCanceledError,
    ChatTimeoutError,
    CozeAPIError,
    CozeAuthError,
    CozeError,
    CozeRateLimitError,
    CozeServerError,
    CozeTransportError,
)

__all__ = ["USER_AGENT", "CozeClient", "build_http_client"]

log = logging.getLogger(__name__)

_VERSION = "0.1.0"
USER_AGENT = f"kai-bridge/{_VERSION} python/{sys.version_info.major}.{sys.version_info.minor}"

M = TypeVar("M", bound=BaseModel)
_T = TypeVar("_T")

# Errors that prove the request never reached Coze (no byte of it was sent), so even a
# non-idempotent call (chat create) may be sent again.
_NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def build_http_client(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The one HTTP client for Coze, with the pool and timeouts of the settings.

    The seed guide's numbers are the defaults: 100 connections, 30 s timeout.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.coze_timeout, connect=settings.coze_connect_timeout),
        limits=httpx.Limits(
            max_connections=settings.coze_max_connections,
            max_keepalive_connections=settings.coze_max_keepalive,
            keepalive_expiry=30.0,
        ),
        headers={"User-Agent": USER_AGENT},
        transport=transport,
    )


def _validate(model: type[M], data: Any, *, context: str, logid: str | None) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in err["loc"]) or "body" for err in exc.errors()[:3])
        raise CozeAPIError(
            f"{context}: Coze answered with an unexpected shape (fields: {fields})", logid=logid
        ) from None


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


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
        self._quota = quota  # every request (each attempt) waits for a slot of the outgoing quota
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._auth = auth
        self._retry = retry or RetryPolicy()
        self._breaker = breaker or CircuitBreaker(clock=clock)
        self._poll_interval = poll_interval
        self._chat_timeout = chat_timeout
        self._bot_id = bot_id
        self._workspace_id = workspace_id
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self.counters: dict[str, int] = {
            "requests": 0,
            "retries": 0,
            "reauths": 0,
            "errors": 0,
            "streams": 0,
            "streams_cut": 0,
        }

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        http: httpx.AsyncClient,
        base_url: str | None = None,
        auth: TokenProvider | None = None,
        bot_id: str | None = None,
        workspace_id: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> CozeClient:
        """A client as the settings say; the keyword arguments override them (e.g. for the sandbox)."""
        base = base_url or settings.coze_api_base
        return cls(
            http=http,
            base_url=base,
            auth=auth or auth_from_settings(settings, http=http, base_url=base, clock=clock, sleep=sleep),
            retry=RetryPolicy.from_settings(settings),
            breaker=CircuitBreaker(
                failure_threshold=settings.coze_breaker_failures,
                reset_timeout=settings.coze_breaker_reset,
                clock=clock,
            ),
            poll_interval=settings.coze_poll_interval,
            chat_timeout=settings.coze_chat_timeout,
            bot_id=bot_id or settings.coze_bot_id,
            workspace_id=workspace_id or settings.coze_workspace_id,
            clock=clock,
            sleep=sleep,
            quota=RequestQuota.configured(per_second=settings.coze_quota_per_second, burst=settings.coze_quota_burst,
                                          max_wait=settings.coze_quota_max_wait),
        )

    def __repr__(self) -> str:
        return f"CozeClient(base_url={self._base_url!r}, auth={self._auth.mode})"

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http

    @property
    def auth(self) -> TokenProvider:
        return self._auth

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    # ---- the pipeline ----------------------------------------------------------------------
    def _headers(self, token: str, *, stream: bool = False) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {token}"}
        if stream:
            headers["Accept"] = "text/event-stream"
        return headers

    def _transport_error(self, exc: httpx.RequestError, context: str) -> CozeTransportError:
        # RequestError = transport failures (connect, timeouts, protocol) plus decoding errors.
        detail = str(exc)
        kind = type(exc).__name__
        return CozeTransportError(
            f"{context}: no answer from Coze at {self._base_url} ({kind}{': ' + detail if detail else ''})"
        )

    def _may_retry(self, exc: CozeError, *, idempotent: bool) -> bool:
        if isinstance(exc, CozeRateLimitError):
            return True  # refused before any work was done: safe whatever the call
        if isinstance(exc, CozeServerError):
            return idempotent
        if isinstance(exc, CozeTransportError):
            return idempotent or isinstance(exc.__cause__, _NOTHING_SENT)
        return False

    def _wants_reauth(self, exc: CozeAuthError, *, already: bool) -> bool:
        return (
            not already
            and self._auth.can_refresh
            and (exc.code == 4100 or (exc.code is None and exc.http_status == 401))
        )

    async def _backoff(self, exc: CozeError, *, retry: int, context: str) -> None:
        retry_after = exc.retry_after if isinstance(exc, CozeRateLimitError) else None
        delay = self._retry.delay(retry=retry, retry_after=retry_after, rand=self._rand)
        self.counters["retries"] += 1
        log.warning("%s: %s; retry %d/%d in %.2fs", context, type(exc).__name__, retry + 1,
                    self._retry.max_retries, delay)
        await self._sleep(delay)

    async def _authed(self, send: Callable[[str], Awaitable[_T]], *, idempotent: bool, context: str) -> _T:
        """Run ``send(token)`` behind the breaker: one re-mint on 401/4100, backoff where a repeat is safe."""
        retry = 0
        reauthed = False
        while True:
            if self._quota is not None:
                await self._quota.acquire()  # CozeQuotaError: nothing was sent, so neither retried nor a failure
            token: str | None = None
            self.counters["requests"] += 1
            try:
                with self._breaker.guard():
                    token = await self._auth.get_token()
                    return await send(token)
            except CozeAuthError as exc:
                if token is not None and self._wants_reauth(exc, already=reauthed):
                    reauthed = True
                    self.counters["reauths"] += 1
                    self._auth.invalidate(token)
                    log.info("%s: Coze refused the access token; retrying once with a new one", context)
                    continue
                self.counters["errors"] += 1
                raise
            except CozeError as exc:
                # token is None: the failure came from the token provider, which already retried.
                if token is None or retry >= self._retry.max_retries or not self._may_retry(
                    exc, idempotent=idempotent
                ):
                    self.counters["errors"] += 1
                    raise
                await self._backoff(exc, retry=retry, context=context)
                retry += 1

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotent: bool,
        context: str,
    ) -> Envelope:
        url = self._base_url + path

        async def send(token: str) -> Envelope:
            try:
                response = await self._http.request(
                    method, url, params=_drop_none(params or {}), json=body, headers=self._headers(token)
                )
            except httpx.RequestError as exc:
                raise self._transport_error(exc, context) from exc
            return parse_envelope(response, context=context)

        return await self._authed(send, idempotent=idempotent, context=context)

    async def _open_stream(self, *, path: str, params: Mapping[str, Any], body: Any, context: str) -> httpx.Response:
        url = self._base_url + path

        async def send(token: str) -> httpx.Response:
            request = self._http.build_request(
                "POST", url, params=_drop_none(params), json=body, headers=self._headers(token, stream=True)
            )
            try:
                response = await self._http.send(request, stream=True)
            except httpx.RequestError as exc:
                raise self._transport_error(exc, context) from exc
            ctype = response.headers.get("content-type", "")
            if response.is_success and "event-stream" in ctype:
                return response
            try:
                await response.aread()
            except httpx.RequestError as exc:
                raise self._transport_error(exc, context) from exc
            finally:
                await response.aclose()
            parse_envelope(response, context=context)
            raise CozeAPIError(
                f"{context}: expected an event stream, Coze answered {ctype or 'no content type'}",
                http_status=response.status_code,
                logid=logid_of(response),
            )

        # A stream that got an answer may have started a chat: only refusals before any work
        # (429) or connect errors are repeated, hence idempotent=False.
        return await self._authed(send, idempotent=False, context=context)

    async def _stream_events(
        self, *, path: str, params: Mapping[str, Any], body: Any, context: str
    ) -> AsyncGenerator[ChatEvent, None]:
        response = await self._open_stream(path=path, params=params, body=body, context=context)
        self.counters["streams"] += 1
        logid = logid_of(response)
        count = 0
        ended = False  # saw done, error or a terminal chat event
        decoder = SSEDecoder()
        chunks = response.aiter_bytes()
        try:
            while True:
                try:
                    chunk = await anext(chunks, None)
                except httpx.RequestError as exc:
                    if ended:
                        break  # the answer is whole; only the trailing done was lost
                    self.counters["streams_cut"] += 1
                    self._breaker.record_failure()
                    raise CozeTransportError(
                        f"{context}: the Coze stream was cut after {count} events ({type(exc).__name__})"
                    ) from exc
                for sse in decoder.close() if chunk is None else decoder.feed(chunk):
                    event = chat_event_from_sse(sse, logid=logid)
                    count += 1
                    ended = ended or event.event in _STREAM_END
                    if event.event is ChatEventType.DONE:
                        # Read the body's end before handing over done (the reader may stop
                        # there): a response read to its end returns its connection to the
                        # pool, so the next chat skips a TCP (and TLS) handshake.
                        if chunk is not None:
                            await _finish_body(chunks)
                        yield event
                        return
                    yield event
                if chunk is None:
                    break
        finally:
            closer = getattr(chunks, "aclose", None)
            if closer is not None:
                await closer()
            await response.aclose()
        if not ended:
            self.counters["streams_cut"] += 1
            raise CozeTransportError(
                f"{context}: the Coze stream ended after {count} events before the chat finished"
            )

    # ---- conversations ---------------------------------------------------------------------
    async def create_conversation(
        self,
        *,
        bot_id: str | None = None,
        messages: list[EnterMessage] | None = None,
        meta_data: dict[str, str] | None = None,
        name: str | None = None,
    ) -> Conversation:
        body = _drop_none(
            {
                "bot_id": bot_id,
                "messages": [m.wire() for m in messages] if messages else None,
                "meta_data": meta_data,
                "name": name,
            }
        )
        env = await self._call("POST", "/v1/conversation/create", body=body, idempotent=False,
                               context="create_conversation")
        return _validate(Conversation, env.data, context="create_conversation", logid=env.logid)

    async def retrieve_conversation(self, *, conversation_id: str) -> Conversation:
        env = await self._call("GET", "/v1/conversation/retrieve", params={"conversation_id": conversation_id},
                               idempotent=True, context="retrieve_conversation")
        return _validate(Conversation, env.data, context="retrieve_conversation", logid=env.logid)

    async def list_conversations(self, *, bot_id: str, page_num: int = 1, page_size: int = 50) -> ConversationPage:
        env = await self._call("GET", "/v1/conversations",
                               params={"bot_id": bot_id, "page_num": page_num, "page_size": page_size},
                               idempotent=True, context="list_conversations")
        return _validate(ConversationPage, env.data, context="list_conversations", logid=env.logid)

    async def clear_conversation(self, *, conversation_id: str) -> Section:
        env = await self._call("POST", f"/v1/conversations/{conversation_id}/clear", idempotent=False,
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
        body = _drop_none({"role": str(role), "content": content, "content_type": str(content_type),
                           "meta_data": meta_data})
        env = await self._call("POST", "/v1/conversation/message/create",
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
    ) -> MessagePage:
        body = {"order": order, "chat_id": chat_id, "before_id": before_id, "after_id": after_id, "limit": limit}
        env = await self._call("POST", "/v1/conversation/message/list",
                               params={"conversation_id": conversation_id}, body=_drop_none(body),
                               idempotent=True, context="list_messages")
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
    def _chat_body(
        self,
        *,
        bot_id: str,
        user_id: str,
        messages: list[EnterMessage],
        stream: bool,
        custom_variables: dict[str, str] | None,
        meta_data: dict[str, str] | None,
        auto_save_history: bool,
    ) -> dict[str, Any]:
        return _drop_none(
            {
                "bot_id": bot_id,
                "user_id": user_id,
                "additional_messages": [m.wire() for m in messages],
                "stream": stream,
                "auto_save_history": auto_save_history,
                "custom_variables": custom_variables,
                "meta_data": meta_data,
            }
        )

    async def create_chat(
        self,
        *,
        bot_id: str,
        user_id: str,
        messages: list[EnterMessage],
        conversation_id: str | None = None,
        custom_variables: dict[str, str] | None = None,
        meta_data: dict[str, str] | None = None,
        auto_save_history: bool = True,
    ) -> Chat:
        body = self._chat_body(bot_id=bot_id, user_id=user_id, messages=messages, stream=False,
                               custom_variables=custom_variables, meta_data=meta_data,
                               auto_save_history=auto_save_history)
        env = await self._call("POST", "/v3/chat", params={"conversation_id": conversation_id}, body=body,
                               idempotent=False, context="create_chat")
        return _validate(Chat, env.data, context="create_chat", logid=env.logid)

    async def _retrieve_chat(self, *, conversation_id: str, chat_id: str) -> tuple[Chat, str | None]:
        env = await self._call("GET", "/v3/chat/retrieve",
                               params={"conversation_id": conversation_id, "chat_id": chat_id},
                               idempotent=True, context="retrieve_chat")
        return _validate(Chat, env.data, context="retrieve_chat", logid=env.logid), env.logid

    async def retrieve_chat(self, *, conversation_id: str, chat_id: str) -> Chat:
        chat, _ = await self._retrieve_chat(conversation_id=conversation_id, chat_id=chat_id)
        return chat

    async def list_chat_messages(self, *, conversation_id: str, chat_id: str) -> list[Message]:
        env = await self._call("GET", "/v3/chat/message/list",
                               params={"conversation_id": conversation_id, "chat_id": chat_id},
                               idempotent=True, context="list_chat_messages")
        items = env.data if isinstance(env.data, list) else []
        return [_validate(Message, item, context="list_chat_messages", logid=env.logid) for item in items]

    async def cancel_chat(self, *, conversation_id: str, chat_id: str) -> Chat:
        env = await self._call("POST", "/v3/chat/cancel",
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
        *,
        bot_id: str,
        user_id: str,
        messages: list[EnterMessage],
        conversation_id: str | None = None,
        custom_variables: dict[str, str] | None = None,
        meta_data: dict[str, str] | None = None,
        poll_interval: float | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (on timeout the Coze chat is canceled too)
    ) -> ChatPoll:
        """Start a chat and poll it to a terminal status; return it with its messages.

        ``completed`` and ``requires_action`` return; ``failed`` raises ChatFailedError,
        ``canceled`` ChatCanceledError; past ``timeout`` the chat is canceled upstream and
        ChatTimeoutError raised. If the awaiting task is cancelled, the Coze chat is cancelled
        too (best effort) before the CancelledError propagates.
        """
        chat = await self.create_chat(bot_id=bot_id, user_id=user_id, messages=messages,
                                      conversation_id=conversation_id, custom_variables=custom_variables,
                                      meta_data=meta_data, auto_save_history=True)
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

    def stream_chat(
        self,
        *,
        bot_id: str,
        user_id: str,
        messages: list[EnterMessage],
        conversation_id: str | None = None,
        custom_variables: dict[str, str] | None = None,
        meta_data: dict[str, str] | None = None,
        auto_save_history: bool = True,
    ) -> AsyncGenerator[ChatEvent, None]:
        """The chat's events as they arrive. Close it early with ``contextlib.aclosing``."""
        body = self._chat_body(bot_id=bot_id, user_id=user_id, messages=messages, stream=True,
                               custom_variables=custom_variables, meta_data=meta_data,
                               auto_save_history=auto_save_history)
        return self._stream_events(path="/v3/chat", params={"conversation_id": conversation_id}, body=body,
                                   context="stream_chat")

    async def stream_and_collect(
        self,
        *,
        bot_id: str,
        user_id: str,
        messages: list[EnterMessage],
        conversation_id: str | None = None,
        custom_variables: dict[str, str] | None = None,
        meta_data: dict[str, str] | None = None,
    ) -> ChatPoll:
        """A streamed chat drained to its whole answer (raises ChatFailedError on failure)."""
        return await collect_answer(
            self.stream_chat(bot_id=bot_id, user_id=user_id, messages=messages, conversation_id=conversation_id,
                             custom_variables=custom_variables, meta_data=meta_data)
        )

    async def submit_tool_outputs(
        self, *, conversation_id: str, chat_id: str, tool_outputs: list[ToolOutput]
    ) -> Chat:
        body = {"tool_outputs": [t.model_dump() for t in tool_outputs], "stream": False}
        env = await self._call("POST", "/v3/chat/submit_tool_outputs",
                               params={"conversation_id": conversation_id, "chat_id": chat_id}, body=body,
                               idempotent=False, context="submit_tool_outputs")
        return _validate(Chat, env.data, context="submit_tool_outputs", logid=env.logid)

    def submit_tool_outputs_stream(
        self, *, conversation_id: str, chat_id: str, tool_outputs: list[ToolOutput]
    ) -> AsyncGenerator[ChatEvent, None]:
        body = {"tool_outputs": [t.model_dump() for t in tool_outputs], "stream": True}
        return self._stream_events(path="/v3/chat/submit_tool_outputs",
                                   params={"conversation_id": conversation_id, "chat_id": chat_id}, body=body,
                                   context="submit_tool_outputs_stream")

    # ---- bots ------------------------------------------------------------------------------
    async def list_bots(self, *, workspace_id: str, page_index: int = 1, page_size: int = 20) -> BotPage:
        env = await self._call("GET", "/v1/bots",
                               params={"workspace_id": workspace_id, "page_index": page_index,
                                       "page_size": page_size},
                               idempotent=True, context="list_bots")
        return _validate(BotPage, env.data, context="list_bots", logid=env.logid)

    async def retrieve_bot(self, *, bot_id: str) -> Bot:
        env = await self._call("GET", f"/v1/bots/{bot_id}", idempotent=True, context="retrieve_bot")
        return _validate(Bot, env.data, context="retrieve_bot", logid=env.logid)

    # ---- users -----------------------------------------------------------------------------
    async def get_me(self) -> User:
        """The Coze user the token belongs to (``GET /v1/users/me``): proves a token works without any id."""
        env = await self._call("GET", "/v1/users/me", idempotent=True, context="get_me")
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
        return {
            "base_url": self._base_url,
            "auth": self._auth.diagnostics(),
            "breaker": self._breaker.snapshot(),
            "counters": dict(self.counters),
            "retry": {
                "max_retries": self._retry.max_retries,
                "backoff_base": self._retry.backoff_base,
                "backoff_max": self._retry.backoff_max,
            },
        }


# After done, Coze ends the body at once; anything longer or slower is not worth waiting for.
_DRAIN_MAX_BYTES = 64 * 1024
_DRAIN_TIMEOUT = 0.5


async def _finish_body(chunks: AsyncIterator[bytes]) -> None:
    """Consume what is left of a stream after done; give up (the connection is then dropped)
    after ``_DRAIN_MAX_BYTES`` or ``_DRAIN_TIMEOUT`` seconds, or on a transport error."""
    seen = 0
    with contextlib.suppress(httpx.HTTPError, asyncio.TimeoutError):
        async with asyncio.timeout(_DRAIN_TIMEOUT):
            async for chunk in chunks:
                seen += len(chunk)
                if seen > _DRAIN_MAX_BYTES:
                    return


_STREAM_END = frozenset(
    {
        ChatEventType.DONE,
        ChatEventType.ERROR,
        ChatEventType.CHAT_COMPLETED,
        ChatEventType.CHAT_FAILED,
        ChatEventType.CHAT_REQUIRES_ACTION,
    }
)
