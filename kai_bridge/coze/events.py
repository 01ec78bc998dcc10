"""From raw SSE events to typed chat events, and from a chat stream to a whole answer.

A ``conversation.chat.failed`` or ``error`` event is yielded as an event like any other (a
caller printing a stream wants to show it); :func:`collect_answer`, which wants the whole
answer, turns it into :class:`~kai_bridge.errors.ChatFailedError` carrying code and logid.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from typing import Any

from pydantic import ValidationError

from kai_bridge.coze.envelope import redact
from kai_bridge.coze.models import (
    Chat,
    ChatEvent,
    ChatEventError,
    ChatEventType,
    ChatPoll,
    ChatStatus,
    Message,
    MessageType,
)
from kai_bridge.coze.streaming import ServerSentEvent
from kai_bridge.errors import ChatCanceledError, ChatFailedError, CozeAPIError

__all__ = ["chat_event_from_sse", "collect_answer", "failed_error"]


def chat_event_from_sse(sse: ServerSentEvent, *, logid: str | None = None) -> ChatEvent:
    """Type one SSE event. Malformed payloads of known events raise CozeAPIError (short, redacted)."""
    kind = ChatEventType(sse.event)
    if kind is ChatEventType.DONE:
        return ChatEvent(event=kind, logid=logid)
    try:
        payload: Any = json.loads(sse.data) if sse.data else {}
    except ValueError:
        if kind is ChatEventType.ERROR:
            return ChatEvent(event=kind, error=ChatEventError(code=0, msg=redact(sse.data)[:300]), logid=logid)
        if not kind.is_known:
            return ChatEvent(event=kind, logid=logid)
        raise CozeAPIError(
            f"Coze sent a {sse.event} event whose data is not JSON: {redact(sse.data)[:120]!r}", logid=logid
        ) from None
    try:
        if kind is ChatEventType.ERROR:
            if isinstance(payload, dict) and "code" not in payload and "error_code" in payload:
                payload = {"code": payload.get("error_code"), "msg": payload.get("error_message", "")}
            error = ChatEventError.model_validate(payload if isinstance(payload, dict) else {"msg": str(payload)})
            return ChatEvent(event=kind, error=error, logid=logid)
        if sse.event.startswith("conversation.chat."):
            return ChatEvent(event=kind, chat=Chat.model_validate(payload), logid=logid)
        if sse.event.startswith(("conversation.message.", "conversation.audio.")):
            return ChatEvent(event=kind, message=Message.model_validate(payload), logid=logid)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in err["loc"]) for err in exc.errors()[:3])
        raise CozeAPIError(f"Coze sent a malformed {sse.event} event (fields: {fields})", logid=logid) from None
    return ChatEvent(event=kind, logid=logid)


def failed_error(chat: Chat | None, *, error: ChatEventError | None = None, logid: str | None) -> ChatFailedError:
    if error is not None:
        code, msg = error.code, error.msg
    elif chat is not None and chat.last_error is not None:
        code, msg = chat.last_error.code, chat.last_error.msg
    else:
        code, msg = None, ""
    where = f" (chat {chat.id})" if chat is not None else ""
    text = f"the Coze chat failed{where}: {redact(msg) or 'no reason given'}"
    if code:
        text += f" [code {code}]"
    if logid:
        text += f" [logid {logid}]"
    return ChatFailedError(
        text,
        chat_id=chat.id if chat else None,
        conversation_id=chat.conversation_id if chat else None,
        code=code,
        logid=logid,
    )


async def collect_answer(events: AsyncIterable[ChatEvent]) -> ChatPoll:
    """Drain a chat stream into the final chat and its completed messages.

    Raises ChatFailedError on ``failed`` or ``error``, ChatCanceledError on ``canceled``.
    A ``requires_action`` pause is returned as is (status requires_action), for the caller
    to run the tools and submit their outputs.
    """
    chat: Chat | None = None
    messages: list[Message] = []
    deltas: dict[str, list[str]] = {}
    async for event in events:
        if event.chat is not None:
            chat = event.chat
        if event.event is ChatEventType.ERROR:
            raise failed_error(chat, error=event.error, logid=event.logid)
        if event.event is ChatEventType.CHAT_FAILED:
            raise failed_error(chat, logid=event.logid)
        if event.event is ChatEventType.MESSAGE_DELTA and event.message is not None:
            deltas.setdefault(event.message.id or "", []).append(event.message.content)
        elif event.event is ChatEventType.MESSAGE_COMPLETED and event.message is not None:
            deltas.pop(event.message.id or "", None)
            messages.append(event.message)
    if chat is None:
        raise CozeAPIError("the Coze stream ended without any chat event")
    if chat.status is ChatStatus.CANCELED:
        raise ChatCanceledError(
            f"the Coze chat {chat.id} was canceled", chat_id=chat.id, conversation_id=chat.conversation_id
        )
    for message_id, parts in deltas.items():
        # Deltas never closed by a completed message: keep the text rather than lose it.
        messages.append(
            Message(id=message_id or None, chat_id=chat.id, conversation_id=chat.conversation_id,
                    type=MessageType.ANSWER, content="".join(parts))
        )
    return ChatPoll(chat=chat, messages=messages)
