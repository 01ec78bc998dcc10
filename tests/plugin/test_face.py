"""The Coze plugin face: Service token, caller identity, errors the model can read, bounded calls, limits."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from kai_bridge.errors import KnowledgeError
from kai_bridge.limits import RateLimit
from kai_bridge.plugin import PluginFace, PluginOptions
from kai_bridge.runtime import Runtime
from kai_bridge.sandbox import COFFEE_BOT_ID
from kai_bridge.tools.registry import Tool, ToolAnnotations, ToolContext, ToolRegistry, typed_tool
from tests.bridge import open_bridge, running_sandbox
from tests.plugin.conftest import FakeClock, face_client

COZE_HEADERS = {
    "X-Tt-Logid": "20261201093012ABCDEF0123456789",
    "X-Aiplugin-Connector-Identifier": "alice",
    "X-AIPlugin-Bot-ID": "7390000000000000777",
    "X-AIPlugin-Conversation-ID": "7390000000000000888",
    "X-AIPlugin-ID": "7390000000000000999",
}
READ_ONLY = ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=False)


class Empty(BaseModel):
    pass


class CallerOut(BaseModel):
    door: str
    id: str | None
    coze_user: str | None = None
    coze_bot: str | None = None
    coze_conversation: str | None = None
    coze_logid: str | None = None
    coze_plugin: str | None = None


def probe_tool() -> Tool:
    async def run(params: Empty, ctx: ToolContext) -> CallerOut:
        coze = ctx.caller.coze
        return CallerOut(
            door=ctx.caller.door,
            id=ctx.caller_id,
            coze_user=coze.user_id if coze else None,
            coze_bot=coze.bot_id if coze else None,
            coze_conversation=coze.conversation_id if coze else None,
            coze_logid=coze.logid if coze else None,
            coze_plugin=coze.plugin_id if coze else None,
        )

    return typed_tool(name="probe_caller", title="Who calls", description="Says who calls.", input_model=Empty,
                      output_model=CallerOut, annotations=READ_ONLY, func=run)


def failing_tool() -> Tool:
    async def run(params: Empty, ctx: ToolContext) -> Empty:
        raise KnowledgeError("the knowledge index is being rebuilt; ask again in a minute")

    return typed_tool(name="always_fails", title="Fails", description="Fails.", input_model=Empty,
                      output_model=Empty, annotations=READ_ONLY, func=run)


def stuck_tool(release: anyio.Event) -> Tool:
    async def run(params: Empty, ctx: ToolContext) -> Empty:
        await release.wait()
        return Empty()

    return typed_tool(name="stuck", title="Stuck", description="Never ends by itself.", input_model=Empty,
                      output_model=Empty, annotations=READ_ONLY, func=run, timeout=3600)


def raw_tool(result: dict[str, Any]) -> Tool:
    async def handler(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return result

    return Tool(name="kai.count", title="Count", description="Counts.",
                input_schema={"type": "object", "properties": {}},
                output_schema={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
                annotations=READ_ONLY, handler=handler)


def registry_with(*tools: Tool) -> ToolRegistry:
    registry = ToolRegistry(default_timeout=30)
    for tool in tools:
        registry.add(tool)
    return registry


# ---- a call ------------------------------------------------------------------------------------
async def test_a_plugin_call_answers_what_the_registry_answers(bridge: Runtime, token: str) -> None:
    args = {"query": "what is a washed process", "top_k": 2}
    expected = await bridge.registry.call("coffee_knowledge_query", args)
    async with face_client(bridge.registry, token=token) as (_, http):
        response = await http.post("/plugin/tools/coffee_knowledge_query", json=args,
                                   headers={"Authorization": f"Bearer {token}", **COZE_HEADERS})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == expected
    assert response.json()["found"] is True


async def test_null_values_are_left_out_of_an_answer() -> None:
    async with face_client(registry_with(probe_tool())) as (_, http):
        body = (await http.post("/plugin/tools/probe_caller", json={})).json()
    assert body == {"door": "plugin"}  # id and every coze_* field were None


# ---- the Service token --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "headers", "query", "status"),
    [
        pytest.param({}, {"Authorization": "Bearer {t}"}, None, 200, id="bearer-header"),
        pytest.param({}, {"authorization": "bearer {t}"}, None, 200, id="case-insensitive"),
        pytest.param({}, {"Authorization": "{t}"}, None, 401, id="authorization-without-bearer"),
        pytest.param({}, {"Authorization": "Bearer {t}x"}, None, 401, id="wrong-token"),
        pytest.param({}, {}, None, 401, id="missing"),
        pytest.param({"token_header": "X-Api-Key"}, {"X-Api-Key": "{t}"}, None, 200, id="custom-header-bare"),
        pytest.param({"token_header": "X-Api-Key"}, {"Authorization": "Bearer {t}"}, None, 401,
                     id="custom-header-ignores-authorization"),
        pytest.param({"token_query": "kai_token"}, {}, "kai_token", 200, id="query-when-enabled"),
        pytest.param({}, {}, "plugin_token", 401, id="query-off-by-default"),
    ],
)
async def test_the_service_token_is_checked_where_configured(
    token: str, options: dict[str, Any], headers: dict[str, str], query: str | None, status: int
) -> None:
    sent = {k: v.format(t=token) for k, v in headers.items()}
    params = {query: token} if query else None
    async with face_client(registry_with(probe_tool()), token=token, **options) as (_, http):
        response = await http.post("/plugin/tools/probe_caller", json={}, headers=sent, params=params)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error_code"] == "unauthorized"
        assert token not in response.text


async def test_a_401_tells_where_the_token_goes(token: str) -> None:
    async with face_client(registry_with(probe_tool()), token=token) as (_, http):
        response = await http.post("/plugin/tools/probe_caller", json={})
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"] == "missing plugin token (send it in the Authorization header)"


@pytest.mark.parametrize(
    ("open_without_token", "peer", "headers"),
    [
        pytest.param(False, ("127.0.0.1", 1), {}, id="server-beyond-loopback"),
        pytest.param(True, ("203.0.113.7", 1), {}, id="peer-beyond-loopback"),
        pytest.param(True, ("127.0.0.1", 1), {"X-Forwarded-For": "203.0.113.7"}, id="came-through-a-proxy"),
        pytest.param(True, ("127.0.0.1", 1), {"Forwarded": "for=203.0.113.7"}, id="forwarded-header"),
    ],
)
async def test_without_a_token_the_face_is_off_beyond_loopback(
    open_without_token: bool, peer: tuple[str, int], headers: dict[str, str]
) -> None:
    async with face_client(registry_with(probe_tool()), client=peer, open_without_token=open_without_token) as (_, http):
        response = await http.post("/plugin/tools/probe_caller", json={}, headers=headers)
        spec = await http.get("/plugin/openapi.json", params={"server_url": "https://kai.example.com"}, headers=headers)
    assert response.status_code == 403
    assert response.json()["error_code"] == "plugin_face_off"
    assert "KAI_BRIDGE_PLUGIN_TOKEN" in response.json()["error"]
    assert spec.status_code == 403


async def test_without_a_token_a_local_caller_is_served() -> None:
    async with face_client(registry_with(probe_tool()), client=("::1", 1)) as (_, http):
        response = await http.post("/plugin/tools/probe_caller", json={})
    assert response.status_code == 200


# ---- who is calling -----------------------------------------------------------------------------
async def test_coze_plugin_headers_reach_the_tool_as_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kai_bridge.plugin")
    async with face_client(registry_with(probe_tool())) as (_, http):
        body = (await http.post("/plugin/tools/probe_caller", json={}, headers=COZE_HEADERS)).json()
    assert body == {
        "door": "plugin",
        "id": "coze-user:alice",
        "coze_user": "alice",
        "coze_bot": COZE_HEADERS["X-AIPlugin-Bot-ID"],
        "coze_conversation": COZE_HEADERS["X-AIPlugin-Conversation-ID"],
        "coze_logid": COZE_HEADERS["X-Tt-Logid"],
        "coze_plugin": COZE_HEADERS["X-AIPlugin-ID"],
    }
    line = next(r.getMessage() for r in caplog.records if r.name == "kai_bridge.plugin")
    assert "probe_caller" in line
    assert "coze-user:alice" in line
    assert COZE_HEADERS["X-AIPlugin-Bot-ID"] in line
    assert COZE_HEADERS["X-Tt-Logid"] in line


async def test_control_characters_in_coze_headers_never_reach_the_logs() -> None:
    async with face_client(registry_with(probe_tool())) as (_, http):
        body = (await http.post("/plugin/tools/probe_caller", json={},
                                headers={"X-Aiplugin-Connector-Identifier": "bob\tfake log line" + "x" * 300})).json()
    assert body["coze_user"] == ("bobfake log line" + "x" * 300)[:128]


async def test_a_conversation_tool_called_by_a_coze_bot_serves_the_coze_user(bridge: Runtime) -> None:
    async with face_client(bridge.registry) as (_, http):
        response = await http.post("/plugin/tools/send_message", json={"message": "What is a V60?"},
                                   headers=COZE_HEADERS)
    body = response.json()
    assert body["answer"]
    stored = await bridge.store.get_conversation(user_id="coze-user:alice", bot_id=COFFEE_BOT_ID)
    assert stored == body["conversation_id"]
    assert await bridge.store.get_conversation(user_id="default", bot_id=COFFEE_BOT_ID) is None


# ---- errors the model can read ------------------------------------------------------------------
CALLERS = [pytest.param(COZE_HEADERS, id="coze-caller"), pytest.param({}, id="other-caller")]


@pytest.mark.parametrize("headers", CALLERS)
@pytest.mark.parametrize(
    ("tool", "body", "code", "words"),
    [
        pytest.param("coffee_knowledge_query", {"query": ""}, "invalid_arguments", "'query'", id="bad-argument"),
        pytest.param("coffee_knowledge_query", {"query": "x", "colour": 1}, "invalid_arguments", "'colour'",
                     id="unknown-argument"),
        pytest.param("coffee_knowledge_query", [1, 2], "invalid_arguments", "JSON object", id="not-an-object"),
        pytest.param("always_fails", {}, "tool_failed", "ask again in a minute", id="tool-failed"),
    ],
)
async def test_a_tool_error_is_a_200_with_error_and_error_code(
    bridge: Runtime, headers: dict[str, str], tool: str, body: Any, code: str, words: str
) -> None:
    bridge.registry.add(failing_tool())
    async with face_client(bridge.registry) as (_, http):
        response = await http.post(f"/plugin/tools/{tool}", json=body, headers=headers)
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"error", "error_code"}
    assert answer["error_code"] == code
    assert words in answer["error"]


@pytest.mark.parametrize("headers", CALLERS)
@pytest.mark.parametrize(
    ("path", "content", "status", "code"),
    [
        pytest.param("/plugin/tools/no_such_tool", b"{}", 404, "unknown_tool", id="unknown-tool"),
        pytest.param("/plugin/tools/probe_caller", b"{not json", 400, "invalid_json", id="not-json"),
        pytest.param("/plugin/tools/probe_caller", b"[" * 2_000_000, 413, "body_too_large", id="too-large"),
    ],
)
async def test_a_request_refused_before_any_tool_runs_is_a_4xx_with_the_same_fields(
    headers: dict[str, str], path: str, content: bytes, status: int, code: str
) -> None:
    async with face_client(registry_with(probe_tool())) as (_, http):
        response = await http.post(path, content=content, headers={"Content-Type": "application/json", **headers})
    assert response.status_code == status
    assert response.json()["error_code"] == code
    assert response.json()["error"]


async def test_an_unknown_tool_error_lists_the_tools_there_are() -> None:
    async with face_client(registry_with(probe_tool(), failing_tool()), tools=("probe_caller",)) as (_, http):
        hidden = await http.post("/plugin/tools/always_fails", json={})
    assert hidden.status_code == 404
    assert hidden.json()["error"] == "unknown tool 'always_fails'; available tools: probe_caller"


@pytest.mark.parametrize(
    ("result", "code"),
    [pytest.param({"n": 3}, None, id="matches"), pytest.param({"n": "three"}, "tool_failed", id="does-not-match")],
)
async def test_an_upstream_tool_result_is_checked_against_its_output_schema(result: dict[str, Any],
                                                                           code: str | None) -> None:
    async with face_client(registry_with(raw_tool(result))) as (_, http):
        answer = (await http.post("/plugin/tools/kai.count", json={})).json()
    assert answer.get("error_code") == code
    if code is None:
        assert answer == result


# ---- bounded calls ------------------------------------------------------------------------------
async def test_a_short_tool_that_overruns_is_stopped_at_the_wait() -> None:
    release = anyio.Event()
    async with face_client(registry_with(stuck_tool(release)), wait=0.2) as (_, http):
        with anyio.fail_after(10):
            answer = (await http.post("/plugin/tools/stuck", json={})).json()
    assert answer["error_code"] == "timeout"
    assert "0.2 s" in answer["error"]


async def test_a_long_chat_answers_pending_then_its_result_is_polled(tmp_path: Any) -> None:
    # Chunks 0.2 s apart: the answer (dozens of chunks) takes seconds, far past the 0.5 s wait.
    async with running_sandbox(stream_chunk_delay=0.2) as (handle, _coze), open_bridge(
        sandbox=handle, db_path=tmp_path / "kb.db"
    ) as bridge, face_client(bridge.registry, wait=0.5) as (face, http):
        with anyio.fail_after(10):
            first = await http.post("/plugin/tools/send_message", json={"message": "How do I brew pour-over coffee?"},
                                    headers=COZE_HEADERS)
        pending = first.json()["pending"]
        assert first.status_code == 200
        assert set(first.json()) == {"pending"}
        assert pending["status"] == "in_progress"
        assert pending["tool"] == "get_chat_result"
        chat_id = pending["arguments"]["chat_id"]
        assert chat_id in pending["message"]
        with anyio.fail_after(60):
            await face.drain()  # the chat went on in the background until Coze finished it
        polled = (await http.post("/plugin/tools/get_chat_result", json=pending["arguments"])).json()
    assert polled["status"] == "completed"
    assert polled["chat_id"] == chat_id
    assert polled["answer"]


# ---- limits -------------------------------------------------------------------------------------
async def test_an_eleventh_quick_call_is_refused_with_429_and_retry_after() -> None:
    clock = FakeClock()
    async with face_client(registry_with(probe_tool()), clock=clock) as (_, http):
        codes = [(await http.post("/plugin/tools/probe_caller", json={}, headers=COZE_HEADERS)).status_code
                 for _ in range(11)]
        refused = await http.post("/plugin/tools/probe_caller", json={}, headers=COZE_HEADERS)
        other_user = await http.post("/plugin/tools/probe_caller", json={},
                                     headers={**COZE_HEADERS, "X-Aiplugin-Connector-Identifier": "bob"})
        clock.now += 1.0  # one token back at 60 a minute
        again = await http.post("/plugin/tools/probe_caller", json={}, headers=COZE_HEADERS)
    assert codes == [200] * 10 + [429]
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error_code"] == "rate_limited"
    assert "60 requests per minute (burst 10) per client on the Coze plugin face" in refused.json()["error"]
    assert other_user.status_code == 200
    assert again.status_code == 200


async def test_the_plugin_limit_is_configurable() -> None:
    limit = RateLimit(door="Coze plugin face", per_minute=6, burst=2)
    async with face_client(registry_with(probe_tool()), rate_limit=limit) as (_, http):
        codes = [(await http.post("/plugin/tools/probe_caller", json={})).status_code for _ in range(3)]
        refused = await http.post("/plugin/tools/probe_caller", json={})
    assert codes == [200, 200, 429]
    assert refused.headers["retry-after"] == "10"


def test_the_face_exposes_its_routes() -> None:
    face = PluginFace(registry=registry_with(probe_tool()), options=PluginOptions())
    paths = sorted(getattr(route, "path", "") for route in face.routes())
    assert paths == ["/plugin/openapi.json", "/plugin/openapi.yaml", "/plugin/tools/{name}"]


def pollable_without_handle(cancelled: list[bool]) -> Tool:
    async def run(params: Empty, ctx: ToolContext) -> Empty:
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise
        return Empty()

    return typed_tool(name="never_starts", title="Never starts", description="Waits forever without a handle.",
                      input_model=Empty, output_model=Empty, annotations=READ_ONLY, func=run, timeout=3600,
                      poll_with="probe_caller")


async def test_a_long_call_with_no_handle_yet_is_stopped_at_the_wait() -> None:
    cancelled: list[bool] = []
    async with face_client(registry_with(probe_tool(), pollable_without_handle(cancelled)), wait=0.2) as (face, http):
        with anyio.fail_after(10):
            answer = (await http.post("/plugin/tools/never_starts", json={})).json()
            await face.drain()
    assert answer["error_code"] == "timeout"
    assert cancelled == [True]  # nothing was left running with no way to fetch its result


async def test_serving_a_long_tool_serves_the_tool_that_polls_it(bridge: Runtime) -> None:
    async with face_client(bridge.registry, tools=("send_message",)) as (_, http):
        poll = await http.post("/plugin/tools/get_chat_result", json={"chat_id": "123"})
        hidden = await http.post("/plugin/tools/coffee_knowledge_query", json={"query": "x"})
        spec = await http.get("/plugin/openapi.json")
        refused = await http.get("/plugin/openapi.json", params={"tools": "coffee_knowledge_query"})
    assert poll.status_code == 200
    assert poll.json()["error_code"] == "tool_failed"  # no such chat: but the tool is there
    assert hidden.status_code == 404
    assert sorted(spec.json()["paths"]) == ["/plugin/tools/get_chat_result", "/plugin/tools/send_message"]
    assert refused.status_code == 400
    assert "not served" in refused.json()["error"]


async def test_a_tool_name_with_a_newline_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="kai_bridge.plugin")
    async with face_client(registry_with(probe_tool())) as (_, http):
        response = await http.post("/plugin/tools/x%0A2026-01-01 INFO forged", json={})
    assert response.status_code == 404
    assert all("\n" not in r.getMessage() for r in caplog.records)
