"""kai-bridge's own tools through the MCP server, in-process, with the SDK's client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import jsonschema  # type: ignore[import-untyped]
import mcp.types as types
import pytest
from mcp.client import Client

from kai_bridge.coze import CozeClient
from kai_bridge.mcp import build_mcp_server
from kai_bridge.runtime import Runtime
from kai_bridge.sandbox import PLUGIN_BOT_ID, FaultRule, SandboxHandle
from kai_bridge.store import ChatRecord, Store
from tests.bridge import open_bridge, running_sandbox

MODES = [pytest.param("legacy", id="2025-11-25"), pytest.param("auto", id="2026-07-28")]
EXPECTED_TOOLS = [
    "cancel_chat",
    "coffee_knowledge_query",
    "create_conversation",
    "get_chat_result",
    "get_conversation_messages",
    "send_message",
]


def _text(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


@pytest.mark.parametrize("mode", MODES)
async def test_every_tool_is_listed_with_a_schema_and_annotations(bridge: Runtime, mode: str) -> None:
    async with Client(build_mcp_server(bridge.registry), mode=mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert sorted(tools) == EXPECTED_TOOLS
    for tool in tools.values():
        assert tool.description
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None
        assert tool.annotations is not None
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        jsonschema.Draft202012Validator.check_schema(tool.output_schema)
    coffee = tools["coffee_knowledge_query"].annotations
    assert coffee is not None
    assert (coffee.read_only_hint, coffee.idempotent_hint, coffee.open_world_hint) == (True, True, False)
    send = tools["send_message"].annotations
    assert send is not None
    assert (send.read_only_hint, send.destructive_hint, send.open_world_hint) == (False, False, True)
    assert tools["send_message"].input_schema["properties"]["message"]["maxLength"] == 10000


@pytest.mark.parametrize("mode", MODES)
async def test_coffee_knowledge_query_returns_a_structured_answer_matching_its_schema(
    bridge: Runtime, mode: str
) -> None:
    async with Client(build_mcp_server(bridge.registry), mode=mode) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        result = await client.call_tool("coffee_knowledge_query", {"query": "埃塞俄比亚咖啡有什么特点", "top_k": 2})
    assert not result.is_error
    data = result.structured_content
    assert data is not None
    jsonschema.validate(data, listed["coffee_knowledge_query"].output_schema)
    assert data["language"] == "zh"
    assert data["found"] is True
    assert any("ethiopia" in passage["article_id"] for passage in data["passages"])
    assert json.loads(_text(result)) == data


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        pytest.param({"query": "   "}, "'query'", id="blank"),
        pytest.param({"query": "x" * 501}, "at most 500 characters", id="too-long"),
        pytest.param({"query": "espresso", "top_k": 11}, "'top_k'", id="top-k"),
        pytest.param({"query": "espresso", "language": "fr"}, "'language'", id="language"),
        pytest.param({"query": "espresso", "colour": "red"}, "'colour'", id="unknown-field"),
    ],
)
async def test_bad_arguments_come_back_as_an_error_result_naming_the_problem(
    bridge: Runtime, arguments: dict[str, Any], fragment: str
) -> None:
    async with Client(build_mcp_server(bridge.registry), mode="legacy") as client:
        result = await client.call_tool("coffee_knowledge_query", arguments)
    assert result.is_error
    assert fragment in _text(result)
    assert "Traceback" not in _text(result)


@pytest.mark.parametrize("mode", MODES)
async def test_send_message_streams_progress_deltas_that_add_up_to_the_answer(bridge: Runtime, mode: str) -> None:
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with Client(build_mcp_server(bridge.registry), mode=mode) as client:
        result = await client.call_tool("send_message", {"message": "What is a pour-over?"},
                                        progress_callback=on_progress)
    assert not result.is_error
    answer = result.structured_content["answer"] if result.structured_content else None
    assert answer
    assert updates  # a burst (this sandbox streams without delay) may go out as one notification
    assert "".join(message or "" for _, _, message in updates) == answer
    assert [p for p, _, _ in updates] == sorted(p for p, _, _ in updates)
    assert updates[-1][0] == len(answer)


@pytest.mark.parametrize("mode", MODES)
async def test_a_stream_that_arrives_over_time_is_forwarded_as_it_arrives(tmp_path: Path, mode: str) -> None:
    updates: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, message))

    async with running_sandbox(stream_chunk_delay=0.01) as (handle, _coze), open_bridge(
        sandbox=handle, db_path=tmp_path / "kb.db"
    ) as bridge, Client(build_mcp_server(bridge.registry), mode=mode) as client:
        with anyio.fail_after(20):
            result = await client.call_tool("send_message", {"message": "What is a pour-over?"},
                                            progress_callback=on_progress)
    answer = result.structured_content["answer"] if result.structured_content else None
    assert answer
    assert len(updates) > 5  # chunks 10 ms apart are not held back for the end
    assert "".join(message or "" for _, message in updates) == answer
    assert [p for p, _ in updates] == sorted(p for p, _ in updates)


async def test_send_message_deltas_arrive_as_log_lines_when_the_client_asked_for_logs(bridge: Runtime) -> None:
    lines: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        lines.append(str(params.data))

    async with Client(build_mcp_server(bridge.registry), logging_callback=on_log, log_level="info") as client:
        result = await client.call_tool("send_message", {"message": "What is a moka pot?"})
    assert result.structured_content is not None
    assert "".join(lines) == result.structured_content["answer"]


async def test_the_plugin_bot_pauses_and_the_bridge_answers_it_from_the_registry(bridge: Runtime) -> None:
    async with Client(build_mcp_server(bridge.registry), mode="legacy") as client:
        with anyio.fail_after(20):
            result = await client.call_tool("send_message", {"message": "What is a natural process?",
                                                             "bot_id": PLUGIN_BOT_ID})
        direct = await client.call_tool("coffee_knowledge_query", {"query": "What is a natural process?"})
    assert result.structured_content is not None
    assert direct.structured_content is not None
    assert result.structured_content["rounds"] == 1
    assert result.structured_content["answer"] == direct.structured_content["answer"]


async def test_an_unknown_plugin_tool_gets_an_error_output_over_mcp(upstream: Any, tmp_path: Path) -> None:
    handle, _coze = upstream
    async with (
        open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", plugin_tools=False) as bridge,
        Client(build_mcp_server(bridge.registry)) as client,
    ):
        with anyio.fail_after(20):
            result = await client.call_tool("send_message", {"message": "hi", "bot_id": PLUGIN_BOT_ID})
    assert result.structured_content is not None
    assert "unknown tool coffee_knowledge_query" in result.structured_content["answer"]


async def test_get_chat_result_returns_what_send_message_answered(bridge: Runtime) -> None:
    async with Client(build_mcp_server(bridge.registry), mode="legacy") as client:
        sent = await client.call_tool("send_message", {"message": "What is crema?"})
        assert sent.structured_content is not None
        fetched = await client.call_tool("get_chat_result", {"chat_id": sent.structured_content["chat_id"]})
        missing = await client.call_tool("get_chat_result", {"chat_id": "404"})
    assert fetched.structured_content is not None
    assert fetched.structured_content["status"] == "completed"
    assert fetched.structured_content["answer"] == sent.structured_content["answer"]
    assert missing.is_error
    assert "no chat with id '404'" in _text(missing)


async def test_a_coze_error_comes_back_as_a_tool_error_with_the_logid(
    bridge: Runtime, upstream: tuple[SandboxHandle, CozeClient]
) -> None:
    handle, _coze = upstream
    async with Client(build_mcp_server(bridge.registry), mode="legacy") as client:
        sent = await client.call_tool("send_message", {"message": "What is a lungo?"})
        assert not sent.is_error
        # Coze fails reading the caller's own conversation (every retry too).
        handle.faults.add(FaultRule(route="messages.list", error_rate=1.0))
        result = await client.call_tool("get_conversation_messages", {})
    assert result.is_error
    text = _text(result)
    assert "logid" in text
    assert "Traceback" not in text


class _Notifying:
    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.canceled = anyio.Event()
        self.last: ChatRecord | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def save_chat(self, record: ChatRecord) -> None:
        await self._inner.save_chat(record)
        self.last = record
        if record.status == "canceled":
            self.canceled.set()


@pytest.mark.parametrize("mode", MODES)
async def test_cancelling_the_mcp_request_cancels_the_coze_chat(tmp_path: Path, mode: str) -> None:
    holder: dict[str, _Notifying] = {}

    def wrap(store: Store) -> Store:
        holder["s"] = _Notifying(store)
        return holder["s"]  # type: ignore[return-value]

    async with running_sandbox(stream_chunk_delay=0.05) as (handle, coze), open_bridge(
        sandbox=handle, db_path=tmp_path / "kb.db", wrap_store=wrap
    ) as bridge, Client(build_mcp_server(bridge.registry), mode=mode) as client:
        first = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            first.set()

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: client.call_tool(
                    "send_message", {"message": "Tell me all about espresso extraction"}, progress_callback=on_progress))
                await first.wait()
                tg.cancel_scope.cancel()
            await holder["s"].canceled.wait()
        record = holder["s"].last
        assert record is not None
        chat = await coze.retrieve_chat(conversation_id=record.conversation_id, chat_id=record.chat_id)
    assert str(chat.status) == "canceled"
    assert record.status == "canceled"
