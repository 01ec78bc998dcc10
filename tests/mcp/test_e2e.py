"""End to end: the real ``kai-bridge stdio``/``serve``/``call`` processes, driven by the SDK's client."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client import Client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from kai_bridge.coze import CozeClient
from kai_bridge.sandbox import PLUGIN_BOT_ID, SandboxHandle
from tests.mcp.e2e import COMMAND, REPO, bridge_env, run_cli, serve_process

pytestmark = pytest.mark.e2e

TOKEN = "e2e-token-0123456789abcdef0123"


def _stdio(env: dict[str, str], *extra: str) -> StdioServerParameters:
    return StdioServerParameters(command=COMMAND[0], args=[*COMMAND[1:], "stdio", *extra], env=env, cwd=str(REPO))


async def test_stdio_lists_and_calls_tools_and_streams_send_message(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, _ = upstream
    env = bridge_env(handle, tmp_path).env
    deltas: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        deltas.append(message or "")

    with anyio.fail_after(60):
        async with stdio_client(_stdio(env)) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = sorted(tool.name for tool in (await session.list_tools()).tools)
            coffee = await session.call_tool("coffee_knowledge_query", {"query": "what is a honey process"})
            sent = await session.call_tool("send_message", {"message": "What is a siphon brewer?"},
                                           progress_callback=on_progress)
            plugin = await session.call_tool("send_message", {"message": "What is a honey process?",
                                                              "bot_id": PLUGIN_BOT_ID})
            bad = await session.call_tool("coffee_knowledge_query", {"query": ""})
    assert "coffee_knowledge_query" in tools
    assert "send_message" in tools
    assert coffee.structured_content is not None
    assert coffee.structured_content["found"] is True
    assert sent.structured_content is not None
    assert "".join(deltas) == sent.structured_content["answer"]
    assert plugin.structured_content is not None
    assert plugin.structured_content["rounds"] == 1
    assert bad.is_error


async def test_a_2026_client_works_over_stdio(upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path) -> None:
    handle, _ = upstream
    env = bridge_env(handle, tmp_path).env
    with anyio.fail_after(60):
        async with Client(_stdio(env, "--no-sidecar")) as client:
            assert client.protocol_version == "2026-07-28"
            result = await client.call_tool("coffee_knowledge_query", {"query": "Kenya SL28"})
    assert result.structured_content is not None
    assert result.structured_content["found"] is True


async def test_a_conversation_continues_after_the_bridge_restarts(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, coze = upstream
    env = bridge_env(handle, tmp_path).env
    ids: list[str] = []
    for question in ("What is a Chemex?", "How long should it brew?"):
        with anyio.fail_after(60):
            async with Client(_stdio(env, "--no-sidecar"), mode="legacy") as client:
                result = await client.call_tool("send_message", {"message": question})
        assert result.structured_content is not None
        ids.append(result.structured_content["conversation_id"])
    assert ids[0] == ids[1]
    assert (tmp_path / "data" / "kai-bridge.db").exists()
    page = await coze.list_messages(conversation_id=ids[0], order="asc")
    assert [m.content for m in page.items if str(m.role) == "user"] == ["What is a Chemex?", "How long should it brew?"]


async def test_serve_requires_the_token_and_serves_both_eras(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, _ = upstream
    env = bridge_env(handle, tmp_path, KAI_BRIDGE_MCP_AUTH_TOKEN=TOKEN).env
    async with serve_process(env) as (url, process, lines):
        async with httpx2.AsyncClient(timeout=30) as anonymous:
            refused = await anonymous.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                           headers={"Accept": "application/json, text/event-stream"})
            health = await anonymous.get(url.rsplit("/", 1)[0] + "/health")
            coze = await anonymous.get(url.rsplit("/", 1)[0] + "/diagnostics/coze")
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
            async with streamable_http_client(url, http_client=http) as (read, write), ClientSession(
                read, write
            ) as session:
                await session.initialize()
                legacy = await session.call_tool("coffee_knowledge_query", {"query": "espresso"})
            async with Client(streamable_http_client(url, http_client=http)) as client:
                modern = await client.call_tool("send_message", {"message": "What is a lungo?"})
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            code = await process.wait()
    assert refused.status_code == 401
    assert health.status_code == 200
    assert coze.json()["summary"]["upstream"] == "coze"
    assert legacy.structured_content is not None
    assert modern.structured_content is not None
    assert modern.structured_content["answer"]
    assert code == 0
    assert TOKEN not in "\n".join(lines)


def test_serve_refuses_a_public_interface_without_a_token(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, _ = upstream
    env = bridge_env(handle, tmp_path).env
    done = run_cli(["serve", "--host", "0.0.0.0", "--port", "0"], env)
    assert done.returncode == 2
    assert "no MCP bearer token" in done.stderr


def test_call_prints_the_structured_result_as_json(upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path) -> None:
    handle, _ = upstream
    env = bridge_env(handle, tmp_path).env
    done = run_cli(["call", "coffee_knowledge_query", '{"query": "埃塞俄比亚咖啡", "top_k": 1}'], env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["language"] == "zh"
    assert len(data["passages"]) == 1


def test_call_list_names_every_tool(upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path) -> None:
    handle, _ = upstream
    done = run_cli(["call", "--list"], bridge_env(handle, tmp_path).env)
    assert done.returncode == 0, done.stderr
    names = [line.split("\t")[0] for line in done.stdout.splitlines()]
    assert names == sorted(names)
    assert {"coffee_knowledge_query", "send_message", "get_chat_result"} <= set(names)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        pytest.param(["get_chat_result", '{"chat_id": "1"}'], 1, "tool error: no chat with id '1'",
                     id="tool-error"),
        pytest.param(["no_such_tool", "{}"], 2, "unknown tool 'no_such_tool'", id="unknown-tool"),
        pytest.param(["coffee_knowledge_query", '{"query": 1'], 2, "not valid JSON: Expecting", id="bad-json"),
        pytest.param(["coffee_knowledge_query", "query=espresso"], 2, "pass one JSON object", id="key-value"),
        pytest.param(["coffee_knowledge_query", '{"top_k": 2}'], 2, "'query': Field required", id="bad-args"),
    ],
)
def test_call_failures_are_one_line_on_stderr_with_a_nonzero_exit(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    handle, _ = upstream
    done = run_cli(["call", *args], bridge_env(handle, tmp_path, KAI_BRIDGE_LOG_LEVEL="ERROR").env)
    assert done.returncode == code
    assert done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert message in last
    assert "Traceback" not in done.stderr


async def test_stdio_serves_the_sidecar_health_next_to_mcp(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, _ = upstream
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    env = bridge_env(handle, tmp_path, KAI_BRIDGE_STDIO_SIDECAR_PORT=str(port)).env
    with anyio.fail_after(60):
        async with Client(_stdio(env), mode="legacy") as client:
            await client.list_tools()
            async with httpx2.AsyncClient(timeout=10) as http:
                health = await http.get(f"http://127.0.0.1:{port}/health")
                ready = await http.get(f"http://127.0.0.1:{port}/ready")
    assert health.status_code == 200
    assert health.json()["service"] == "kai-bridge"
    assert ready.status_code == 200


async def test_stdio_runs_on_when_the_sidecar_port_is_taken(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, _ = upstream
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = bridge_env(handle, tmp_path, KAI_BRIDGE_STDIO_SIDECAR_PORT=str(port)).env
        errors = tmp_path / "stderr.txt"
        with errors.open("w") as errlog, anyio.fail_after(60):
            async with stdio_client(_stdio(env), errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                result = await session.call_tool("coffee_knowledge_query", {"query": "espresso"})
    assert not result.is_error
    assert "sidecar not started" in errors.read_text()


async def test_stdio_writes_nothing_but_json_rpc_to_stdout_even_with_debug_logs(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, _ = upstream
    env = bridge_env(handle, tmp_path).env
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "send_message", "arguments": {"message": "What is a doppio?"}}},
    ]
    stderr = tmp_path / "stderr.txt"
    messages: list[dict[str, object]] = []
    with stderr.open("w") as err, anyio.fail_after(60):
        process = await anyio.open_process([*COMMAND, "--debug", "stdio", "--no-sidecar"], env=env, cwd=REPO,
                                           stderr=err)
        async with process:
            assert process.stdin is not None
            assert process.stdout is not None
            await process.stdin.send("".join(json.dumps(r) + "\n" for r in requests).encode())
            buffer = b""
            # stdin stays open until the answer is in: EOF means "client gone" and cancels the call.
            while not any(m.get("id") == 2 for m in messages):
                buffer += await process.stdout.receive()
                *complete, buffer = buffer.split(b"\n")
                messages.extend(json.loads(line) for line in complete if line.strip())
            await process.stdin.aclose()
            await process.wait()
    assert all(message.get("jsonrpc") == "2.0" for message in messages)
    answer = next(message for message in messages if message.get("id") == 2)
    result = answer["result"]
    assert isinstance(result, dict)
    assert result["structuredContent"]["answer"]
    assert "DEBUG" in stderr.read_text()  # the logs went somewhere: stderr
