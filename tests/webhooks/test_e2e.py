"""End to end: the sandbox sends Coze's callbacks to a real kai-bridge runtime over real sockets.

The sandbox plays Coze: it generates the callback app's verify token, checks the callback URL
with its challenge, and signs the bot events it sends when a bot is published or deleted
through its API. kai-bridge, over the same sandbox as its Coze upstream, stores, dispatches
and acts on them: bot state in /diagnostics/coze, a conversation tool refused for a deleted
bot, the seed guide's Bearer request routed to a tool, MCP clients told about new events.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp.types as types
import pytest
from mcp import ClientSession, MCPDeprecationWarning
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from kai_bridge.errors import ToolError
from kai_bridge.http.app import build_sidecar_app
from kai_bridge.mcp.events import RECENT_EVENTS_URI, events_extension
from kai_bridge.mcp.knowledge import extensions_for
from kai_bridge.mcp.server import build_mcp_server
from kai_bridge.runtime import Runtime, open_runtime
from kai_bridge.sandbox import (
    COFFEE_BOT_ID,
    PLUGIN_BOT_ID,
    SandboxConfig,
    SandboxHandle,
    sandbox_context,
    start_sandbox,
)
from kai_bridge.store.base import InboxEvent
from kai_bridge.tools.registry import ToolRegistry
from tests.bridge import knowledge_base, knowledge_service
from tests.mcp.http_harness import serving
from tests.webhooks.support import open_door, seed_body, settings_for, sign, token, wait_for

pytestmark = pytest.mark.e2e


@contextlib.asynccontextmanager
async def coze_sandbox() -> AsyncIterator[tuple[SandboxHandle, httpx.AsyncClient, str]]:
    pat = f"pat_{secrets.token_hex(16)}"
    config = SandboxConfig(pats=[pat], callback_retry_delays=(0.05, 0.2), follow_up=False)
    knowledge_base()  # loaded once per session, before the clock of the first test starts
    async with start_sandbox(config) as sandbox, httpx.AsyncClient(
        base_url=sandbox.base_url, headers={"Authorization": f"Bearer {pat}"}, timeout=15
    ) as api:
        yield sandbox, api, pat


async def ok(response: httpx.Response) -> Any:
    body = response.json()
    assert body["code"] == 0, body
    return body["data"]


@contextlib.asynccontextmanager
async def bridge(tmp_path: Path, sandbox: SandboxHandle, pat: str, **webhook: Any) -> AsyncIterator[
    tuple[Runtime, str]
]:
    settings = settings_for(tmp_path, coze_api_base=sandbox.base_url, coze_pat=pat, coze_bot_id=COFFEE_BOT_ID,
                            **webhook)
    async with open_runtime(settings, dispatch_events=True) as runtime, serving(runtime) as base:
        yield runtime, base


async def events_of(runtime: Runtime) -> list[InboxEvent]:
    found = []
    for summary in await runtime.store.list_events(limit=1000):
        event = await runtime.store.get_event(event_id=summary.id)
        assert event is not None
        found.append(event)
    return found


async def test_coze_bot_events_from_the_sandbox_become_bot_state_and_a_deleted_bot_is_refused(tmp_path: Path) -> None:
    async with coze_sandbox() as (sandbox, api, pat):
        app = await ok(await api.post("/v1/api_apps", json={"app_type": "normal", "name": "kai-bridge"}))
        async with bridge(tmp_path, sandbox, pat, webhook_verify_token=app["verify_token"]) as (runtime, base):
            await ok(await api.put(f"/v1/api_apps/{app['id']}", json={"callback_url": f"{base}/webhook/coze"}))
            await ok(await api.post(f"/v1/api_apps/{app['id']}/events",
                                    json={"event_types": ["bot.published", "bot.deleted"]}))
            await ok(await api.post("/v1/bot/publish", json={"bot_id": COFFEE_BOT_ID, "connector_ids": ["1024"]}))

            async def bot_is(state: str) -> bool:
                found = await runtime.store.get_bot_state(bot_id=COFFEE_BOT_ID)
                return found is not None and found.state == state

            await wait_for(lambda: bot_is("published"), service=runtime.webhooks)
            async with httpx.AsyncClient(base_url=base) as http:
                diagnostics = (await http.get("/diagnostics/coze")).json()
            assert [(b["bot_id"], b["state"], b["bot_name"]) for b in diagnostics["bots"]] == [
                (COFFEE_BOT_ID, "published", "Coffee Expert")]
            assert diagnostics["webhook"]["modes"] == ["coze-signature"]

            await ok(await api.delete(f"/v1/bots/{COFFEE_BOT_ID}"))
            await wait_for(lambda: bot_is("deleted"), service=runtime.webhooks)
            with pytest.raises(ToolError, match=rf"the Coze bot {COFFEE_BOT_ID} \(Coffee Expert\) was deleted") as info:
                await runtime.registry.call("send_message", {"message": "hello?"})
            assert "bot.deleted" in str(info.value)
            with pytest.raises(ToolError, match="was deleted"):
                await runtime.registry.call("create_conversation", {"bot_id": COFFEE_BOT_ID})
            other = await runtime.registry.call("create_conversation", {"bot_id": PLUGIN_BOT_ID})
            assert other["bot_id"] == PLUGIN_BOT_ID

            events = await events_of(runtime)
        deliveries = list(sandbox_context(sandbox.app).callbacks.deliveries)
    assert sorted(e.event_type for e in events) == ["bot.deleted", "bot.published"]
    assert {(e.status, e.attempts, e.source) for e in events} == {("done", 1, "coze")}
    assert [(d.status, len(d.attempts)) for d in deliveries] == [("delivered", 1), ("delivered", 1)]
    header_ids = {json.loads(e.body)["header"]["event_id"] for e in events}
    assert header_ids == {d.event_id for d in deliveries}


async def test_a_re_sent_callback_is_a_duplicate_even_after_a_restart(tmp_path: Path) -> None:
    async with coze_sandbox() as (sandbox, api, pat):
        app = await ok(await api.post("/v1/api_apps", json={"app_type": "normal", "name": "kai-bridge"}))
        async with bridge(tmp_path, sandbox, pat, webhook_verify_token=app["verify_token"]) as (_, base):
            await ok(await api.put(f"/v1/api_apps/{app['id']}", json={"callback_url": f"{base}/webhook/coze"}))
            await ok(await api.post(f"/v1/api_apps/{app['id']}/events", json={"event_types": ["bot.published"]}))
            await ok(await api.post("/v1/bot/publish", json={"bot_id": COFFEE_BOT_ID}))
            [delivery] = sandbox_context(sandbox.app).callbacks.deliveries
            with anyio.fail_after(10):
                await delivery.done.wait()
            first_id = delivery.answer["id"]
        async with bridge(tmp_path, sandbox, pat, webhook_verify_token=app["verify_token"]) as (runtime, base), \
                httpx.AsyncClient(base_url=base) as http:
            again = await http.post("/webhook/coze", content=delivery.body,
                                    headers=sign(delivery.body, app["verify_token"]))
            assert again.json() == {"ok": True, "id": first_id, "duplicate": True}
            assert len(await runtime.store.list_events()) == 1


async def test_the_seed_guides_bearer_request_is_routed_to_a_tool_and_recorded(tmp_path: Path) -> None:
    bearer = token()
    route = {"name": "ask-coffee", "event_type": "conversation.message", "tool": "coffee_knowledge_query",
             "arguments": {"query": "${data.message}"}}
    async with coze_sandbox() as (sandbox, _api, pat), bridge(
        tmp_path, sandbox, pat, webhook_token=bearer, webhook_routes=[route]
    ) as (runtime, base), httpx.AsyncClient(base_url=base) as http:
        # The seed guide's step 5.2, as its Python sends it.
        response = await http.post("/webhook/coze", json={"event": "conversation.message", "data": {
            "conversation_id": "conv_123", "message": "How should I store coffee beans?"}},
            headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"})
        assert response.status_code == 200
        event_id = response.json()["id"]

        async def done() -> bool:
            found = await runtime.store.get_event(event_id=event_id)
            return found is not None and found.status == "done"

        await wait_for(done, service=runtime.webhooks)
        event = await runtime.store.get_event(event_id=event_id)
        recorded = await runtime.store.list_conversation_events(conversation_id="conv_123")
        refused = await http.post("/webhook/coze", content=seed_body(), headers={"Authorization": "Bearer nope"})
    assert event is not None
    routed = json.loads(event.result or "")["handlers"]["route:ask-coffee"]["result"]
    assert routed["tool"] == "coffee_knowledge_query"
    assert routed["result"]["found"] is True
    assert [r.message for r in recorded] == ["How should I store coffee beans?"]
    assert refused.status_code == 401


async def test_the_stdio_sidecar_serves_the_webhook_too(tmp_path: Path) -> None:
    bearer = token()
    settings = settings_for(tmp_path, webhook_token=bearer)
    async with open_runtime(settings) as runtime:
        transport = httpx.ASGITransport(app=build_sidecar_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8081") as http:
            response = await http.post("/webhook/coze", content=seed_body(),
                                       headers={"Authorization": f"Bearer {bearer}"})
        stored = await runtime.store.list_events()
    assert response.status_code == 200
    assert [e.event_type for e in stored] == ["conversation.message"]


async def test_an_mcp_client_over_http_hears_that_the_recent_events_changed(tmp_path: Path) -> None:
    bearer = token()
    updated = anyio.Event()
    seen: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            seen.append(message.params.uri)
            updated.set()

    async with coze_sandbox() as (sandbox, _api, pat), bridge(tmp_path, sandbox, pat, webhook_token=bearer) as (
        _runtime, base
    ), httpx.AsyncClient(base_url=base) as http, httpx2.AsyncClient(timeout=30) as mcp_http, streamable_http_client(
        f"{base}/mcp", http_client=mcp_http
    ) as (read, write), ClientSession(read, write, message_handler=on_message) as session:
        init = await session.initialize()
        assert init.capabilities.resources is not None
        assert init.capabilities.resources.subscribe is True
        listed = [r.uri for r in (await session.list_resources()).resources]
        assert RECENT_EVENTS_URI in listed
        assert any(uri.startswith("coffee://articles/") for uri in listed)  # the knowledge ones are kept
        with pytest.warns(MCPDeprecationWarning, match="resources/subscribe"):  # the handshake era's way
            await session.subscribe_resource(RECENT_EVENTS_URI)
        response = await http.post("/webhook/coze", content=seed_body(message="tell the agents"),
                                   headers={"Authorization": f"Bearer {bearer}"})
        with anyio.fail_after(10):
            await updated.wait()
        read_back = await session.read_resource(RECENT_EVENTS_URI)
        one = await session.read_resource(f"kai-bridge://events/{response.json()['id']}")
    assert RECENT_EVENTS_URI in seen
    [content] = read_back.contents
    assert isinstance(content, types.TextResourceContents)
    recent = json.loads(content.text)
    assert recent["events"][0]["id"] == response.json()["id"]
    assert recent["events"][0]["event_type"] == "conversation.message"
    [full] = one.contents
    assert isinstance(full, types.TextResourceContents)
    assert json.loads(full.text)["body"]["data"]["message"] == "tell the agents"


async def test_a_2026_client_hears_about_new_events_through_listen(tmp_path: Path) -> None:
    async with open_door(tmp_path) as door:
        server = build_mcp_server(ToolRegistry(), extensions=[events_extension(door.service.feed)])
        async with Client(server) as client, client.listen(resource_subscriptions=[RECENT_EVENTS_URI]) as sub:
            await door.bearer_post(seed_body())
            with anyio.fail_after(10):
                async for event in sub:
                    assert getattr(event, "uri", None) == RECENT_EVENTS_URI
                    break
            with pytest.raises(Exception, match="no such event"):
                await client.read_resource("kai-bridge://events/ev-missing")


@pytest.mark.parametrize(
    ("dispatch", "expected"),
    [pytest.param(None, True, id="default-dispatches"), pytest.param(False, False, id="ingest-only")],
)
async def test_serve_dispatches_unless_told_another_process_does(tmp_path: Path, dispatch: bool | None,
                                                                expected: bool) -> None:
    from kai_bridge.cmd.serve import serve

    overrides: dict[str, Any] = {"webhook_token": token(), "server_port": 0}
    if dispatch is not None:
        overrides["webhook_dispatch"] = dispatch
    settings = settings_for(tmp_path, **overrides)
    started: list[str] = []
    up = anyio.Event()

    def on_started(url: str) -> None:
        started.append(url.removesuffix("/mcp"))
        up.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve(settings, handle_signals=False, on_started=on_started))
        with anyio.fail_after(30):
            await up.wait()
        async with httpx.AsyncClient(base_url=started[0]) as http:
            webhook = (await http.get("/diagnostics/coze")).json()["webhook"]
        tg.cancel_scope.cancel()
    assert webhook["dispatching"] is expected


@pytest.mark.filterwarnings("ignore::mcp.MCPDeprecationWarning")
async def test_only_resources_that_change_can_be_subscribed_to(tmp_path: Path) -> None:
    """A subscription that would never hear a thing is refused with a reason; the events' are kept."""
    async with open_door(tmp_path) as door:
        extensions = [*extensions_for(knowledge_service()), events_extension(door.service.feed)]
        server = build_mcp_server(ToolRegistry(), extensions=extensions)
        stored = await door.bearer_post(seed_body())
        event_uri = f"kai-bridge://events/{stored.json()['id']}"
        async with Client(server, mode="legacy") as client:  # the handshake era's resources/subscribe
            await client.subscribe_resource(RECENT_EVENTS_URI)
            await client.subscribe_resource(event_uri)
            await client.unsubscribe_resource(event_uri)
            with pytest.raises(MCPError, match="Unknown resource: test://watched-resource"):
                await client.subscribe_resource("test://watched-resource")
            with pytest.raises(MCPError, match="no such event"):
                await client.subscribe_resource("kai-bridge://events/ev-missing")
            with pytest.raises(MCPError, match="never changes"):
                await client.subscribe_resource("coffee://articles/origin-ethiopia")
