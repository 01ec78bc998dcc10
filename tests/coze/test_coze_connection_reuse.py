"""Streamed chats hand their connection back to the pool: no new TCP (and TLS) connection per chat."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from kai_bridge.coze import ChatRequest, EnterMessage
from kai_bridge.coze.auth import PATAuth
from kai_bridge.coze.client import CozeClient
from tests.coze.conftest import RigFactory

pytestmark = pytest.mark.e2e


def count_connections(http: httpx.AsyncClient) -> list[str]:
    """Every TCP connection the client opens from now on, seen through httpcore's trace events."""
    opened: list[str] = []

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            opened.append(event)

    async def add_trace(request: httpx.Request) -> None:
        request.extensions["trace"] = trace

    http.event_hooks["request"].append(add_trace)
    return opened


async def test_two_sequential_streamed_chats_reuse_one_connection(make_rig: RigFactory) -> None:
    rig = await make_rig(transport="socket")
    opened = count_connections(rig.http)
    for question in ("What is espresso?", "And a flat white?"):
        poll = await rig.client.stream_and_collect(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=[EnterMessage.user(question)]))
        assert poll.answer
    assert len(opened) == 1  # the token exchange opened it; both chats rode on it


async def test_a_stream_broken_off_by_its_reader_does_not_keep_a_connection(make_rig: RigFactory) -> None:
    rig = await make_rig(transport="socket")
    opened = count_connections(rig.http)
    stream = rig.client.stream_chat(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=[EnterMessage.user("espresso?")]))
    async for _ in stream:
        break  # the rest of the answer is never read: that connection cannot be reused
    await stream.aclose()
    await rig.client.stream_and_collect(ChatRequest(bot_id=rig.bot_id, user_id="u", messages=[EnterMessage.user("latte?")]))
    assert len(opened) == 2


async def _endless_after_done(request: httpx.Request) -> AsyncIterator[bytes]:
    yield b'event:conversation.chat.completed\ndata:{"id":"c1","conversation_id":"v1","status":"completed"}\n\n'
    yield b'event:done\ndata:"[DONE]"\n\n'
    while True:  # a server that never ends the body after done
        yield b": keep-alive\n\n"


async def test_a_body_that_goes_on_after_done_is_cut_not_read_forever() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              stream=_AsyncBody(_endless_after_done(request)))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = CozeClient(http=http, base_url="http://coze.test", auth=PATAuth(token="pat_test_token_0123456789"))
        with anyio.fail_after(10):
            events = [event.event async for event in
                      client.stream_chat(ChatRequest(bot_id="b", user_id="u", messages=[EnterMessage.user("hi")]))]
    assert [str(e) for e in events][-1] == "done"


class _AsyncBody(httpx.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk
