"""KAI tools: the registry every door calls through, and the tools kai-bridge itself provides."""

from __future__ import annotations

from kai_bridge.tools.registry import (
    NullToolContext,
    Tool,
    ToolAnnotations,
    ToolContext,
    ToolHandler,
    ToolRegistry,
    typed_tool,
    validate_tool_name,
)

__all__ = [
    "NullToolContext",
    "Tool",
    "ToolAnnotations",
    "ToolContext",
    "ToolHandler",
    "ToolRegistry",
    "typed_tool",
    "validate_tool_name",
]
