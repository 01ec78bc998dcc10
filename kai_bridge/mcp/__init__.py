"""The MCP door: a low-level SDK server generated from the tool registry."""

from __future__ import annotations

from kai_bridge.mcp.context import McpToolContext
from kai_bridge.mcp.server import (
    DEFAULT_INSTRUCTIONS,
    KaiMcpServer,
    McpExtension,
    McpToolHandler,
    build_mcp_server,
    tool_result,
)

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "KaiMcpServer",
    "McpExtension",
    "McpToolContext",
    "McpToolHandler",
    "build_mcp_server",
    "tool_result",
]
