"""McpToolContext.can_report: whether a call's progress and logs can reach its client."""

from __future__ import annotations

import mcp.types as types
import pytest
from mcp.client import Client
from mcp.shared.exceptions import MCPDeprecationWarning
from pydantic import BaseModel

from kai_bridge.mcp import KaiMcpServer, build_mcp_server
from kai_bridge.tools import ToolAnnotations, ToolContext, ToolRegistry, typed_tool


class Empty(BaseModel):
    pass


class Seen(BaseModel):
    can_report: bool


async def _probe(params: Empty, ctx: ToolContext) -> Seen:
    return Seen(can_report=ctx.can_report)


def _server() -> KaiMcpServer:
    registry = ToolRegistry()
    registry.add(
        typed_tool(
            name="probe",
            title="Probe",
            description="Says whether this call can report progress.",
            input_model=Empty,
            output_model=Seen,
            annotations=ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=False),
            func=_probe,
        )
    )
    return build_mcp_server(registry)


async def _on_progress(progress: float, total: float | None, message: str | None) -> None:
    return None


async def _on_log(params: types.LoggingMessageNotificationParams) -> None:
    return None


async def test_a_handshake_era_call_reports_only_with_a_progress_token_or_a_log_level() -> None:
    async with Client(_server(), mode="legacy", logging_callback=_on_log) as client:
        plain = await client.call_tool("probe", {})
        with_progress = await client.call_tool("probe", {}, progress_callback=_on_progress)
        with pytest.warns(MCPDeprecationWarning):
            await client.set_logging_level("info")
        with_logs = await client.call_tool("probe", {})
    assert plain.structured_content == {"can_report": False}
    assert with_progress.structured_content == {"can_report": True}
    assert with_logs.structured_content == {"can_report": True}


async def test_a_2026_call_is_assumed_to_listen() -> None:
    # In process, a 2026-07-28 client's progress callback is not visible in the request.
    async with Client(_server()) as client:
        result = await client.call_tool("probe", {})
    assert result.structured_content == {"can_report": True}
