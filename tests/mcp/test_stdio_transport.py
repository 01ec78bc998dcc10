"""The thread-free stdio transport: a real server and the SDK's client over real OS pipes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import ClientSession
from mcp.shared.message import SessionMessage
from pydantic import BaseModel, Field

from kai_bridge.mcp import build_mcp_server
from kai_bridge.mcp.stdio import pipe_transport
from kai_bridge.tools import ToolAnnotations, ToolContext, ToolRegistry, typed_tool
from tests.mcp.e2e import COMMAND, REPO

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


class BlobIn(BaseModel):
    size: int = Field(ge=0, le=4_000_000)


class BlobOut(BaseModel):
    blob: str


async def _blob(params: BlobIn, ctx: ToolContext) -> BlobOut:
    for step in range(3):
        await ctx.report_progress(step + 1, 3, f"step {step + 1}")
    return BlobOut(blob="x" * params.size)


def _server_registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.add(
        typed_tool(
            name="blob",
            title="Blob",
            description="Returns size characters, after three progress steps.",
            input_model=BlobIn,
            output_model=BlobOut,
            annotations=ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=False),
            func=_blob,
        )
    )
    return registry


@contextlib.asynccontextmanager
async def served_over_pipes(*, max_line_bytes: int = 1 << 20) -> AsyncIterator[tuple[int, int]]:
    """The kai-bridge MCP server reading one pipe and writing another; yields (client_read_fd, client_write_fd)."""
    to_server_r, to_server_w = os.pipe()
    to_client_r, to_client_w = os.pipe()
    server = build_mcp_server(_server_registry())

    async def serve() -> None:
        async with pipe_transport(to_server_r, to_client_w, max_line_bytes=max_line_bytes) as (read, write):
            await server.run(read, write, server.create_initialization_options())

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            yield to_client_r, to_server_w
            tg.cancel_scope.cancel()
    finally:
        for fd in (to_server_r, to_server_w, to_client_r, to_client_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _send_raw(fd: int, data: bytes) -> None:
    os.set_blocking(fd, True)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def test_the_sdk_client_calls_a_tool_and_gets_progress_and_a_result_bigger_than_a_pipe_buffer() -> None:
    steps: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append((progress, total, message))

    with anyio.fail_after(20):
        async with (
            served_over_pipes() as (read_fd, write_fd),
            pipe_transport(read_fd, write_fd) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            listed = await session.list_tools()
            big = await session.call_tool("blob", {"size": 1_000_000}, progress_callback=on_progress)
            small = await session.call_tool("blob", {"size": 3})
    assert [tool.name for tool in listed.tools] == ["blob"]
    assert big.structured_content == {"blob": "x" * 1_000_000}  # ~2 MB on the wire: many pipe buffers
    assert small.structured_content == {"blob": "xxx"}
    assert steps == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


async def _responses(read_fd: int, write_fd: int, lines: bytes, *, want: int) -> list[dict[str, object]]:
    """Send raw bytes, collect the JSON-RPC responses (by id) until ``want`` of them arrived."""
    found: list[dict[str, object]] = []
    async with pipe_transport(read_fd, write_fd) as (read, _write):
        await anyio.to_thread.run_sync(_send_raw, write_fd, lines)
        async for item in read:
            if isinstance(item, SessionMessage) and isinstance(item.message, types.JSONRPCResponse):
                found.append(item.message.model_dump(by_alias=True, mode="json", exclude_none=True))
                if len(found) == want:
                    break
        await _write.aclose()
    return found


def _line(message: Mapping[str, object]) -> bytes:
    return json.dumps(message).encode() + b"\n"


async def test_a_malformed_line_is_skipped_and_the_session_goes_on() -> None:
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    with anyio.fail_after(20):
        async with served_over_pipes() as (read_fd, write_fd):
            got = await _responses(read_fd, write_fd, _line(INIT) + _line(INITIALIZED) + b"{not json\n" + _line(ping),
                                   want=2)
    assert [response["id"] for response in got] == [1, 2]


async def test_a_line_over_the_limit_is_dropped_and_the_next_one_is_served() -> None:
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    huge = {"jsonrpc": "2.0", "id": 9, "method": "ping", "params": {"_meta": {"pad": "y" * 50_000}}}
    with anyio.fail_after(20):
        async with served_over_pipes(max_line_bytes=4096) as (read_fd, write_fd):
            got = await _responses(
                read_fd, write_fd, _line(INIT) + _line(INITIALIZED) + _line(huge) + _line(ping), want=2
            )
    assert [response["id"] for response in got] == [1, 2]  # 9 never reached the server


@pytest.mark.e2e
async def test_stdio_with_stdout_to_a_regular_file_falls_back_to_the_sdk_transport(tmp_path: Path) -> None:
    # asyncio cannot watch a regular file; the SDK's threaded transport serves instead.
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_BRIDGE_")}
    env.update({"KAI_BRIDGE_DATA_DIR": str(tmp_path / "data"), "KAI_BRIDGE_LOG_DIR": str(tmp_path / "logs")})
    out = tmp_path / "stdout.jsonl"
    replies: list[dict[str, Any]] = []
    with out.open("wb") as stdout, anyio.fail_after(60):
        process = await anyio.open_process([*COMMAND, "stdio", "--no-sidecar"], env=env, cwd=REPO,
                                           stdout=stdout, stderr=subprocess.DEVNULL)
        async with process:
            assert process.stdin is not None
            await process.stdin.send(_line(INIT) + _line(INITIALIZED) + _line(listing))
            # stdin stays open until both replies are in (EOF would cancel the pending call);
            # another process writes the file, so it is read again until they are.
            while len(replies) < 2:
                await anyio.sleep(0.05)
                complete = out.read_text().split("\n")[:-1]  # only lines that have their newline
                replies = [json.loads(line) for line in complete[:2]]
            await process.stdin.aclose()
            assert await process.wait() == 0
    assert [reply.get("id") for reply in replies] == [1, 2]
    assert "coffee_knowledge_query" in {tool["name"] for tool in replies[1]["result"]["tools"]}
