"""Business routes refuse bad calls with Coze's envelope and paired HTTP status, never a bare 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from starlette.types import Receive, Scope, Send

from kai_bridge.keys import KeyPair
from kai_bridge.sandbox import COFFEE_BOT_ID, PLUGIN_BOT_ID, SandboxHandle, sandbox_context
from kai_bridge.sandbox.app import LogidMiddleware
from tests.sandbox.conftest import SandboxFactory
from tests.sandbox.support import PAT, FailingAnswerer, FakeClock, GateAnswerer, make_jwt, parse_sse, token_body

QUESTION = [{"role": "user", "content": "What is espresso?", "content_type": "text"}]


def assert_coze_error(response: httpx.Response, *, status: int, code: int, contains: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert isinstance(body["msg"], str)
    assert body["msg"]
    assert contains in body["msg"]
    assert body["detail"]["logid"] == response.headers["x-tt-logid"]
    return body


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        pytest.param({}, 401, 4100, id="no-authorization"),
        pytest.param({"Authorization": "Basic abc"}, 401, 4100, id="not-bearer"),
        pytest.param({"Authorization": "Bearer"}, 401, 4100, id="empty-bearer"),
        pytest.param({"Authorization": "Bearer czs_never_issued"}, 401, 4100, id="unknown-issued-shape"),
        pytest.param({"Authorization": "Bearer pat_wrong"}, 403, 4101, id="wrong-token"),
    ],
)
async def test_bearer_failures_get_4100_or_4101(
    sandbox: SandboxHandle, headers: dict[str, str], status: int, code: int
) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
        response = await http.get("/v1/bots", params={"workspace_id": sandbox.workspace_id}, headers=headers)

    body = assert_coze_error(response, status=status, code=code)
    if code == 4100:
        assert body["msg"].startswith("authentication is invalid")
    assert sandbox.state.auth_failures == 1


async def test_an_expired_access_token_gets_4100(make_sandbox: SandboxFactory, key_pair: KeyPair) -> None:
    clock = FakeClock()
    async with make_sandbox(clock=clock) as handle, httpx.AsyncClient(base_url=handle.base_url) as http:
        jwt_token = make_jwt(key_pair, aud=handle.host_port)
        issued = await http.post(
            "/api/permission/oauth2/token", json=token_body(60), headers={"Authorization": f"Bearer {jwt_token}"}
        )
        headers = {"Authorization": f"Bearer {issued.json()['access_token']}"}
        fresh = await http.get("/v1/bot/get_online_info", params={"bot_id": COFFEE_BOT_ID}, headers=headers)
        clock.advance(61)
        stale = await http.get("/v1/bot/get_online_info", params={"bot_id": COFFEE_BOT_ID}, headers=headers)

    assert fresh.status_code == 200
    assert_coze_error(stale, status=401, code=4100, contains="expired")


async def test_a_stream_request_with_a_bad_token_gets_a_json_error_not_a_stream(sandbox: SandboxHandle) -> None:
    async with httpx.AsyncClient(base_url=sandbox.base_url) as http:
        response = await http.post(
            "/v3/chat",
            json={"bot_id": COFFEE_BOT_ID, "user_id": "u", "stream": True, "additional_messages": QUESTION},
            headers={"Authorization": "Bearer nope"},
        )

    assert_coze_error(response, status=403, code=4101)


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "contains"),
    [
        pytest.param("/v3/chat", b"{bad json", 400, 4000, "not a valid json", id="chat-bad-json"),
        pytest.param("/v3/chat", b"", 400, 4000, "not a valid json", id="chat-empty-body"),
        pytest.param("/v3/chat", b"[1, 2]", 400, 4000, "not a valid json", id="chat-array-body"),
        pytest.param("/v3/chat", {"user_id": "u", "additional_messages": QUESTION}, 400, 4000, "bot_id", id="no-bot"),
        pytest.param(
            "/v3/chat", {"bot_id": COFFEE_BOT_ID, "additional_messages": QUESTION}, 400, 4000, "user_id", id="no-user"
        ),
        pytest.param(
            "/v3/chat",
            {"bot_id": "7390000000000009999", "user_id": "u", "additional_messages": QUESTION},
            404,
            4200,
            "does not exist",
            id="unknown-bot",
        ),
        pytest.param("/v3/chat", {"bot_id": COFFEE_BOT_ID, "user_id": "u"}, 400, 4000, "question", id="no-question"),
        pytest.param(
            "/v3/chat",
            {"bot_id": COFFEE_BOT_ID, "user_id": "u", "additional_messages": [{"role": "robot", "content": "x"}]},
            400,
            4000,
            "role",
            id="bad-role",
        ),
        pytest.param(
            "/v3/chat",
            {"bot_id": COFFEE_BOT_ID, "user_id": "u", "stream": "yes", "additional_messages": QUESTION},
            400,
            4000,
            "stream",
            id="stream-not-bool",
        ),
        pytest.param(
            "/v3/chat",
            {"bot_id": COFFEE_BOT_ID, "user_id": "u", "auto_save_history": False, "additional_messages": QUESTION},
            400,
            4000,
            "auto_save_history",
            id="non-stream-without-history",
        ),
        pytest.param(
            "/v3/chat/cancel",
            {"conversation_id": "1", "chat_id": "2"},
            404,
            4200,
            "does not exist",
            id="cancel-unknown",
        ),
        pytest.param(
            "/v1/conversation/message/list?conversation_id=404", {}, 404, 4200, "conversation", id="list-unknown"
        ),
        pytest.param("/v1/conversation/message/list", {}, 400, 4000, "conversation_id", id="list-no-conv"),
        pytest.param("/v1/conversation/create", {"bot_id": "123"}, 404, 4200, "bot", id="conv-unknown-bot"),
    ],
)
async def test_bad_business_requests_get_coze_errors(
    client: httpx.AsyncClient, path: str, body: Any, status: int, code: int, contains: str
) -> None:
    if isinstance(body, bytes):
        response = await client.post(path, content=body, headers={"Content-Type": "application/json"})
    else:
        response = await client.post(path, json=body)

    assert_coze_error(response, status=status, code=code, contains=contains)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/conversation/retrieve?conversation_id=7000000000000000000",
        "/v3/chat/retrieve?conversation_id=7000000000000000000&chat_id=7000000000000000001",
        "/v3/chat/message/list?conversation_id=7000000000000000000&chat_id=7000000000000000001",
        "/v1/conversation/message/retrieve?conversation_id=7000000000000000000&message_id=1",
        "/v1/bots/7000000000000000000",
    ],
)
async def test_unknown_resources_get_4200_and_404(client: httpx.AsyncClient, path: str) -> None:
    assert_coze_error(await client.get(path), status=404, code=4200)


async def test_unknown_paths_and_wrong_methods_answer_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v9/nothing")
    wrong = await client.get("/v3/chat")

    assert_coze_error(missing, status=404, code=4200, contains="/v9/nothing")
    assert_coze_error(wrong, status=405, code=4000, contains="POST")
    assert wrong.headers["allow"] == "POST"


async def test_workspace_must_be_the_sandbox_one(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/bots", params={"workspace_id": "123"})

    assert_coze_error(response, status=400, code=4000, contains="workspace")


async def test_a_second_chat_in_a_busy_conversation_gets_4016(make_sandbox: SandboxFactory) -> None:
    gate = GateAnswerer()
    async with (
        make_sandbox(answerer=gate) as handle,
        httpx.AsyncClient(base_url=handle.base_url, headers={"Authorization": f"Bearer {PAT}"}) as http,
    ):
        try:
            first = await http.post(
                "/v3/chat", json={"bot_id": COFFEE_BOT_ID, "user_id": "u", "additional_messages": QUESTION}
            )
            conversation_id = first.json()["data"]["conversation_id"]
            second = await http.post(
                "/v3/chat",
                params={"conversation_id": conversation_id},
                json={"bot_id": COFFEE_BOT_ID, "user_id": "u", "stream": True, "additional_messages": QUESTION},
            )
        finally:
            gate.release.set()
        chat = sandbox_context(handle.app).store.chats[first.json()["data"]["id"]]
        assert chat.task is not None
        with anyio.fail_after(10):
            await chat.task
        third = await http.post(
            "/v3/chat",
            params={"conversation_id": conversation_id},
            json={"bot_id": COFFEE_BOT_ID, "user_id": "u", "additional_messages": QUESTION},
        )

    assert first.json()["data"]["status"] == "in_progress"
    assert_coze_error(second, status=409, code=4016, contains="in progress")
    assert third.status_code == 200


async def test_a_failing_answerer_fails_the_chat_with_last_error(make_sandbox: SandboxFactory) -> None:
    async with (
        make_sandbox(answerer=FailingAnswerer()) as handle,
        httpx.AsyncClient(base_url=handle.base_url, headers={"Authorization": f"Bearer {PAT}"}) as http,
    ):
        response = await http.post(
            "/v3/chat",
            json={"bot_id": COFFEE_BOT_ID, "user_id": "u", "stream": True, "additional_messages": QUESTION},
        )

    frames = parse_sse(response.content)
    assert [f.event for f in frames] == [
        "conversation.chat.created",
        "conversation.chat.in_progress",
        "conversation.chat.failed",
        "done",
    ]
    failed = frames[2].json()
    assert failed["status"] == "failed"
    assert failed["last_error"]["code"] == 5000
    assert failed["id"]
    assert failed["conversation_id"]
    assert failed["failed_at"]


async def test_submitting_a_wrong_tool_call_id_gets_4000(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/v3/chat",
        json={"bot_id": PLUGIN_BOT_ID, "user_id": "u", "stream": True, "additional_messages": QUESTION},
    )
    chat = parse_sse(created.content)[-2].json()
    assert chat["status"] == "requires_action"

    wrong = await client.post(
        "/v3/chat/submit_tool_outputs",
        params={"conversation_id": chat["conversation_id"], "chat_id": chat["id"]},
        json={"tool_outputs": [{"tool_call_id": "call_nope", "output": "x"}], "stream": False},
    )
    empty = await client.post(
        "/v3/chat/submit_tool_outputs",
        params={"conversation_id": chat["conversation_id"], "chat_id": chat["id"]},
        json={"tool_outputs": [], "stream": False},
    )

    assert_coze_error(wrong, status=400, code=4000, contains="call_nope")
    assert_coze_error(empty, status=400, code=4000, contains="tool_outputs")


async def test_submitting_to_a_chat_that_is_not_waiting_gets_4000(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/v3/chat", json={"bot_id": COFFEE_BOT_ID, "user_id": "u", "stream": True, "additional_messages": QUESTION}
    )
    chat = parse_sse(created.content)[-2].json()

    response = await client.post(
        "/v3/chat/submit_tool_outputs",
        params={"conversation_id": chat["conversation_id"], "chat_id": chat["id"]},
        json={"tool_outputs": [{"tool_call_id": "call_1", "output": "x"}], "stream": True},
    )

    assert_coze_error(response, status=400, code=4000, contains="completed")


async def test_the_catch_all_turns_any_exception_into_a_5000_envelope() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    app = LogidMiddleware(broken)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sandbox.test") as http:
        response = await http.get("/broken")

    body = assert_coze_error(response, status=500, code=5000)
    assert "boom" not in body["msg"]
    assert "Traceback" not in response.text


async def test_an_oversized_body_gets_a_json_413(make_sandbox: SandboxFactory) -> None:
    async with (
        make_sandbox(max_body_bytes=2048) as handle,
        httpx.AsyncClient(base_url=handle.base_url, headers={"Authorization": f"Bearer {PAT}"}) as http,
    ):
        response = await http.post(
            "/v3/chat",
            json={"bot_id": COFFEE_BOT_ID, "user_id": "u", "additional_messages": [question_of(5000)]},
        )

    assert_coze_error(response, status=413, code=4000, contains="too large")


def question_of(size: int) -> dict[str, str]:
    return {"role": "user", "content": "x" * size, "content_type": "text"}


async def test_an_oversized_chunked_body_gets_a_json_413(make_sandbox: SandboxFactory) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"bot_id": "' + b"1" * 1500
        yield b"2" * 1500 + b'"}'

    async with (
        make_sandbox(max_body_bytes=2048) as handle,
        httpx.AsyncClient(base_url=handle.base_url, headers={"Authorization": f"Bearer {PAT}"}) as http,
    ):
        response = await http.post("/v3/chat", content=chunks())

    assert_coze_error(response, status=413, code=4000, contains="too large")
