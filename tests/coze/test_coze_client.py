"""The client against the real sandbox, in-process and over a socket: every endpoint, typed."""

from __future__ import annotations

import contextlib
import json

import pytest

from kai_bridge.coze.models import (
    ChatEventType,
    ChatRequest,
    ChatStatus,
    EnterMessage,
    MessageRole,
    MessageType,
    ToolOutput,
)
from kai_bridge.errors import CozeBadRequestError, CozeConflictError, CozeNotFoundError

from .conftest import Rig, RigFactory


async def test_conversation_and_message_endpoints_round_trip(rig: Rig) -> None:
    client = rig.client
    conv = await client.create_conversation(
        bot_id=rig.bot_id, messages=[EnterMessage.user("你好")], meta_data={"k": "v"}, name="salon"
    )
    assert conv.id.isdigit()
    again = await client.retrieve_conversation(conversation_id=conv.id)
    assert again.id == conv.id
    page = await client.list_conversations(bot_id=rig.bot_id)
    assert conv.id in [c.id for c in page.items]
    created = await client.create_message(conversation_id=conv.id, role=MessageRole.USER, content="耶加雪菲")
    assert (created.role, created.content) == (MessageRole.USER, "耶加雪菲")
    messages = await client.list_messages(conversation_id=conv.id, order="asc")
    assert [m.content for m in messages.items] == ["你好", "耶加雪菲"]
    section = await client.clear_conversation(conversation_id=conv.id)
    assert section.id
    assert section.id != conv.last_section_id


async def test_iter_messages_walks_every_page(rig: Rig) -> None:
    conv = await rig.client.create_conversation(bot_id=rig.bot_id)
    for i in range(7):
        await rig.client.create_message(conversation_id=conv.id, role="user", content=f"m{i}")
    seen = [m.content async for m in rig.client.iter_messages(conversation_id=conv.id, page_size=3)]
    assert sorted(seen) == [f"m{i}" for i in range(7)]
    assert len(seen) == 7


async def test_create_and_poll_returns_the_completed_chat_and_its_answer(rig: Rig) -> None:
    result = await rig.client.create_and_poll(ChatRequest(bot_id=rig.bot_id, user_id="u1", messages=[EnterMessage.user("What is espresso?")]))
    assert result.chat.status is ChatStatus.COMPLETED
    assert result.chat.usage is not None
    assert result.chat.usage.output_count > 0
    assert "espresso" in result.answer.lower()
    listed = await rig.client.list_chat_messages(conversation_id=result.chat.conversation_id,
                                                 chat_id=result.chat.id)
    assert [m.id for m in listed] == [m.id for m in result.messages]
    retrieved = await rig.client.retrieve_chat(conversation_id=result.chat.conversation_id, chat_id=result.chat.id)
    assert retrieved.status is ChatStatus.COMPLETED


async def test_stream_chat_yields_typed_events_in_coze_order(rig: Rig) -> None:
    events = [e async for e in rig.client.stream_chat(ChatRequest(bot_id=rig.bot_id, user_id="u1", messages=[EnterMessage.user("手冲咖啡的水温是多少？")]))]
    kinds = [e.event for e in events]
    assert kinds[:2] == [ChatEventType.CHAT_CREATED, ChatEventType.CHAT_IN_PROGRESS]
    assert kinds[-2:] == [ChatEventType.CHAT_COMPLETED, ChatEventType.DONE]
    deltas = "".join(e.message.content for e in events
                     if e.event is ChatEventType.MESSAGE_DELTA and e.message is not None)
    completed = [e.message for e in events if e.event is ChatEventType.MESSAGE_COMPLETED and e.message is not None]
    answer = next(m for m in completed if m.type is MessageType.ANSWER)
    assert deltas == answer.content
    assert any("\u4e00" <= ch <= "\u9fff" for ch in deltas)
    assert all(e.logid for e in events)


async def test_stream_and_collect_gathers_the_whole_answer(rig: Rig) -> None:
    result = await rig.client.stream_and_collect(ChatRequest(bot_id=rig.bot_id, user_id="u1", messages=[EnterMessage.user("How do I store beans?")]))
    assert result.chat.status is ChatStatus.COMPLETED
    assert result.answer


@pytest.mark.parametrize("stream", [pytest.param(True, id="stream"), pytest.param(False, id="non-stream")])
async def test_requires_action_then_submit_tool_outputs_completes_the_chat(rig: Rig, stream: bool) -> None:
    paused = await rig.client.stream_and_collect(ChatRequest(bot_id=rig.plugin_bot_id, user_id="u1", messages=[EnterMessage.user("耶加雪菲有什么风味？")]))
    chat = paused.chat
    assert chat.status is ChatStatus.REQUIRES_ACTION
    assert chat.required_action is not None
    call = chat.required_action.tool_calls[0]
    assert call.function.parsed_arguments() == {"query": "耶加雪菲有什么风味？"}
    outputs = [ToolOutput(tool_call_id=call.id, output=json.dumps({"answer": "柑橘、茉莉花香"}, ensure_ascii=False))]
    if stream:
        events = [e async for e in rig.client.submit_tool_outputs_stream(
            conversation_id=chat.conversation_id, chat_id=chat.id, tool_outputs=outputs)]
        final = next(e.chat for e in events if e.event is ChatEventType.CHAT_COMPLETED)
        assert final is not None
        assert final.id == chat.id
    else:
        resumed = await rig.client.submit_tool_outputs(conversation_id=chat.conversation_id, chat_id=chat.id,
                                                       tool_outputs=outputs)
        assert resumed.id == chat.id
        polled = await rig.client.poll_chat(conversation_id=chat.conversation_id, chat_id=chat.id)
        assert polled.chat.status is ChatStatus.COMPLETED
    messages = await rig.client.list_chat_messages(conversation_id=chat.conversation_id, chat_id=chat.id)
    assert "柑橘、茉莉花香" in "".join(m.content for m in messages if m.type is MessageType.ANSWER)


async def test_bots_can_be_listed_and_retrieved(rig: Rig) -> None:
    page = await rig.client.list_bots(workspace_id=rig.workspace_id)
    assert {rig.bot_id, rig.plugin_bot_id} <= {b.id for b in page.items}
    bot = await rig.client.retrieve_bot(bot_id=rig.bot_id)
    assert bot.id == rig.bot_id
    assert bot.name


async def test_unknown_conversation_is_not_found_with_a_logid(rig: Rig) -> None:
    with pytest.raises(CozeNotFoundError) as info:
        await rig.client.retrieve_conversation(conversation_id="1234567890123456789")
    assert info.value.code == 4200
    assert info.value.logid
    assert info.value.http_status == 404


async def test_a_second_chat_in_a_running_conversation_is_a_conflict(make_rig: RigFactory) -> None:
    rig = await make_rig(stream_chunk_delay=0.05)
    conv = await rig.client.create_conversation(bot_id=rig.bot_id)
    first = await rig.client.create_chat(ChatRequest(bot_id=rig.bot_id, user_id="u", conversation_id=conv.id, messages=[EnterMessage.user("What is espresso?")]))
    with pytest.raises(CozeConflictError) as info:
        await rig.client.create_chat(ChatRequest(bot_id=rig.bot_id, user_id="u", conversation_id=conv.id, messages=[EnterMessage.user("And latte?")]))
    assert info.value.code == 4016
    await rig.client.cancel_chat(conversation_id=conv.id, chat_id=first.id)


async def test_a_bad_request_is_reported_not_retried(rig: Rig) -> None:
    with pytest.raises(CozeBadRequestError) as info:
        await rig.client.create_chat(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=[]))
    assert info.value.code == 4000
    assert rig.state.requests["chat.create"] == 1
    assert rig.sleeps == []


async def test_ping_and_diagnostics_report_health_without_secrets(rig: Rig) -> None:
    await rig.client.ping()
    diag = rig.client.diagnostics()
    token = await rig.auth.get_token()
    assert diag["auth"]["mode"] == "jwt"
    assert diag["auth"]["token_seconds_left"] > 0
    assert diag["breaker"]["state"] == "closed"
    assert diag["counters"]["requests"] >= 1
    assert token not in json.dumps(diag)


async def test_breaking_out_of_a_stream_closes_it(rig: Rig) -> None:
    stream = rig.client.stream_chat(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=[EnterMessage.user("espresso?")]))
    async with contextlib.aclosing(stream):
        async for event in stream:
            assert event.event is ChatEventType.CHAT_CREATED
            break
    # The connection went back to the pool; the client still works.
    assert (await rig.client.retrieve_bot(bot_id=rig.bot_id)).id == rig.bot_id
