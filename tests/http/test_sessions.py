"""Stateful /mcp sessions are bounded: a cap (a clear 503 past it) and an idle timeout, both settings."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx2

from kai_bridge.config import Settings
from kai_bridge.http.app import build_app
from tests.http.support import INIT, POST_HEADERS, runtime_for, serving_app

PING = {"jsonrpc": "2.0", "id": 2, "method": "ping"}


async def _open_session(http: httpx2.AsyncClient, url: str) -> httpx2.Response:
    return await http.post(url, json=INIT, headers=POST_HEADERS)


async def _ping(http: httpx2.AsyncClient, url: str, session: str) -> int:
    headers = {**POST_HEADERS, "Mcp-Session-Id": session, "Mcp-Protocol-Version": "2025-11-25"}
    return (await http.post(url, json=PING, headers=headers)).status_code


async def test_past_the_session_cap_a_new_session_gets_a_clear_503_and_a_closed_one_makes_room(tmp_path: Path) -> None:
    async with (
        runtime_for(tmp_path, {"mcp_max_sessions": 2}) as runtime,
        serving_app(build_app(runtime)) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        url = f"{base}/mcp"
        first, second = await _open_session(http, url), await _open_session(http, url)
        refused = await _open_session(http, url)
        sessions = [first.headers["mcp-session-id"], second.headers["mcp-session-id"]]
        still_served = [await _ping(http, url, session) for session in sessions]
        ended = await http.delete(url, headers={"Mcp-Session-Id": sessions[0], "Mcp-Protocol-Version": "2025-11-25"})
        admitted = await _open_session(http, url)
    assert (first.status_code, second.status_code) == (200, 200)
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/json"
    assert int(refused.headers["retry-after"]) >= 1
    message = refused.json()["error"]["message"]
    assert "2 open MCP sessions" in message
    assert "mcp_max_sessions" in message
    assert "KAI_BRIDGE_MCP_MAX_SESSIONS" in message
    assert still_served == [200, 200]
    assert ended.status_code == 200
    assert admitted.status_code == 200


async def test_an_idle_session_is_closed_after_the_idle_timeout(tmp_path: Path) -> None:
    # One session allowed: a new one is admitted exactly when the idle one has been closed, so the
    # test polls by opening sessions (which never touches, hence never refreshes, the idle one).
    async with (
        runtime_for(tmp_path, {"mcp_max_sessions": 1, "mcp_session_idle_timeout": 0.2}) as runtime,
        serving_app(build_app(runtime)) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        url = f"{base}/mcp"
        idle = await _open_session(http, url)
        assert idle.status_code == 200
        with anyio.fail_after(15):
            while True:
                attempt = await _open_session(http, url)
                if attempt.status_code != 503:
                    break
                await anyio.sleep(0.02)  # a pause between polls, not a timing assumption
        gone = await _ping(http, url, idle.headers["mcp-session-id"])
    assert attempt.status_code == 200
    assert gone == 404


async def test_a_stateless_server_has_no_session_to_cap(tmp_path: Path) -> None:
    async with (
        runtime_for(tmp_path, {"mcp_max_sessions": 1, "mcp_stateless": True}) as runtime,
        serving_app(build_app(runtime)) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        statuses = [(await _open_session(http, f"{base}/mcp")).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]


def test_the_default_bounds_are_finite_and_modest() -> None:
    defaults = Settings()
    assert 1 <= defaults.mcp_max_sessions <= 1000
    assert 0 < defaults.mcp_session_idle_timeout <= 3600
