"""Whatever JSON (or not-JSON) a client sends, the sandbox answers a Coze envelope, never a 500."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kai_bridge.sandbox import COFFEE_BOT_ID, PLUGIN_BOT_ID, BuiltinAnswerer, SandboxConfig, create_app, sandbox_context
from tests.sandbox.support import PAT, parse_sse

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
messages = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "role": st.sampled_from(["user", "assistant", "robot"]) | json_values,
            "type": st.sampled_from(["", "question", "answer", "function_call", "verbose"]) | st.none(),
            "content": st.text(max_size=20) | json_values,
            "content_type": st.sampled_from(["text", "object_string", "card", "audio"]) | st.none(),
            "meta_data": json_values,
        },
    ),
    max_size=3,
)
chat_bodies = st.fixed_dictionaries(
    {},
    optional={
        "bot_id": st.sampled_from([COFFEE_BOT_ID, PLUGIN_BOT_ID, "42"]) | json_values,
        "user_id": st.sampled_from(["u-1"]) | json_values,
        "stream": st.booleans() | json_values,
        "auto_save_history": st.booleans() | json_values,
        "additional_messages": messages | json_values,
        "meta_data": json_values,
    },
)
list_bodies = st.fixed_dictionaries(
    {},
    optional={
        "order": st.sampled_from(["asc", "desc", "up"]) | json_values,
        "limit": st.integers(-5, 80) | json_values,
        "before_id": json_values,
        "after_id": json_values,
        "chat_id": json_values,
    },
)
raw_bodies = st.binary(max_size=40) | st.just(b"[" * 5000)

PATHS = [
    "/v3/chat",
    "/v1/conversation/create",
    "/v1/conversation/message/create?conversation_id={conv}",
    "/v1/conversation/message/list?conversation_id={conv}",
    "/v3/chat/cancel",
    "/v3/chat/submit_tool_outputs?conversation_id={conv}&chat_id=7000000000000000001",
    "/api/permission/oauth2/token",
]


async def exchange(path: str, body: Any) -> list[httpx.Response]:
    app = create_app(SandboxConfig(pats=[PAT]), answerer=BuiltinAnswerer())
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {PAT}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test", headers=headers) as http:
        conv = (await http.post("/v1/conversation/create", json={})).json()["data"]["id"]
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await http.post(path.format(conv=conv), content=content)
    await sandbox_context(app).engine.aclose()
    return [response]


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert response.headers["x-tt-logid"]
    if response.headers["content-type"].startswith("text/event-stream"):
        assert parse_sse(response.content)[-1].event == "done"
        return
    body = response.json()
    if "error_code" in body:  # the token endpoint's OAuth shape
        assert body["error_message"]
        return
    assert isinstance(body["code"], int)
    assert isinstance(body["msg"], str)
    if body["code"]:
        assert body["msg"]


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(body=chat_bodies | json_values | raw_bodies)
def test_chat_create_never_answers_a_500(body: Any) -> None:
    for response in asyncio.run(exchange("/v3/chat", body)):
        check(response)


@FUZZ
@given(path=st.sampled_from(PATHS), body=list_bodies | chat_bodies | json_values | raw_bodies)
def test_other_routes_never_answer_a_500(path: str, body: Any) -> None:
    for response in asyncio.run(exchange(path, body)):
        check(response)
