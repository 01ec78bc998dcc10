"""The MCP door names its callers: door ``mcp`` (other doors and metrics read ``ToolContext.caller``)."""

from __future__ import annotations

from mcp.client import Client
from pydantic import BaseModel

from kai_bridge.mcp import build_mcp_server
from kai_bridge.tools import ToolAnnotations, ToolContext, ToolRegistry, typed_tool


class Empty(BaseModel):
    pass


class Door(BaseModel):
    door: str


async def test_a_tool_called_over_mcp_sees_the_mcp_door() -> None:
    async def run(params: Empty, ctx: ToolContext) -> Door:
        return Door(door=ctx.caller.door)

    registry = ToolRegistry()
    registry.add(typed_tool(name="door", title="Door", description="Which door.", input_model=Empty, output_model=Door,
                            annotations=ToolAnnotations(read_only=True, destructive=False, idempotent=True,
                                                        open_world=False), func=run))
    async with Client(build_mcp_server(registry)) as client:
        result = await client.call_tool("door", {})
    assert result.structured_content == {"door": "mcp-http"}  # build_mcp_server's default door; stdio passes its own
