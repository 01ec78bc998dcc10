"""The ``serve`` HTTP app on a real socket: /mcp in both protocol eras, auth, Host/Origin, operator routes."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp.types as types
import pytest
from mcp import ClientSession
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from kai_bridge.config import load_settings
from kai_bridge.coze import CozeClient
from kai_bridge.errors import ConfigError
from kai_bridge.http.security import check_http_security, is_loopback
from kai_bridge.runtime import Runtime
from kai_bridge.sandbox import SandboxHandle
from tests.bridge import open_bridge, open_embedded, running_sandbox
from tests.mcp.http_harness import serving

TOKEN = "test-token-0123456789abcdef"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
POST_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@contextlib.asynccontextmanager
async def secured_server(upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path) -> AsyncIterator[tuple[Runtime, str]]:
    """A bridge served with a bearer token (a context manager: uvicorn's task group must stay in one task)."""
    handle, _coze = upstream
    async with open_bridge(sandbox=handle, db_path=tmp_path / "kb.db",
                           settings_overrides={"mcp_auth_token": TOKEN}) as bridge, serving(bridge) as base:
        yield bridge, base


def _auth_client(token: str | None = TOKEN) -> httpx2.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.AsyncClient(headers=headers, timeout=30)


async def test_a_handshake_era_session_lists_and_calls_tools(upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path) -> None:
    async with secured_server(upstream, tmp_path) as (_, base):
        async with (
            _auth_client() as http,
            streamable_http_client(f"{base}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            init = await session.initialize()
            assert init.server_info.name == "kai-bridge"
            tools = [tool.name for tool in (await session.list_tools()).tools]
            result = await session.call_tool("coffee_knowledge_query", {"query": "what is a washed process"})
        assert "send_message" in tools
        assert result.structured_content is not None
        assert result.structured_content["found"] is True


async def test_a_2026_client_streams_send_message_progress_over_http(tmp_path: Path) -> None:
    # Chunks 10 ms apart: a burst would (rightly) be coalesced into one notification.
    async with running_sandbox(stream_chunk_delay=0.01) as paced, secured_server(paced, tmp_path) as (_, base):
        deltas: list[str] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            deltas.append(message or "")

        async with _auth_client() as http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
            assert client.protocol_version == "2026-07-28"
            result = await client.call_tool("send_message", {"message": "What is a V60?"}, progress_callback=on_progress)
        assert result.structured_content is not None
        assert len(deltas) > 1
        assert "".join(deltas) == result.structured_content["answer"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="no-token"),
        pytest.param({"Authorization": "Bearer wrong-token-0123456789ab"}, 401, id="wrong-token"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, 401, id="wrong-scheme"),
        pytest.param({"Authorization": f"Bearer {TOKEN}"}, 200, id="good-token"),
        pytest.param({"Authorization": f"bearer {TOKEN}"}, 200, id="scheme-case-insensitive"),
        pytest.param({"Authorization": f"Bearer {TOKEN}", "Host": "evil.example.com"}, 421, id="bad-host"),
        pytest.param({"Authorization": f"Bearer {TOKEN}", "Origin": "http://evil.example.com"}, 403, id="bad-origin"),
        pytest.param({"Authorization": f"Bearer {TOKEN}", "Origin": "http://localhost:3000"}, 200, id="local-origin"),
    ],
)
async def test_mcp_requires_the_bearer_token_and_an_allowed_host_and_origin(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path, headers: dict[str, str], status: int
) -> None:
    async with secured_server(upstream, tmp_path) as (_, base):
        async with httpx2.AsyncClient(timeout=10) as http:
            response = await http.post(f"{base}/mcp", json=INIT, headers={**POST_HEADERS, **headers})
        assert response.status_code == status
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert TOKEN not in response.text


async def test_configured_host_names_and_origins_are_accepted(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, _coze = upstream
    overrides = {"mcp_allowed_hosts": ["mcp.example.com"], "mcp_allowed_origins": ["https://app.example.com"]}
    async with (
        open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=overrides) as bridge,
        serving(bridge) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        ok = await http.post(f"{base}/mcp", json=INIT,
                             headers={**POST_HEADERS, "Host": "mcp.example.com", "Origin": "https://app.example.com"})
        other = await http.post(f"{base}/mcp", json=INIT, headers={**POST_HEADERS, "Host": "other.example.com"})
    assert ok.status_code == 200
    assert other.status_code == 421


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"mcp_json_response": True}, id="json-response"),
        pytest.param({"mcp_stateless": True}, id="stateless"),
        pytest.param({"mcp_stateless": True, "mcp_json_response": True}, id="stateless-json"),
    ],
)
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_transport_options_serve_both_eras(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path, overrides: dict[str, Any], mode: str
) -> None:
    handle, _coze = upstream
    async with (
        open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=overrides) as bridge,
        serving(bridge) as base,
        Client(f"{base}/mcp", mode=mode) as client,
    ):
        result = await client.call_tool("coffee_knowledge_query", {"query": "cold brew ratio"})
        sent = await client.call_tool("send_message", {"message": "cold brew?"})
    assert result.structured_content is not None
    assert sent.structured_content is not None
    assert sent.structured_content["answer"]


async def test_health_says_loudly_that_the_sandbox_is_the_upstream_and_shows_no_secret(tmp_path: Path) -> None:
    overrides = {"mcp_auth_token": TOKEN}
    async with open_embedded(db_path=tmp_path / "kb.db", settings_overrides=overrides) as runtime, serving(
        runtime
    ) as base:
        async with httpx2.AsyncClient(timeout=10) as http:
            health = await http.get(f"{base}/health")
            coze = await http.get(f"{base}/diagnostics/coze")
            kai = await http.get(f"{base}/diagnostics/kai")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "healthy"
        assert body["mode"] == "sandbox"
        assert "coze" not in body  # configuration is for /diagnostics/coze
        assert "NOT CONNECTED TO COZE" in body["warning"]
        assert coze.status_code == 200
        assert coze.json()["summary"]["upstream"] == "embedded sandbox"
        assert coze.json()["sandbox"]["base_url"].startswith("http://127.0.0.1:")
        assert kai.status_code == 200
        assert "send_message" in [tool["name"] for tool in kai.json()["tools"]]
        for response in (health, coze, kai):
            assert TOKEN not in response.text
            assert "PRIVATE KEY" not in response.text
            assert "access_token" not in response.text


async def test_ready_is_200_when_every_dependency_answers(upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path) -> None:
    async with secured_server(upstream, tmp_path) as (_, base):
        async with httpx2.AsyncClient(timeout=10) as http:
            response = await http.get(f"{base}/ready")
        assert response.status_code == 200
        assert response.json()["ready"] is True
        assert set(response.json()["checks"]) == {"coze", "knowledge", "store", "webhook inbox"}


async def test_ready_is_503_naming_the_dependency_that_fails(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, _coze = upstream
    async with open_bridge(sandbox=handle, db_path=tmp_path / "kb.db") as bridge:
        await bridge.store.close()
        async with serving(bridge) as base, httpx2.AsyncClient(timeout=10) as http:
            response = await http.get(f"{base}/ready")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["store"]["ok"] is False
    assert checks["coze"]["ok"] is True
    assert checks["knowledge"]["ok"] is True



@pytest.mark.parametrize(
    ("required", "status"),
    [pytest.param(False, 200, id="optional-upstream-degrades"), pytest.param(True, 503, id="required-upstream")],
)
async def test_an_upstream_that_is_down_is_in_readiness(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path, required: bool, status: int
) -> None:
    handle, _coze = upstream
    # Port 9 (discard) is closed here: the upstream never connects.
    down = {"name": "kai", "url": "http://127.0.0.1:9/mcp", "required": required}
    async with (
        open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides={"upstreams": [down]}) as bridge,
        serving(bridge) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        response = await http.get(f"{base}/ready")
    body = response.json()
    assert response.status_code == status
    assert body["checks"]["upstream kai"]["ok"] is False
    assert body["checks"]["upstream kai"]["critical"] is required
    assert "upstream 'kai' is" in body["checks"]["upstream kai"]["error"]
    assert body["checks"]["coze"]["ok"] is True
    assert body.get("degraded", []) == ([] if required else ["upstream kai"])


async def test_coze_unreachable_leaves_the_bridge_ready_but_degraded(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    handle, _coze = upstream
    # Nothing listens on port 9: every Coze call (the token exchange first) fails to connect.
    overrides = {"coze_api_base": "http://127.0.0.1:9", "coze_max_retries": 0}
    async with (
        open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=overrides) as bridge,
        serving(bridge) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        response = await http.get(f"{base}/ready")
        knowledge = await bridge.registry.call("coffee_knowledge_query", {"query": "what is a washed process"})
    body = response.json()
    assert response.status_code == 200
    assert body["checks"]["coze"]["ok"] is False
    assert body["checks"]["coze"]["critical"] is False
    assert body["degraded"] == ["coze"]
    assert knowledge["found"] is True  # what does not need Coze still works

async def test_operator_routes_need_no_token(upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path) -> None:
    async with secured_server(upstream, tmp_path) as (_, base), httpx2.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{base}/health")).status_code == 200


async def test_a_tool_added_at_runtime_is_announced_over_the_standalone_stream(upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path) -> None:
    async with secured_server(upstream, tmp_path) as (bridge, base):
        changed = anyio.Event()

        async def on_message(message: Any) -> None:
            if isinstance(message, types.ToolListChangedNotification):
                changed.set()

        original = bridge.registry.get("coffee_knowledge_query")
        async with _auth_client() as http, Client(streamable_http_client(f"{base}/mcp", http_client=http),
                                                  mode="legacy", message_handler=on_message) as client:
            await client.list_tools()
            bridge.registry.add(dataclasses.replace(original, name="upstream.coffee"))
            with anyio.fail_after(10):
                await changed.wait()
            names = [tool.name for tool in (await client.list_tools()).tools]
        assert "upstream.coffee" in names


@pytest.mark.parametrize(
    ("host", "token", "problem"),
    [
        pytest.param("0.0.0.0", None, "no MCP bearer token", id="any-without-token"),
        pytest.param("10.1.2.3", "short", "too short", id="short-token"),
        pytest.param("::", None, "no MCP bearer token", id="ipv6-any"),
    ],
)
def test_serving_beyond_loopback_without_a_proper_token_is_refused(host: str, token: str | None, problem: str) -> None:
    settings = load_settings(environ={}, overrides={"server_host": host, "mcp_auth_token": token}, check_files=False)
    with pytest.raises(ConfigError, match=problem):
        check_http_security(settings)


def test_loopback_needs_no_token_and_a_long_token_opens_any_interface() -> None:
    check_http_security(load_settings(environ={}, overrides={"server_host": "127.0.0.1"}, check_files=False))
    check_http_security(load_settings(environ={}, overrides={"server_host": "0.0.0.0", "mcp_auth_token": TOKEN},
                                      check_files=False))


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.2", False), ("example.com", False)],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


async def test_each_client_token_is_a_caller_with_conversations_of_its_own(
    upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path
) -> None:
    first, second = "client-one-0123456789abcdef", "client-two-0123456789abcdef"
    overrides = {"mcp_client_tokens": [first, second]}
    answers: dict[str, list[str]] = {first: [], second: []}
    handle, _coze = upstream
    async with open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=overrides) as bridge, serving(
        bridge
    ) as base:
        for token in (first, second, first):
            # 2026-07-28 clients: no session, so the bearer credential is who they are.
            async with _auth_client(token) as http, Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
                assert client.protocol_version == "2026-07-28"
                result = await client.call_tool("send_message", {"message": "What is a ristretto?"})
            assert result.structured_content is not None
            answers[token].append(result.structured_content["conversation_id"])
        async with httpx2.AsyncClient(timeout=10) as http:
            refused = await http.post(f"{base}/mcp", json=INIT, headers={**POST_HEADERS, "Authorization": "Bearer nope"})
    assert answers[first][0] == answers[first][1]  # the same client continues its conversation
    assert answers[second][0] != answers[first][0]  # another client has its own
    assert refused.status_code == 401


def test_client_tokens_alone_let_serve_listen_beyond_loopback() -> None:
    settings = load_settings(environ={}, overrides={"server_host": "0.0.0.0",
                                                    "mcp_client_tokens": ["client-one-0123456789abcdef"]})
    check_http_security(settings)  # no ConfigError: a token is required and there is one


@pytest.mark.parametrize(
    "tokens",
    [pytest.param(["short"], id="too-short"), pytest.param(["same-0123456789abcdef"] * 2, id="repeated")],
)
def test_bad_client_tokens_are_refused_at_start(tokens: list[str]) -> None:
    with pytest.raises(ConfigError, match="mcp_client_tokens"):
        load_settings(environ={}, overrides={"mcp_client_tokens": tokens})
