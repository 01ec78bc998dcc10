"""SSE events become typed chat events; collecting a stream raises on failure with code and logid."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

import kai_bridge.coze as coze
from kai_bridge.coze.events import chat_event_from_sse, collect_answer
from kai_bridge.coze.models import ChatEvent, ChatEventType, ChatStatus
from kai_bridge.coze.streaming import ServerSentEvent
from kai_bridge.errors import ChatCanceledError, ChatFailedError, CozeAPIError

CHAT = {"id": "11", "conversation_id": "22", "status": "in_progress"}


def sse(event: str, data: object) -> ServerSentEvent:
    return ServerSentEvent(event, data if isinstance(data, str) else json.dumps(data, ensure_ascii=False))


async def feed(*events: ServerSentEvent) -> AsyncIterator[ChatEvent]:
    for event in events:
        yield chat_event_from_sse(event, logid="LOG1")


@pytest.mark.parametrize("payload", ['"[DONE]"', "[DONE]", ""])
def test_done_is_recognised_whatever_its_payload(payload: str) -> None:
    assert chat_event_from_sse(ServerSentEvent("done", payload)).event is ChatEventType.DONE


def test_unknown_events_are_kept_not_fatal() -> None:
    event = chat_event_from_sse(ServerSentEvent("conversation.hologram.delta", "not json"))
    assert event.event == "conversation.hologram.delta"
    assert not event.event.is_known


def test_a_malformed_known_event_is_a_short_api_error() -> None:
    with pytest.raises(CozeAPIError, match=r"malformed conversation\.chat\.completed"):
        chat_event_from_sse(sse("conversation.chat.completed", {"status": "completed"}))


def test_error_event_carries_code_and_msg_in_either_spelling() -> None:
    a = chat_event_from_sse(sse("error", {"code": 4000, "msg": "bad"}))
    b = chat_event_from_sse(sse("error", {"error_code": 5000, "error_message": "down"}))
    c = chat_event_from_sse(ServerSentEvent("error", "plain text"))
    assert [(e.error.code, e.error.msg) for e in (a, b, c) if e.error] == [(4000, "bad"), (5000, "down"),
                                                                          (0, "plain text")]


async def test_collect_answer_joins_completed_messages() -> None:
    msg = {"id": "m", "role": "assistant", "type": "answer", "content": "浓缩", "content_type": "text"}
    poll = await collect_answer(feed(
        sse("conversation.chat.created", {**CHAT, "status": "created"}),
        sse("conversation.message.delta", {**msg, "content": "浓"}),
        sse("conversation.message.delta", {**msg, "content": "缩"}),
        sse("conversation.message.completed", msg),
        sse("conversation.chat.completed", {**CHAT, "status": "completed"}),
        ServerSentEvent("done", '"[DONE]"'),
    ))
    assert poll.chat.status is ChatStatus.COMPLETED
    assert poll.answer == "浓缩"


async def test_deltas_without_a_completed_message_are_not_lost() -> None:
    msg = {"id": "m", "role": "assistant", "type": "answer", "content_type": "text"}
    poll = await collect_answer(feed(
        sse("conversation.message.delta", {**msg, "content": "a"}),
        sse("conversation.message.delta", {**msg, "content": "b"}),
        sse("conversation.chat.completed", {**CHAT, "status": "completed"}),
    ))
    assert poll.answer == "ab"


async def test_an_error_event_raises_chat_failed_with_code_and_logid() -> None:
    with pytest.raises(ChatFailedError) as info:
        await collect_answer(feed(sse("conversation.chat.created", CHAT), sse("error", {"code": 4010, "msg": "x"})))
    assert (info.value.code, info.value.logid, info.value.chat_id) == (4010, "LOG1", "11")


async def test_a_failed_chat_event_raises_with_last_error() -> None:
    failed = {**CHAT, "status": "failed", "last_error": {"code": 5000, "msg": "event interval error"}}
    with pytest.raises(ChatFailedError, match="event interval error") as info:
        await collect_answer(feed(sse("conversation.chat.failed", failed)))
    assert info.value.code == 5000


async def test_a_canceled_chat_raises_chat_canceled() -> None:
    with pytest.raises(ChatCanceledError):
        await collect_answer(feed(sse("conversation.chat.completed", {**CHAT, "status": "canceled"})))


def test_public_names_are_pinned() -> None:
    assert sorted(coze.__all__) == coze.__all__
    assert set(coze.__all__) == {
        "Bot", "BotPage", "BreakerState", "Chat", "ChatEvent", "ChatEventError", "ChatEventType", "ChatPoll", "ChatRequest",
        "ChatStatus", "CircuitBreaker", "Conversation", "ConversationPage", "CozeClient", "EnterMessage",
        "JWTAuth", "LastError", "Message", "MessageContentType", "MessagePage", "MessageRole", "MessageType",
        "PATAuth", "RequiredAction", "RetryPolicy", "Section", "TokenProvider", "ToolCall", "ToolOutput", "Usage",
        "User",
        "build_http_client", "collect_answer",
    }
