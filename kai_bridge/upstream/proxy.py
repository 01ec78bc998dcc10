"""Translation between an upstream MCP server's tools and kai-bridge registry tools.

Pure functions, no I/O: how an upstream ``Tool`` becomes a registry :class:`Tool` named
``<upstream>.<tool>``, how a ``CallToolResult`` becomes the registry's structured result, and
how failures are worded for the model that made the call.

Result shape: ``structuredContent`` when the upstream sent one (a non-object value is wrapped as
``{"result": value}``), otherwise ``{"content": [text, ...]}`` with one string per content
block (non-text blocks are described in a short bracketed line instead of inlined).
"""

from __future__ import annotations

from typing import Any

import mcp.types as mt

from kai_bridge.tools.registry import Tool, ToolAnnotations, ToolHandler, validate_tool_name

__all__ = ["error_text", "make_tool", "qualified_name", "to_result"]

_MAX_ERROR_TEXT = 2000


def qualified_name(upstream: str, tool: str) -> str:
    """The registry name of an upstream tool; raises ValueError if it is not a valid tool name."""
    return validate_tool_name(f"{upstream}.{tool}")


def output_schema_of(tool: mt.Tool) -> dict[str, Any] | None:
    """The output schema the registry advertises, matching what :func:`to_result` returns."""
    schema = tool.output_schema
    if schema is None:
        return None
    if schema.get("type") == "object":
        return schema
    # 2026-07-28 allows any JSON value as structured content: it is wrapped as {"result": value}.
    return {"type": "object", "properties": {"result": schema}, "required": ["result"]}


def make_tool(*, upstream: str, tool: mt.Tool, handler: ToolHandler, timeout: float) -> Tool:
    """A registry tool standing for ``tool`` of ``upstream`` (raises ValueError if unusable)."""
    hints = tool.annotations or mt.ToolAnnotations()
    title = tool.title or hints.title or tool.name
    description = tool.description or f"Tool '{tool.name}' of the upstream KAI server '{upstream}'."
    return Tool(
        name=qualified_name(upstream, tool.name),
        title=title,
        description=description,
        input_schema=dict(tool.input_schema),
        output_schema=output_schema_of(tool),
        annotations=ToolAnnotations(
            # MCP defaults when a hint is absent: not read-only, destructive, not idempotent, open world.
            read_only=bool(hints.read_only_hint),
            destructive=True if hints.destructive_hint is None else hints.destructive_hint,
            idempotent=bool(hints.idempotent_hint),
            open_world=True if hints.open_world_hint is None else hints.open_world_hint,
            title=hints.title,
        ),
        handler=handler,
        timeout=timeout,
    )


def block_text(block: mt.ContentBlock) -> str:
    """One content block as a line of text."""
    if isinstance(block, mt.TextContent):
        return block.text
    if isinstance(block, mt.ImageContent | mt.AudioContent):
        kind = "image" if isinstance(block, mt.ImageContent) else "audio"
        return f"[{kind} {block.mime_type}, {len(block.data) * 3 // 4} bytes]"
    if isinstance(block, mt.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, mt.TextResourceContents):
            return resource.text
        return f"[resource {resource.uri} ({resource.mime_type or 'binary'})]"
    return f"[resource link {block.uri}]"


def to_result(result: mt.CallToolResult) -> dict[str, Any]:
    """The registry result for a successful upstream call."""
    structured = result.structured_content
    if structured is not None:
        return structured if isinstance(structured, dict) else {"result": structured}
    return {"content": [block_text(block) for block in result.content]}


def error_text(result: mt.CallToolResult) -> str:
    """The upstream's own error message from an ``isError`` result, shortened for a model."""
    text = " ".join(block_text(block) for block in result.content).strip() or "(no message)"
    if len(text) > _MAX_ERROR_TEXT:
        text = text[:_MAX_ERROR_TEXT] + " [truncated]"
    return text
