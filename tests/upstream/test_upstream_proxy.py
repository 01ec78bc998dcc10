"""How upstream tools and results are translated (pure functions, no connection)."""

from __future__ import annotations

from typing import Any

import mcp.types as mt
import pytest

from kai_bridge.tools import ToolContext
from kai_bridge.upstream.proxy import error_text, make_tool, to_result


async def handler(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return {}


def spec(**kw: Any) -> mt.Tool:
    base: dict[str, Any] = {"name": "brew", "input_schema": {"type": "object", "properties": {}}}
    base.update(kw)
    return mt.Tool(**base)


def test_a_tool_without_hints_gets_the_mcp_defaults() -> None:
    tool = make_tool(upstream="kai", tool=spec(), handler=handler, timeout=5)
    assert tool.name == "kai.brew"
    assert tool.title == "brew"
    assert "kai" in tool.description
    assert (tool.annotations.read_only, tool.annotations.destructive) == (False, True)
    assert (tool.annotations.idempotent, tool.annotations.open_world) == (False, True)
    assert tool.output_schema is None
    assert tool.timeout == 5


def test_hints_title_and_description_are_carried_across() -> None:
    hints = mt.ToolAnnotations(
        title="Brew it", read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    )
    tool = make_tool(upstream="kai", tool=spec(description="Brews.", annotations=hints), handler=handler, timeout=1)
    assert tool.title == "Brew it"
    assert tool.description == "Brews."
    assert tool.annotations.read_only
    assert not tool.annotations.destructive
    assert tool.annotations.idempotent
    assert not tool.annotations.open_world
    assert tool.annotations.title == "Brew it"


def test_a_non_object_output_schema_is_wrapped_like_the_result() -> None:
    tool = make_tool(upstream="kai", tool=spec(output_schema={"type": "string"}), handler=handler, timeout=1)
    assert tool.output_schema == {
        "type": "object",
        "properties": {"result": {"type": "string"}},
        "required": ["result"],
    }
    assert to_result(mt.CallToolResult(content=[], structured_content="hi")) == {"result": "hi"}


def test_a_name_that_does_not_fit_the_namespace_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid tool name"):
        make_tool(upstream="kai", tool=spec(name="x" * 130), handler=handler, timeout=1)


def test_structured_content_is_the_result_when_present() -> None:
    result = mt.CallToolResult(content=[mt.TextContent(text='{"total": 5}')], structured_content={"total": 5})
    assert to_result(result) == {"total": 5}


def test_without_structured_content_each_block_becomes_a_line_of_text() -> None:
    result = mt.CallToolResult(
        content=[
            mt.TextContent(text="first"),
            mt.ImageContent(data="QUJD", mime_type="image/png"),
            mt.EmbeddedResource(resource=mt.TextResourceContents(uri="kai://doc", text="embedded text")),
        ]
    )
    assert to_result(result) == {"content": ["first", "[image image/png, 3 bytes]", "embedded text"]}


def test_an_error_text_is_joined_and_shortened() -> None:
    result = mt.CallToolResult(content=[mt.TextContent(text="bad " * 1000)], is_error=True)
    text = error_text(result)
    assert text.endswith("[truncated]")
    assert len(text) < 2100
    assert error_text(mt.CallToolResult(content=[], is_error=True)) == "(no message)"
