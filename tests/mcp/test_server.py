"""The MCP server generated from the registry, driven in-process by the SDK's own client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from pydantic import BaseModel, Field

from kai_bridge.mcp import KaiMcpServer, build_mcp_server
from kai_bridge.tools import Tool, ToolAnnotations, ToolContext, ToolRegistry, typed_tool

MODES = [pytest.param("legacy", id="2025-11-25"), pytest.param("auto", id="2026-07-28")]


class StreamIn(BaseModel):
    words: list[str] = Field(min_length=1, max_length=5)


class StreamOut(BaseModel):
    text: str
    caller: str | None


async def _stream(params: StreamIn, ctx: ToolContext) -> StreamOut:
    sent = 0
    for word in params.words:
        sent += len(word)
        await ctx.report_progress(sent, None, word)
        await ctx.log("info", f"sent {word}")
    await ctx.log("debug", "done")
    return StreamOut(text="".join(params.words), caller=ctx.caller_id)


def _registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.add(
        typed_tool(
            name="stream_words",
            title="Stream words",
            description="Streams words back with progress.",
            input_model=StreamIn,
            output_model=StreamOut,
            annotations=ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=False),
            func=_stream,
        )
    )
    return registry


def _server(registry: ToolRegistry | None = None) -> KaiMcpServer:
    return build_mcp_server(registry or _registry())


def _noop_tool(name: str) -> Tool:
    async def handler(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {}

    return Tool(
        name=name,
        title=name,
        description="added later",
        input_schema={"type": "object"},
        output_schema=None,
        annotations=ToolAnnotations(read_only=False, destructive=True, idempotent=False, open_world=True),
        handler=handler,
    )


@pytest.mark.parametrize("mode", MODES)
async def test_tools_are_listed_with_schemas_titles_and_annotations(mode: str) -> None:
    async with Client(_server(), mode=mode) as client:
        listed = await client.list_tools()
    (tool,) = listed.tools
    assert tool.name == "stream_words"
    assert tool.title == "Stream words"
    assert tool.description == "Streams words back with progress."
    assert tool.input_schema["properties"]["words"]["maxItems"] == 5
    assert tool.output_schema is not None
    assert tool.output_schema["required"] == ["text", "caller"]
    assert tool.annotations == types.ToolAnnotations(
        title="Stream words", read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    )


@pytest.mark.parametrize("mode", MODES)
async def test_a_call_returns_structured_content_and_a_json_text_copy(mode: str) -> None:
    async with Client(_server(), mode=mode) as client:
        result = await client.call_tool("stream_words", {"words": ["a", "b"]})
    assert not result.is_error
    # No session and no bearer credential in process: the caller is the door itself.
    assert result.structured_content == {"text": "ab", "caller": "mcp-http"}
    assert isinstance(result.content[0], types.TextContent)
    assert result.content[0].text == '{"text":"ab","caller":"mcp-http"}'


@pytest.mark.parametrize("mode", MODES)
async def test_progress_notifications_carry_each_step_when_the_client_asks(mode: str) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with Client(_server(), mode=mode) as client:
        await client.call_tool("stream_words", {"words": ["ab", "cde"]}, progress_callback=on_progress)
    assert seen == [(2, None, "ab"), (5, None, "cde")]


async def test_logs_reach_a_handshake_era_client_only_after_it_sets_a_level() -> None:
    logs: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async with Client(_server(), mode="legacy", logging_callback=on_log) as client:
        assert client.server_capabilities.logging is not None
        await client.call_tool("stream_words", {"words": ["x"]})
        assert logs == []
        with pytest.warns(MCPDeprecationWarning):
            await client.set_logging_level("info")
        await client.call_tool("stream_words", {"words": ["x", "y"]})
    assert [(entry.level, entry.data, entry.logger) for entry in logs] == [
        ("info", "sent x", "kai-bridge"),
        ("info", "sent y", "kai-bridge"),
    ]


async def test_logs_reach_a_2026_client_only_when_its_requests_opt_in() -> None:
    logs: list[Any] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params.data)

    async with Client(_server(), logging_callback=on_log) as silent:
        await silent.call_tool("stream_words", {"words": ["x"]})
    assert logs == []
    async with Client(_server(), logging_callback=on_log, log_level="debug") as chatty:
        await chatty.call_tool("stream_words", {"words": ["x"]})
    assert logs == ["sent x", "done"]


@pytest.mark.parametrize("mode", MODES)
async def test_bad_arguments_are_an_error_result_naming_the_field(mode: str) -> None:
    async with Client(_server(), mode=mode) as client:
        result = await client.call_tool("stream_words", {"words": []})
    assert result.is_error
    assert isinstance(result.content[0], types.TextContent)
    text = result.content[0].text
    assert "'words'" in text
    assert "at least 1 item" in text
    assert "Traceback" not in text


@pytest.mark.parametrize("mode", MODES)
async def test_an_unknown_tool_is_a_protocol_error(mode: str) -> None:
    async with Client(_server(), mode=mode) as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("no_such_tool", {})
    assert info.value.error.code == types.INVALID_PARAMS
    assert "no_such_tool" in info.value.error.message


async def test_a_handshake_client_hears_tools_list_changed_when_the_registry_changes() -> None:
    registry = _registry()
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with Client(_server(registry), mode="legacy", message_handler=on_message) as client:
        assert client.server_capabilities.tools is not None
        assert client.server_capabilities.tools.list_changed is True
        await client.list_tools()
        registry.add(_noop_tool("up.later"))
        with anyio.fail_after(5):
            await changed.wait()
        names = [tool.name for tool in (await client.list_tools()).tools]
    assert names == ["stream_words", "up.later"]


async def test_a_2026_client_hears_tools_list_changed_through_listen() -> None:
    registry = _registry()
    async with Client(_server(registry)) as client:
        async with client.listen(tools_list_changed=True) as subscription:
            registry.add(_noop_tool("up.later"))
            with anyio.fail_after(5):
                async for _event in subscription:
                    break
        names = [tool.name for tool in (await client.list_tools(cache_mode="bypass")).tools]
    assert names == ["stream_words", "up.later"]


async def test_extensions_can_add_mcp_only_tools_through_the_same_factory() -> None:
    async def picture(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.ImageContent(type="image", data="AA==", mime_type="image/png")])

    def install(server: KaiMcpServer) -> None:
        server.add_mcp_tool(
            types.Tool(name="picture", description="an image", input_schema={"type": "object"}), picture
        )

    extensions: list[Callable[[KaiMcpServer], None]] = [install]
    async with Client(build_mcp_server(_registry(), extensions=extensions), mode="legacy") as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool("picture", {})
    assert names == ["picture", "stream_words"]
    assert isinstance(result.content[0], types.ImageContent)


def test_an_extension_cannot_shadow_a_registry_tool() -> None:
    server = _server()
    with pytest.raises(ValueError, match="already served"):
        server.add_mcp_tool(
            types.Tool(name="stream_words", input_schema={"type": "object"}),
            lambda ctx, params: None,  # type: ignore[arg-type,return-value]
        )


async def test_server_info_names_kai_bridge_with_its_version_and_instructions() -> None:
    async with Client(_server(), mode="legacy") as client:
        assert client.server_info is not None
        assert client.server_info.name == "kai-bridge"
        assert client.server_info.version
        assert client.instructions is not None
        assert "send_message" in client.instructions
