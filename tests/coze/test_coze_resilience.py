"""Under injected faults: safe calls are retried with backoff, unsafe ones never repeated,
the breaker opens and recovers, and broken or failed chats surface as clear errors."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket

import httpx
import pytest

from kai_bridge.coze.auth import PATAuth
from kai_bridge.coze.breaker import BreakerState
from kai_bridge.coze.client import CozeClient
from kai_bridge.coze.models import ChatEvent, ChatEventType, ChatRequest, ChatStatus, EnterMessage
from kai_bridge.coze.retry import RetryPolicy
from kai_bridge.errors import (
    ChatFailedError,
    ChatTimeoutError,
    CircuitOpenError,
    CozeRateLimitError,
    CozeServerError,
    CozeTransportError,
)

from .conftest import Rig, RigFactory

QUESTION = [EnterMessage.user("What is espresso?")]


async def test_reads_are_retried_on_server_errors_then_succeed(rig: Rig) -> None:
    await rig.add_fault(route="bots.retrieve", error_rate=1.0, times=2)
    bot = await rig.client.retrieve_bot(bot_id=rig.bot_id)
    assert bot.id == rig.bot_id
    assert rig.state.requests["bots.retrieve"] == 3
    assert rig.client.counters["retries"] == 2
    assert rig.sleeps == [0.1, 0.2]  # full jitter with rand()=0.5: half of 0.2, 0.4


async def test_retries_stop_after_the_budget_with_the_last_error(rig: Rig) -> None:
    await rig.add_fault(route="bots.retrieve", error_rate=1.0)
    with pytest.raises(CozeServerError) as info:
        await rig.client.retrieve_bot(bot_id=rig.bot_id)
    assert info.value.code == 5000
    assert info.value.logid
    assert rig.state.requests["bots.retrieve"] == 4  # 1 + max_retries 3


async def test_rate_limit_retry_after_is_honoured(rig: Rig) -> None:
    await rig.add_fault(route="chat.retrieve", rate_limit_rate=1.0, retry_after=3, times=1)
    poll = await rig.client.create_and_poll(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=QUESTION))
    assert poll.chat.status is ChatStatus.COMPLETED
    assert 3.0 in rig.sleeps


async def test_rate_limit_on_chat_create_is_retried_because_nothing_started(rig: Rig) -> None:
    await rig.add_fault(route="chat.create", rate_limit_rate=1.0, retry_after=1, times=1)
    chat = await rig.client.create_chat(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=QUESTION))
    assert chat.id
    assert rig.state.requests["chat.create"] == 2


async def test_rate_limit_error_carries_retry_after_when_retries_run_out(make_rig: RigFactory) -> None:
    rig = await make_rig(retry=RetryPolicy.none())
    await rig.add_fault(route="bots.list", rate_limit_rate=1.0, retry_after=7)
    with pytest.raises(CozeRateLimitError) as info:
        await rig.client.list_bots(workspace_id=rig.workspace_id)
    assert (info.value.code, info.value.retry_after, info.value.http_status) == (4013, 7.0, 429)


async def test_chat_create_is_never_repeated_after_a_server_error(rig: Rig) -> None:
    await rig.add_fault(route="chat.create", error_rate=1.0, times=1)
    with pytest.raises(CozeServerError):
        await rig.client.create_chat(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=QUESTION))
    assert rig.state.requests["chat.create"] == 1
    assert rig.sleeps == []


@pytest.mark.parametrize("route", ["chat.create", "chat.submit_tool_outputs"])
async def test_a_dropped_connection_on_an_unsafe_call_is_not_repeated(rig: Rig, route: str) -> None:
    await rig.add_fault(route=route, drop_rate=1.0, times=1)
    if route == "chat.create":
        with pytest.raises(CozeTransportError):
            await rig.client.create_chat(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=QUESTION))
    else:
        with pytest.raises(CozeTransportError):
            await rig.client.submit_tool_outputs(conversation_id="1", chat_id="2", tool_outputs=[])
    assert rig.state.requests[route] == 1


async def test_a_dropped_connection_on_a_read_is_retried(rig: Rig) -> None:
    await rig.add_fault(route="conversations.list", drop_rate=1.0, times=1)
    page = await rig.client.list_conversations(bot_id=rig.bot_id)
    assert page.items == [] or page.items
    assert rig.state.requests["conversations.list"] == 2


async def test_connect_errors_are_retried_even_for_chat_create() -> None:
    # A port nobody listens on: the connection is refused before any byte is sent.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps: list[float] = []

    async def no_wait(seconds: float) -> None:
        sleeps.append(seconds)

    async with httpx.AsyncClient() as http:
        client = CozeClient(http=http, base_url=f"http://127.0.0.1:{port}", auth=PATAuth(token="pat_x_123456789"),
                            retry=RetryPolicy(max_retries=2), sleep=no_wait)
        with pytest.raises(CozeTransportError) as info:
            await client.create_chat(ChatRequest(bot_id="1", user_id="u", messages=QUESTION))
    assert len(sleeps) == 2
    assert "ConnectError" in str(info.value)


async def test_breaker_opens_fails_fast_then_a_probe_closes_it(make_rig: RigFactory) -> None:
    rig = await make_rig(retry=RetryPolicy.none(), breaker_failures=3, breaker_reset=10.0)
    await rig.auth.get_token()
    await rig.add_fault(route="bots.retrieve", error_rate=1.0)
    for _ in range(3):
        with pytest.raises(CozeServerError):
            await rig.client.retrieve_bot(bot_id=rig.bot_id)
    assert rig.client.breaker.snapshot()["state"] == "open"
    with pytest.raises(CircuitOpenError) as info:
        await rig.client.retrieve_bot(bot_id=rig.bot_id)
    assert info.value.retry_after == pytest.approx(10.0)
    assert rig.state.requests["bots.retrieve"] == 3  # the open breaker sent nothing
    assert rig.client.diagnostics()["breaker"]["state"] == "open"

    await rig.clear_faults()
    rig.mono.advance(10.0)
    assert rig.client.breaker.state is BreakerState.HALF_OPEN
    assert (await rig.client.retrieve_bot(bot_id=rig.bot_id)).id == rig.bot_id
    assert rig.client.breaker.snapshot()["state"] == "closed"


async def test_in_half_open_only_one_probe_reaches_coze(make_rig: RigFactory) -> None:
    # Over a socket, so that the probe is still in flight while the others ask.
    rig = await make_rig(transport="socket", retry=RetryPolicy.none(), breaker_failures=1, breaker_reset=5.0)
    await rig.auth.get_token()
    await rig.add_fault(route="bots.retrieve", error_rate=1.0, times=1)
    with pytest.raises(CozeServerError):
        await rig.client.retrieve_bot(bot_id=rig.bot_id)
    rig.mono.advance(5.0)
    before = rig.state.requests["bots.retrieve"]
    results = await asyncio.gather(*(rig.client.retrieve_bot(bot_id=rig.bot_id) for _ in range(10)),
                                   return_exceptions=True)
    assert sum(1 for r in results if isinstance(r, CircuitOpenError)) == 9
    assert rig.state.requests["bots.retrieve"] == before + 1


async def test_attempts_that_are_retried_do_not_count_against_the_breaker(make_rig: RigFactory) -> None:
    # Two failed attempts in a row would open a breaker of 2 if attempts counted; the call succeeds on
    # its third try, so Coze is up and the breaker stays closed.
    rig = await make_rig(breaker_failures=2)
    await rig.auth.get_token()
    for _ in range(3):
        await rig.add_fault(route="bots.retrieve", error_rate=1.0, times=2)
        assert (await rig.client.retrieve_bot(bot_id=rig.bot_id)).id == rig.bot_id
    assert rig.client.counters["retries"] == 6
    assert rig.client.breaker.state is BreakerState.CLOSED


async def test_a_call_whose_retries_all_fail_counts_once(make_rig: RigFactory) -> None:
    rig = await make_rig(breaker_failures=2, breaker_reset=10.0)
    await rig.auth.get_token()
    await rig.add_fault(route="bots.retrieve", error_rate=1.0)
    with pytest.raises(CozeServerError):
        await rig.client.retrieve_bot(bot_id=rig.bot_id)  # 4 attempts, one failed call
    assert rig.state.requests["bots.retrieve"] == 4
    assert rig.client.breaker.state is BreakerState.CLOSED
    with pytest.raises(CozeServerError):
        await rig.client.retrieve_bot(bot_id=rig.bot_id)  # the second failed call opens it
    assert rig.client.breaker.snapshot()["state"] == "open"
    with pytest.raises(CircuitOpenError):
        await rig.client.retrieve_bot(bot_id=rig.bot_id)
    assert rig.state.requests["bots.retrieve"] == 8


async def test_client_errors_do_not_open_the_breaker(make_rig: RigFactory) -> None:
    rig = await make_rig(breaker_failures=2)
    for _ in range(5):
        with contextlib.suppress(Exception):
            await rig.client.retrieve_conversation(conversation_id="404404404")
    assert rig.client.breaker.state is BreakerState.CLOSED


async def test_a_cut_stream_raises_after_the_events_that_arrived(rig: Rig) -> None:
    await rig.add_fault(route="chat.create", cut_stream_after_events=3, times=1)
    seen: list[ChatEvent] = []

    async def consume() -> None:
        async for event in rig.client.stream_chat(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=QUESTION)):
            seen.append(event)

    with pytest.raises(CozeTransportError, match=r"cut|ended"):
        await consume()
    if rig.transport == "socket":
        # (httpx's ASGI transport delivers a body only once the app is done, so in-process
        # the cut comes before any event.)
        assert [e.event for e in seen][:2] == [ChatEventType.CHAT_CREATED, ChatEventType.CHAT_IN_PROGRESS]
        assert len(seen) == 3
        assert rig.client.counters["streams_cut"] == 1
    assert rig.state.requests["chat.create"] == 1


async def test_a_failed_chat_is_an_event_in_the_stream_and_an_error_when_collecting(rig: Rig) -> None:
    await rig.add_fault(route="chat.create", fail_chat_rate=1.0, times=1)
    events = [e async for e in rig.client.stream_chat(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=QUESTION))]
    failed = [e for e in events if e.event is ChatEventType.CHAT_FAILED]
    assert len(failed) == 1
    assert failed[0].chat is not None
    assert failed[0].chat.last_error is not None
    assert failed[0].chat.last_error.code == 5000

    await rig.add_fault(route="chat.create", fail_chat_rate=1.0, times=1)
    with pytest.raises(ChatFailedError) as info:
        await rig.client.stream_and_collect(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=QUESTION))
    assert info.value.code == 5000
    assert info.value.logid
    assert info.value.chat_id
    assert "logid" in str(info.value)


async def test_a_failed_chat_raises_from_create_and_poll(rig: Rig) -> None:
    await rig.add_fault(route="chat.create", fail_chat_rate=1.0, times=1)
    with pytest.raises(ChatFailedError) as info:
        await rig.client.create_and_poll(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=QUESTION))
    assert info.value.code == 5000
    assert info.value.logid


async def test_a_slow_chat_times_out_and_is_canceled_upstream(make_rig: RigFactory) -> None:
    rig = await make_rig(stream_chunk_delay=30.0)  # the sandbox's answer would take minutes
    with pytest.raises(ChatTimeoutError) as info:
        await rig.client.create_and_poll(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=QUESTION), timeout=5.0)
    assert info.value.chat_id
    assert info.value.conversation_id
    chat = await rig.client.retrieve_chat(conversation_id=info.value.conversation_id, chat_id=info.value.chat_id)
    assert chat.status is ChatStatus.CANCELED
    assert sum(rig.sleeps) == pytest.approx(5.0)


async def test_cancelling_the_caller_cancels_the_coze_chat(make_rig: RigFactory) -> None:
    rig = await make_rig(stream_chunk_delay=30.0)
    conv = await rig.client.create_conversation(bot_id=rig.bot_id)
    polling = asyncio.Event()

    async def sleep_until_cancelled(_seconds: float) -> None:
        polling.set()
        await asyncio.Event().wait()

    rig.client._sleep = sleep_until_cancelled
    task = asyncio.create_task(rig.client.create_and_poll(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=QUESTION, conversation_id=conv.id)))
    await polling.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The conversation is free again: the running chat was canceled, so no 4016 here.
    chat = await rig.client.create_chat(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=QUESTION, conversation_id=conv.id))
    await rig.client.cancel_chat(conversation_id=conv.id, chat_id=chat.id)


async def test_a_lost_chat_create_is_checked_once_and_not_with_the_retry_budget(rig: Rig) -> None:
    # The create's connection is lost after sending: it is never sent again, so the check only
    # looks for a chat to follow. When that check fails too it gets one try, not 1 + max_retries.
    conv = await rig.client.create_conversation(bot_id=rig.bot_id)
    await rig.add_fault(route="chat.create", drop_rate=1.0, times=1)
    await rig.add_fault(route="messages.list", error_rate=1.0, times=3)
    with pytest.raises(CozeTransportError):
        await rig.client.stream_and_collect(
            ChatRequest(bot_id=rig.bot_id, user_id="u", messages=QUESTION, conversation_id=conv.id)
        )
    assert rig.state.requests["chat.create"] == 1  # never sent again
    assert rig.state.requests["messages.list"] == 1  # the check: one try
    assert rig.client.counters["chat_creates_checked"] == 1


async def test_a_chat_create_refused_with_a_5xx_is_checked_with_retries_then_sent_again(rig: Rig) -> None:
    conv = await rig.client.create_conversation(bot_id=rig.bot_id)
    await rig.add_fault(route="chat.create", error_rate=1.0, times=1)
    await rig.add_fault(route="messages.list", error_rate=1.0, times=2)
    poll = await rig.client.stream_and_collect(
        ChatRequest(bot_id=rig.bot_id, user_id="u", messages=QUESTION, conversation_id=conv.id)
    )
    assert poll.chat.status is ChatStatus.COMPLETED
    assert rig.state.requests["messages.list"] == 3  # the check was retried until Coze answered it
    assert rig.state.requests["chat.create"] == 2  # not started, so sent once more
    assert rig.state.chats_created == 1


async def test_a_send_repeated_with_its_key_follows_the_chat_it_started(rig: Rig) -> None:
    # A process died after its create reached Coze; the next attempt, with the same send_key,
    # must not start a second chat: it finds the first by its tag and follows it.
    conv = await rig.client.create_conversation(bot_id=rig.bot_id)
    keyed = ChatRequest(bot_id=rig.bot_id, user_id="u", messages=QUESTION, conversation_id=conv.id,
                        send_key="event:evt-1:route:announce")
    first = await rig.client.stream_and_collect(keyed)
    again = await rig.client.stream_and_collect(keyed)
    assert again.chat.id == first.chat.id
    assert [m.content for m in again.messages if m.type == "answer"] == [
        m.content for m in first.messages if m.type == "answer"]
    assert rig.state.chats_created == 1
    assert rig.client.counters["sends_followed"] == 1
    other = await rig.client.stream_and_collect(dataclasses.replace(keyed, send_key="event:evt-2:route:announce"))
    assert other.chat.id != first.chat.id
    assert rig.state.chats_created == 2
