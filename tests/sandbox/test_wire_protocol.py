"""Wire details the SDKs rely on: SSE framing, event order, ids, history, paging, cancel."""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
import httpx
import pytest

from kai_bridge.keys import KeyPair
from kai_bridge.sandbox import (
    COFFEE_BOT_ID,
    PLUGIN_BOT_ID,
    BuiltinAnswerer,
    SandboxConfig,
    SandboxHandle,
    create_app,
    sandbox_context,
)
from tests.sandbox.conftest import SandboxFactory
from tests.sandbox.support import APP_ID, PAT, GateAnswerer, make_jwt, parse_sse, token_body

AUTH = {"Authorization": f"Bearer {PAT}"}
ID = re.compile(r"^\d{19}$")


def question(text: str, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": text, "content_type": "text", **extra}


def chat_body(text: str, *, bot_id: str = COFFEE_BOT_ID, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"bot_id": bot_id, "user_id": "u-1", "stream": stream, "additional_messages": [question(text)], **extra}


async def test_a_stream_is_strict_event_data_pairs_in_coze_order(client: httpx.AsyncClient) -> None:
    response = await client.post("/v3/chat", json=chat_body("Tell me about roasting"))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-tt-logid"]
    frames = parse_sse(response.content)
    names = [f.event for f in frames]
    deltas = names.count("conversation.message.delta")
    assert names == [
        "conversation.chat.created",
        "conversation.chat.in_progress",
        *["conversation.message.delta"] * deltas,
        "conversation.message.completed",  # answer
        "conversation.message.completed",  # verbose generate_answer_finish
        "conversation.message.completed",  # follow_up
        "conversation.message.completed",  # follow_up
        "conversation.chat.completed",
        "done",
    ]
    assert deltas > 3
    assert frames[-1].data == '"[DONE]"'
    for frame in frames[:-1]:
        data = frame.json()
        assert "\n" not in frame.data
        assert ID.match(data["id"])
        assert ID.match(data["conversation_id"])
    created, in_progress, completed_chat = frames[0].json(), frames[1].json(), frames[-2].json()
    assert created["status"] == "created"
    assert in_progress["status"] == "in_progress"
    assert completed_chat["status"] == "completed"
    assert set(completed_chat["usage"]) == {"token_count", "output_count", "input_count"}
    types = [f.json()["type"] for f in frames if f.event == "conversation.message.completed"]
    assert types == ["answer", "verbose", "follow_up", "follow_up"]


async def test_the_answer_is_saved_in_the_conversation(client: httpx.AsyncClient) -> None:
    streamed = parse_sse((await client.post("/v3/chat", json=chat_body("What is cold brew?"))).content)
    chat = streamed[-2].json()

    listed = await client.post(
        "/v1/conversation/message/list", params={"conversation_id": chat["conversation_id"]}, json={"order": "asc"}
    )

    body = listed.json()
    assert [(m["role"], m["type"]) for m in body["data"]] == [("user", "question"), ("assistant", "answer")]
    assert body["data"][0]["content"] == "What is cold brew?"
    assert all(m["chat_id"] == chat["id"] for m in body["data"])
    assert body["first_id"] == body["data"][0]["id"]
    assert body["last_id"] == body["data"][-1]["id"]
    assert body["has_more"] is False


async def test_a_stream_without_history_leaves_the_conversation_empty(client: httpx.AsyncClient) -> None:
    streamed = parse_sse((await client.post("/v3/chat", json=chat_body("espresso?", auto_save_history=False))).content)
    conversation_id = streamed[-2].json()["conversation_id"]

    listed = await client.post("/v1/conversation/message/list", params={"conversation_id": conversation_id}, json={})

    assert listed.json()["data"] == []
    assert listed.json()["first_id"] == ""


async def test_cozepy_style_messages_with_nulls_and_empty_type_are_accepted(client: httpx.AsyncClient) -> None:
    nulls = dict.fromkeys(
        ("meta_data", "id", "conversation_id", "section_id", "bot_id", "chat_id", "created_at", "updated_at"), None
    )
    body = {
        "bot_id": COFFEE_BOT_ID,
        "user_id": "u",
        "stream": False,
        "auto_save_history": True,
        "additional_messages": [
            {"role": "assistant", "type": "", "content": "Earlier answer", "content_type": "text", **nulls},
            {"role": "user", "type": "", "content": "grind size?", "content_type": "text", **nulls},
        ],
        "meta_data": None,
    }

    response = await client.post("/v3/chat", json=body)

    assert response.status_code == 200
    assert response.json()["data"]["status"] == "in_progress"


async def test_an_object_string_question_uses_its_text_parts(client: httpx.AsyncClient) -> None:
    content = json.dumps(
        [{"type": "text", "text": "什么是日晒处理？"}, {"type": "image", "file_url": "https://x/y.png"}]
    )
    body = {
        "bot_id": PLUGIN_BOT_ID,
        "user_id": "u",
        "stream": True,
        "additional_messages": [{"role": "user", "content": content, "content_type": "object_string"}],
    }

    frames = parse_sse((await client.post("/v3/chat", json=body)).content)

    action = frames[-2].json()["required_action"]["submit_tool_outputs"]["tool_calls"][0]
    assert json.loads(action["function"]["arguments"]) == {"query": "什么是日晒处理？"}


async def test_a_non_stream_chat_never_stays_created(sandbox: SandboxHandle, client: httpx.AsyncClient) -> None:
    created = (await client.post("/v3/chat", json=chat_body("caffeine?", stream=False))).json()["data"]
    chat = sandbox_context(sandbox.app).store.chats[created["id"]]
    assert chat.task is not None
    with anyio.fail_after(10):
        await chat.task

    retrieved_get = await client.get(
        "/v3/chat/retrieve", params={"conversation_id": created["conversation_id"], "chat_id": created["id"]}
    )
    retrieved_post = await client.post(
        "/v3/chat/retrieve", params={"conversation_id": created["conversation_id"], "chat_id": created["id"]}
    )

    assert created["status"] == "in_progress"
    assert retrieved_get.json()["data"]["status"] == "completed"
    assert retrieved_post.json()["data"] == retrieved_get.json()["data"]


async def test_chat_message_list_holds_the_chat_output_but_not_the_question(client: httpx.AsyncClient) -> None:
    chat = parse_sse((await client.post("/v3/chat", json=chat_body("latte vs cappuccino"))).content)[-2].json()

    listed = await client.get(
        "/v3/chat/message/list", params={"conversation_id": chat["conversation_id"], "chat_id": chat["id"]}
    )

    assert [m["type"] for m in listed.json()["data"]] == ["answer", "verbose", "follow_up", "follow_up"]


async def test_message_paging_follows_the_listing_order(client: httpx.AsyncClient) -> None:
    conv = (await client.post("/v1/conversation/create", json={})).json()["data"]
    ids = []
    for i in range(5):
        made = await client.post(
            "/v1/conversation/message/create",
            params={"conversation_id": conv["id"]},
            json={"role": "user", "content": f"m{i}", "content_type": "text", "meta_data": None},
        )
        ids.append(made.json()["data"]["id"])

    async def page(**body: Any) -> dict[str, Any]:
        response = await client.post(
            "/v1/conversation/message/list",
            params={"conversation_id": conv["id"]},
            json={"order": None, "chat_id": None, "before_id": None, "after_id": None, "limit": 2, **body},
        )
        result: dict[str, Any] = response.json()
        return result

    first = await page()
    second = await page(after_id=first["last_id"])
    back = await page(before_id=second["first_id"])
    asc = await page(order="asc", after_id=ids[2])

    assert [m["content"] for m in first["data"]] == ["m4", "m3"]
    assert first["has_more"] is True
    assert [m["content"] for m in second["data"]] == ["m2", "m1"]
    assert [m["content"] for m in back["data"]] == ["m4", "m3"]
    assert back["has_more"] is False
    assert [m["content"] for m in asc["data"]] == ["m3", "m4"]
    assert asc["has_more"] is False


async def test_cancel_stops_a_running_chat_and_frees_the_conversation(make_sandbox: SandboxFactory) -> None:
    gate = GateAnswerer()
    async with make_sandbox(answerer=gate) as handle, httpx.AsyncClient(base_url=handle.base_url, headers=AUTH) as http:
        try:
            created = (await http.post("/v3/chat", json=chat_body("espresso", stream=False))).json()["data"]
            ids = {"conversation_id": created["conversation_id"], "chat_id": created["id"]}
            canceled = await http.post("/v3/chat/cancel", json=ids)
            again = await http.post("/v3/chat/cancel", json=ids)
            next_chat = await http.post(
                "/v3/chat",
                params={"conversation_id": created["conversation_id"]},
                json=chat_body("espresso", stream=False),
            )
        finally:
            gate.release.set()
        chat = sandbox_context(handle.app).store.chats[created["id"]]
        assert chat.task is not None
        with anyio.fail_after(10):
            await chat.task
        final = await http.get("/v3/chat/retrieve", params=ids)

    assert canceled.json()["data"]["status"] == "canceled"
    assert again.status_code == 400
    assert again.json()["code"] == 4104
    assert next_chat.status_code == 200
    assert final.json()["data"]["status"] == "canceled"


async def test_submit_for_a_chat_without_saved_history_gets_5000(client: httpx.AsyncClient) -> None:
    frames = parse_sse(
        (await client.post("/v3/chat", json=chat_body("q", bot_id=PLUGIN_BOT_ID, auto_save_history=False))).content
    )
    chat = frames[-2].json()
    call_id = chat["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"]

    response = await client.post(
        "/v3/chat/submit_tool_outputs",
        params={"conversation_id": chat["conversation_id"], "chat_id": chat["id"]},
        json={"tool_outputs": [{"tool_call_id": call_id, "output": "x"}], "stream": True},
    )

    assert response.status_code == 500
    assert response.json()["code"] == 5000


@pytest.mark.parametrize(
    ("output", "answer"),
    [
        pytest.param('{"answer": "From JSON."}', "From JSON.", id="json-answer"),
        pytest.param("Plain text output.", "Plain text output.", id="raw-text"),
        pytest.param('{"content": [{"type": "text", "text": "MCP text."}]}', "MCP text.", id="mcp-content"),
    ],
)
async def test_the_plugin_bot_answers_from_the_submitted_output(
    client: httpx.AsyncClient, output: str, answer: str
) -> None:
    chat = parse_sse((await client.post("/v3/chat", json=chat_body("q", bot_id=PLUGIN_BOT_ID))).content)[-2].json()
    call_id = chat["required_action"]["submit_tool_outputs"]["tool_calls"][0]["id"]

    response = await client.post(
        "/v3/chat/submit_tool_outputs",
        params={"conversation_id": chat["conversation_id"], "chat_id": chat["id"]},
        json={"tool_outputs": [{"tool_call_id": call_id, "output": output}], "stream": True},
    )

    frames = parse_sse(response.content)
    assert frames[0].event == "conversation.chat.in_progress"
    assert frames[1].json()["type"] == "tool_response"
    assert frames[1].json()["content"] == output
    assert "".join(f.json()["content"] for f in frames if f.event == "conversation.message.delta") == answer
    assert frames[-2].event == "conversation.chat.completed"


async def test_the_app_works_in_process_with_asgi_transport(key_pair: KeyPair) -> None:
    app = create_app(SandboxConfig(apps=[(APP_ID, key_pair.public_pem)]), answerer=BuiltinAnswerer())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as http:
        issued = await http.post(
            "/api/permission/oauth2/token",
            json=token_body(),
            headers={"Authorization": f"Bearer {make_jwt(key_pair, aud='sandbox.test')}"},
        )
        token = issued.json()["access_token"]
        streamed = await http.post(
            "/v3/chat", json=chat_body("pour over?"), headers={"Authorization": f"Bearer {token}"}
        )

    assert parse_sse(streamed.content)[-1].event == "done"
    assert sandbox_context(app).state.tokens_issued == 1


async def test_an_in_process_drop_raises_a_transport_error(key_pair: KeyPair) -> None:
    from kai_bridge.sandbox import FaultRule

    config = SandboxConfig(pats=[PAT], faults=[FaultRule(route="chat.create", drop_rate=1.0)])
    transport = httpx.ASGITransport(app=create_app(config, answerer=BuiltinAnswerer()))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test", headers=AUTH) as http:
        with pytest.raises(httpx.TransportError):
            await http.post("/v3/chat", json=chat_body("x"))


async def test_with_a_chunk_delay_the_deltas_arrive_as_separate_writes(make_sandbox: SandboxFactory) -> None:
    reads = 0
    body = b""
    async with (
        make_sandbox(stream_chunk_delay=0.01) as handle,
        httpx.AsyncClient(base_url=handle.base_url, headers=AUTH) as http,
        http.stream("POST", "/v3/chat", json=chat_body("How do I brew pour-over coffee?")) as response,
    ):
        async for chunk in response.aiter_raw():
            reads += 1
            body += chunk

    deltas = [f for f in parse_sse(body) if f.event == "conversation.message.delta"]
    assert len(deltas) > 10
    assert reads > 5


@pytest.mark.parametrize("page_key", ["page_index", "page_num"])
async def test_bot_list_pages_with_either_page_parameter(
    sandbox: SandboxHandle, client: httpx.AsyncClient, page_key: str
) -> None:
    first = await client.get("/v1/bots", params={"workspace_id": sandbox.workspace_id, page_key: 1, "page_size": 1})
    second = await client.get("/v1/bots", params={"workspace_id": sandbox.workspace_id, page_key: 2, "page_size": 1})

    assert first.json()["data"]["total"] == 2
    assert [b["id"] for b in first.json()["data"]["items"]] == [COFFEE_BOT_ID]
    assert [b["id"] for b in second.json()["data"]["items"]] == [PLUGIN_BOT_ID]
    item = first.json()["data"]["items"][0]
    assert {"id", "name", "description", "icon_url", "is_published", "updated_at", "owner_user_id"} <= set(item)
    assert isinstance(item["updated_at"], int)
