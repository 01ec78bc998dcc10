"""End to end over real sockets: a cozepy chat with the sandbox's plugin bot -> the sandbox calls kai-bridge's
plugin face like Coze does (Service token, plugin headers) -> the answer carries kai-bridge's knowledge."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
import httpx
import pytest
from cozepy import ChatEventType, Coze, Message, SyncHTTPClient, TokenAuth

from kai_bridge.runtime import Runtime
from kai_bridge.sandbox import SandboxConfig, SandboxHandle
from tests.bridge import APP_ID, key_pair, open_bridge, running_sandbox
from tests.mcp.http_harness import serving

pytestmark = pytest.mark.e2e

QUESTION = "埃塞俄比亚咖啡有什么特点"


@contextlib.asynccontextmanager
async def stack(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[SandboxHandle, Runtime, str, str, str]]:
    """(sandbox, bridge, kai-bridge's URL as localhost, the sandbox PAT, the admin token), all on real sockets."""
    pat = "pat_" + secrets.token_hex(16)
    admin = secrets.token_hex(16)
    config = SandboxConfig(apps=[(APP_ID, key_pair().public_pem)], pats=[pat], admin_enabled=True,
                           admin_token=admin, follow_up=False)
    async with running_sandbox(config) as (handle, _coze), open_bridge(
        sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=settings
    ) as bridge, serving(bridge) as base:
        # Coze refuses IP addresses: the plugin is reached by name (localhost is one).
        yield handle, bridge, f"http://localhost:{urlsplit(base).port}", pat, admin


async def import_plugin(handle: SandboxHandle, admin: str, document: str, auth: dict[str, str] | None) -> str:
    async with httpx.AsyncClient(timeout=30) as http:
        imported = await http.post(f"{handle.base_url}/_sandbox/plugins", headers={"Authorization": f"Bearer {admin}"},
                                   json={"document": document, "auth": auth})
    assert imported.status_code == 200, imported.text
    bot_id: str = imported.json()["data"]["bot_id"]
    return bot_id


async def chat(handle: SandboxHandle, pat: str, bot_id: str, *, user: str) -> tuple[str, list[str]]:
    """A cozepy stream chat: (the streamed answer, the kinds of completed messages)."""

    def run() -> tuple[str, list[str]]:
        http = SyncHTTPClient()  # type: ignore[no-untyped-call]
        try:
            client = Coze(auth=TokenAuth(pat), base_url=handle.base_url, http_client=http)
            parts: list[str] = []
            kinds: list[str] = []
            for event in client.chat.stream(bot_id=bot_id, user_id=user,
                                            additional_messages=[Message.build_user_question_text(QUESTION)]):
                if event.event == ChatEventType.CONVERSATION_MESSAGE_DELTA and event.message is not None:
                    parts.append(event.message.content)
                elif event.event == ChatEventType.CONVERSATION_MESSAGE_COMPLETED and event.message is not None:
                    kinds.append(str(event.message.type.value))
            return "".join(parts), kinds
        finally:
            http.close()

    with anyio.fail_after(60):
        return await anyio.to_thread.run_sync(run)


async def test_a_cozepy_chat_with_the_plugin_bot_answers_with_kai_bridge_knowledge(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kai_bridge.plugin")
    token = secrets.token_hex(24)
    async with stack(tmp_path, plugin_token=token) as (handle, bridge, url, pat, admin):
        async with httpx.AsyncClient(timeout=30) as http:
            document = (await http.get(f"{url}/plugin/openapi.yaml")).text
        bot_id = await import_plugin(handle, admin, document,
                                     {"location": "header", "key": "Authorization", "value": f"Bearer {token}"})
        expected = await bridge.registry.call("coffee_knowledge_query", {"query": QUESTION})
        answer, kinds = await chat(handle, pat, bot_id, user="alice")
        assert handle.plugins is not None
        calls = handle.plugins.calls
    assert answer == expected["answer"]
    assert "埃塞俄比亚" in answer
    assert kinds[:3] == ["function_call", "tool_response", "answer"]
    assert calls == 1
    line = next(r.getMessage() for r in caplog.records if r.name == "kai_bridge.plugin")
    assert "plugin call coffee_knowledge_query by plugin:coze-user:alice" in line
    assert f"coze bot {bot_id}" in line
    assert ": ok in" in line
    assert token not in caplog.text


async def test_the_service_token_can_travel_as_a_query_parameter(tmp_path: Path) -> None:
    token = secrets.token_hex(24)
    async with stack(tmp_path, plugin_token=token, plugin_token_query="kai_token") as (handle, bridge, url, pat, admin):
        async with httpx.AsyncClient(timeout=30) as http:
            document = (await http.get(f"{url}/plugin/openapi.json")).text
        bot_id = await import_plugin(handle, admin, document, {"location": "query", "key": "kai_token", "value": token})
        answer, _ = await chat(handle, pat, bot_id, user="bob")
        expected = await bridge.registry.call("coffee_knowledge_query", {"query": QUESTION})
    assert answer == expected["answer"]


async def test_a_plugin_with_the_wrong_service_token_fails_the_way_coze_reports_it(tmp_path: Path) -> None:
    token = secrets.token_hex(24)
    async with stack(tmp_path, plugin_token=token) as (handle, _bridge, url, pat, admin):
        async with httpx.AsyncClient(timeout=30) as http:
            document = (await http.get(f"{url}/plugin/openapi.yaml")).text
        bot_id = await import_plugin(handle, admin, document,
                                     {"location": "header", "key": "Authorization", "value": "Bearer not-the-token"})
        answer, kinds = await chat(handle, pat, bot_id, user="carol")
        assert handle.plugins is not None
        failures = handle.plugins.failures
    assert "failed" in answer
    assert "status=401" in answer
    assert "invalid plugin token" in answer
    assert "tool_response" in kinds
    assert failures == 1
