"""Injected faults, each observed from a plain httpx client on a real socket."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from kai_bridge.sandbox import COFFEE_BOT_ID, FaultRule, SandboxHandle
from tests.sandbox.conftest import SandboxFactory
from tests.sandbox.support import ADMIN_TOKEN, PAT, parse_sse

AUTH = {"Authorization": f"Bearer {PAT}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
QUESTION = [{"role": "user", "content": "How do I store beans?", "content_type": "text"}]
CHAT = {"bot_id": COFFEE_BOT_ID, "user_id": "u", "stream": True, "additional_messages": QUESTION}


def bots_params(handle: SandboxHandle) -> dict[str, str]:
    return {"workspace_id": handle.workspace_id}


async def test_latency_delays_only_the_matching_route(make_sandbox: SandboxFactory) -> None:
    rule = FaultRule(route="bots.list", latency_ms=300)
    async with make_sandbox(faults=[rule]) as handle, httpx.AsyncClient(base_url=handle.base_url, headers=AUTH) as http:
        started = time.perf_counter()
        slow = await http.get("/v1/bots", params=bots_params(handle))
        elapsed = time.perf_counter() - started
        other = await http.get("/v1/bot/get_online_info", params={"bot_id": COFFEE_BOT_ID})

    assert slow.status_code == 200
    assert other.status_code == 200
    assert elapsed >= 0.3
    assert handle.state.faults_injected == {"latency": 1}


@pytest.mark.parametrize("status", [500, 503])
async def test_an_error_rate_of_one_answers_5000_with_the_chosen_status(
    make_sandbox: SandboxFactory, status: int
) -> None:
    rule = FaultRule(route="chat.create", error_rate=1.0, error_status=status)
    async with make_sandbox(faults=[rule]) as handle, httpx.AsyncClient(base_url=handle.base_url, headers=AUTH) as http:
        response = await http.post("/v3/chat", json=CHAT)

    assert response.status_code == status
    assert response.json()["code"] == 5000
    assert response.headers["x-tt-logid"] == response.json()["detail"]["logid"]
    assert handle.state.chats_created == 0


async def test_rate_limit_answers_429_4013_with_retry_after(make_sandbox: SandboxFactory) -> None:
    rule = FaultRule(route="/v1/bots", rate_limit_rate=1.0, retry_after=7)
    async with make_sandbox(faults=[rule]) as handle, httpx.AsyncClient(base_url=handle.base_url, headers=AUTH) as http:
        response = await http.get("/v1/bots", params=bots_params(handle))

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["code"] == 4013


async def test_a_dropped_connection_is_a_transport_error_and_the_server_keeps_serving(
    make_sandbox: SandboxFactory,
) -> None:
    rule = FaultRule(route="conversations.*", drop_rate=1.0, times=1)
    async with make_sandbox(faults=[rule]) as handle, httpx.AsyncClient(base_url=handle.base_url, headers=AUTH) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/v1/conversation/create", json={})
        after = await http.post("/v1/conversation/create", json={})

    assert after.status_code == 200
    assert handle.state.faults_injected["drop"] == 1


async def test_a_dropped_stream_request_sends_no_byte(make_sandbox: SandboxFactory) -> None:
    rule = FaultRule(route="chat.create", drop_rate=1.0)
    async with make_sandbox(faults=[rule]) as handle, httpx.AsyncClient(base_url=handle.base_url, headers=AUTH) as http:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending"):
            async with http.stream("POST", "/v3/chat", json=CHAT):
                pass


async def test_a_cut_stream_delivers_some_events_then_breaks_without_done(make_sandbox: SandboxFactory) -> None:
    rule = FaultRule(route="chat.create", cut_stream_after_events=3)
    received = bytearray()

    async def read_stream(http: httpx.AsyncClient) -> None:
        async with http.stream("POST", "/v3/chat", json=CHAT) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_bytes():
                received.extend(chunk)

    async with make_sandbox(faults=[rule]) as handle, httpx.AsyncClient(base_url=handle.base_url, headers=AUTH) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await read_stream(http)
    frames = parse_sse(bytes(received))

    assert [f.event for f in frames] == [
        "conversation.chat.created",
        "conversation.chat.in_progress",
        "conversation.message.delta",
    ]
    assert handle.state.faults_injected["cut_stream"] == 1


async def test_a_failed_chat_fault_sends_chat_failed_mid_answer(make_sandbox: SandboxFactory) -> None:
    rule = FaultRule(route="chat.create", fail_chat_rate=1.0)
    async with make_sandbox(faults=[rule]) as handle, httpx.AsyncClient(base_url=handle.base_url, headers=AUTH) as http:
        response = await http.post("/v3/chat", json=CHAT)

    events = [f.event for f in parse_sse(response.content)]
    assert "conversation.message.delta" in events
    assert events[-2:] == ["conversation.chat.failed", "done"]
    assert "conversation.chat.completed" not in events
    failed = parse_sse(response.content)[-2].json()
    assert failed["last_error"]["code"] == 5000


async def statuses(handle: SandboxHandle, n: int) -> list[int]:
    async with httpx.AsyncClient(base_url=handle.base_url, headers=AUTH) as http:
        return [(await http.get("/v1/bots", params=bots_params(handle))).status_code for _ in range(n)]


async def test_the_same_seed_gives_the_same_faults(make_sandbox: SandboxFactory) -> None:
    rule = FaultRule(route="bots.list", error_rate=0.5)
    async with make_sandbox(faults=[rule], seed=42) as first:
        a = await statuses(first, 20)
    async with make_sandbox(faults=[rule], seed=42) as second:
        b = await statuses(second, 20)

    assert a == b
    assert set(a) == {200, 500}


async def test_times_limits_a_rule_to_the_next_requests(make_sandbox: SandboxFactory) -> None:
    rule = FaultRule(route="*", error_rate=1.0, times=2)
    async with make_sandbox(faults=[rule]) as handle:
        got = await statuses(handle, 4)

    assert got == [500, 500, 200, 200]


async def test_admin_routes_set_list_and_clear_faults_and_show_state(sandbox: SandboxHandle) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
        added = await http.post(
            "/_sandbox/faults",
            json={"route_pattern": "bots.list", "rate_limit_rate": 1.0, "retry_after": 3},
            headers=ADMIN,
        )
        limited = await http.get("/v1/bots", params=bots_params(sandbox), headers=AUTH)
        listed = await http.get("/_sandbox/faults", headers=ADMIN)
        cleared = await http.delete("/_sandbox/faults", headers=ADMIN)
        fine = await http.get("/v1/bots", params=bots_params(sandbox), headers=AUTH)
        state = await http.get("/_sandbox/state", headers=ADMIN)

    assert added.status_code == 200
    assert added.json()["data"]["rules"][0]["route"] == "bots.list"
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"
    assert len(listed.json()["data"]["rules"]) == 1
    assert cleared.json()["data"]["rules"] == []
    assert fine.status_code == 200
    counters: dict[str, Any] = state.json()["data"]
    assert counters["requests"]["bots.list"] == 2
    assert counters["faults_injected"] == {"rate_limit": 1}


async def test_admin_routes_need_the_admin_token(sandbox: SandboxHandle) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
        no_token = await http.get("/_sandbox/state")
        pat = await http.delete("/_sandbox/faults", headers=AUTH)

    assert no_token.status_code == 401
    assert no_token.json()["code"] == 4100
    assert pat.status_code == 401


async def test_admin_routes_reject_bad_rules(sandbox: SandboxHandle) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url, headers=ADMIN) as http:
        unknown = await http.post("/_sandbox/faults", json={"route": "*", "explode": True})
        bad_rate = await http.post("/_sandbox/faults", json={"route": "*", "error_rate": 2})
        not_json = await http.post("/_sandbox/faults", content=b"{")

    assert unknown.status_code == 400
    assert "explode" in unknown.json()["msg"]
    assert bad_rate.status_code == 400
    assert "error_rate" in bad_rate.json()["msg"]
    assert not_json.status_code == 400
    assert not_json.json()["code"] == 4000


async def test_admin_routes_do_not_exist_unless_enabled(make_sandbox: SandboxFactory) -> None:
    async with make_sandbox(admin_enabled=False) as handle, httpx.AsyncClient(base_url=handle.base_url) as http:
        response = await http.get("/_sandbox/state", headers=ADMIN)

    assert response.status_code == 404


async def test_faults_never_block_the_admin_routes(make_sandbox: SandboxFactory) -> None:
    rule = FaultRule(route="*", error_rate=1.0)
    async with (
        make_sandbox(faults=[rule]) as handle,
        httpx.AsyncClient(base_url=handle.base_url, headers=ADMIN) as http,
    ):
        cleared = await http.delete("/_sandbox/faults")

    assert cleared.status_code == 200


async def test_the_admin_chats_route_lists_each_chat_with_its_questions_meta_data(sandbox: SandboxHandle) -> None:
    tagged = [{**QUESTION[0], "meta_data": {"send": "tag-1"}}]
    async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
        conv = (await http.post("/v1/conversation/create", json={"bot_id": COFFEE_BOT_ID}, headers=AUTH)).json()
        params = {"conversation_id": conv["data"]["id"]}
        first = await http.post("/v3/chat", params=params, json={**CHAT, "additional_messages": tagged}, headers=AUTH)
        parse_sse(first.content)
        second = await http.post("/v3/chat", params=params, json={**CHAT, "meta_data": {"k": "v"}}, headers=AUTH)
        parse_sse(second.content)
        listed = await http.get("/_sandbox/chats", headers=ADMIN)
        refused = await http.get("/_sandbox/chats", headers=AUTH)

    data: dict[str, Any] = listed.json()["data"]
    assert data["count"] == 2
    assert [c["question_meta_data"] for c in data["chats"]] == [{"send": "tag-1"}, {}]
    assert [c["meta_data"] for c in data["chats"]] == [{}, {"k": "v"}]
    assert {c["conversation_id"] for c in data["chats"]} == {conv["data"]["id"]}
    assert refused.status_code == 401
