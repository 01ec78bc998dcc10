"""The sandbox's callback apps: Coze's /v1/api_apps, URL verification, signed deliveries, re-sends."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from cozepy import Coze, SyncHTTPClient, TokenAuth

from kai_bridge.sandbox import COFFEE_BOT_ID, PLUGIN_BOT_ID, SandboxHandle, sandbox_context
from tests.sandbox.callback_receiver import Received, callback_receiver, echo_challenge
from tests.sandbox.conftest import SandboxFactory
from tests.sandbox.support import ADMIN_TOKEN, PAT

pytestmark = pytest.mark.e2e


def expected_signature(received: Received, verify_token: str) -> str:
    """The signature as Coze's guide computes it, written out again here (not imported)."""
    h = received.headers
    raw = (h["x-coze-timestamp"] + h["x-coze-nonce"] + verify_token).encode("utf-8") + received.body
    return hashlib.sha1(raw, usedforsecurity=False).hexdigest()


@pytest.fixture
async def api(sandbox: SandboxHandle) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {PAT}"}
    async with httpx.AsyncClient(base_url=sandbox.base_url, headers=headers, timeout=15) as client:
        yield client


async def data(response: httpx.Response) -> Any:
    body = response.json()
    assert body["code"] == 0, body
    return body["data"]


async def new_app(api: httpx.AsyncClient, url: str | None = None, **fields: Any) -> dict[str, Any]:
    app: dict[str, Any] = await data(await api.post("/v1/api_apps", json={"app_type": "normal", "name": "kb", **fields}))
    if url is not None:
        assert (await api.put(f"/v1/api_apps/{app['id']}", json={"callback_url": url})).json()["code"] == 0
        app["callback_url"] = url
    return app


async def test_a_created_app_has_a_server_generated_verify_token_and_is_listed(api: httpx.AsyncClient) -> None:
    one = await new_app(api)
    two = await new_app(api, name="other")
    assert len(one["verify_token"]) >= 24
    assert one["verify_token"] != two["verify_token"]
    listed = await data(await api.get("/v1/api_apps", params={"page_size": 1}))
    assert [a["id"] for a in listed["items"]] == [one["id"]]
    assert listed["has_more"] is True
    rest = await data(await api.get("/v1/api_apps", params={"page_token": listed["next_page_token"]}))
    assert [a["id"] for a in rest["items"]] == [two["id"]]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param({"app_type": "weird"}, "app_type", id="bad-type"),
        pytest.param({"app_type": "normal"}, "name is required", id="normal-without-name"),
        pytest.param({"app_type": "connector"}, "connector_id is required", id="connector-without-connector"),
        pytest.param({"app_type": "normal", "name": 7}, "name must be a string", id="name-not-string"),
    ],
)
async def test_creating_an_app_with_bad_fields_is_refused_with_the_reason(
    api: httpx.AsyncClient, body: dict[str, Any], fragment: str
) -> None:
    response = await api.post("/v1/api_apps", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["msg"]


async def test_a_callback_url_is_kept_only_after_it_echoes_the_signed_challenge(api: httpx.AsyncClient) -> None:
    app = await new_app(api)
    async with callback_receiver() as receiver:
        assert (await api.put(f"/v1/api_apps/{app['id']}", json={"callback_url": receiver.url})).json()["code"] == 0
        [challenge] = receiver.requests
    body = challenge.json
    assert body["header"]["event_type"] == "url_verification"
    assert body["header"]["api_app_id"] == app["id"]
    assert isinstance(body["event"]["challenge"], str)
    assert challenge.headers["x-coze-signature"] == expected_signature(challenge, app["verify_token"])
    listed = await data(await api.get("/v1/api_apps"))
    assert listed["items"][0]["callback_url"] == receiver.url


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda n, r: (200, {"challenge": "something else"}), id="wrong-challenge"),
        pytest.param(lambda n, r: (500, {"challenge": r.json["event"]["challenge"]}), id="server-error"),
    ],
)
async def test_a_callback_url_that_does_not_echo_the_challenge_is_refused(
    api: httpx.AsyncClient, answer: Callable[[int, Received], tuple[int, Any]]
) -> None:
    app = await new_app(api)
    async with callback_receiver(answer) as receiver:
        response = await api.put(f"/v1/api_apps/{app['id']}", json={"callback_url": receiver.url})
    assert response.status_code == 400
    assert "verification failed" in response.json()["msg"]
    assert "callback_url" not in (await data(await api.get("/v1/api_apps")))["items"][0]


async def test_an_unreachable_callback_url_is_refused(api: httpx.AsyncClient) -> None:
    async with callback_receiver() as receiver:
        gone = receiver.url
    app = await new_app(api)
    response = await api.put(f"/v1/api_apps/{app['id']}", json={"callback_url": gone})
    assert response.status_code == 400
    assert "cannot reach" in response.json()["msg"]


async def test_subscriptions_are_added_listed_and_removed(api: httpx.AsyncClient) -> None:
    app = await new_app(api)
    path = f"/v1/api_apps/{app['id']}/events"
    await data(await api.post(path, json={"event_types": ["bot.published", "bot.deleted"]}))
    listed = await data(await api.get(path))
    assert [i["event_type"] for i in listed["items"]] == ["bot.deleted", "bot.published"]
    assert all(i["api_app_id"] == app["id"] for i in listed["items"])
    await data(await api.request("DELETE", path, json={"event_types": ["bot.deleted"]}))
    assert [i["event_type"] for i in (await data(await api.get(path)))["items"]] == ["bot.published"]
    refused = await api.post(path, json={"event_types": ["chat.done"]})
    assert refused.status_code == 400
    assert "unknown event type" in refused.json()["msg"]


async def test_an_unknown_or_deleted_app_is_4200(api: httpx.AsyncClient) -> None:
    app = await new_app(api)
    await data(await api.delete(f"/v1/api_apps/{app['id']}"))
    for response in (
        await api.put(f"/v1/api_apps/{app['id']}", json={"name": "x"}),
        await api.get(f"/v1/api_apps/{app['id']}/events"),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == 4200


async def test_publishing_a_bot_sends_a_signed_bot_published_to_subscribers_only(api: httpx.AsyncClient) -> None:
    async with callback_receiver() as receiver:
        subscribed = await new_app(api, receiver.url)
        await new_app(api, receiver.url, name="not-subscribed")
        await data(await api.post(f"/v1/api_apps/{subscribed['id']}/events", json={"event_types": ["bot.published"]}))
        before = time.time()
        bot = await data(await api.post("/v1/bot/publish", json={"bot_id": COFFEE_BOT_ID, "connector_ids": ["1024"]}))
        [_, _, delivered] = await receiver.wait_for(3)  # two url_verifications, then the event
    assert bot["bot_id"] == COFFEE_BOT_ID
    body = delivered.json
    header = body["header"]
    assert header["event_type"] == "bot.published"
    assert header["api_app_id"] == subscribed["id"]
    assert header["connector_id"] == "1024"
    assert len(header["event_id"]) == 19
    assert before * 1000 - 1000 <= header["created_at"] <= time.time() * 1000 + 1000
    assert body["event"]["bot_id"] == COFFEE_BOT_ID
    assert body["event"]["bot_name"] == "Coffee Expert"
    assert abs(int(delivered.headers["x-coze-timestamp"]) - time.time() * 1000) < 10_000
    assert delivered.headers["x-coze-signature"] == expected_signature(delivered, subscribed["verify_token"])
    assert "authorization" not in delivered.headers  # Coze sends no Bearer token


async def test_a_connector_app_hears_only_about_its_own_connector(api: httpx.AsyncClient) -> None:
    async with callback_receiver() as receiver:
        app = await new_app(api, receiver.url, app_type="connector", connector_id="7777")
        await data(await api.post(f"/v1/api_apps/{app['id']}/events", json={"event_types": ["bot.published"]}))
        await data(await api.post("/v1/bot/publish", json={"bot_id": COFFEE_BOT_ID, "connector_ids": ["1024", "7777"]}))
        [_, delivered] = await receiver.wait_for(2)
    assert delivered.json["header"]["connector_id"] == "7777"


async def test_a_deleted_bot_sends_bot_deleted_and_is_gone_from_the_api(api: httpx.AsyncClient) -> None:
    async with callback_receiver() as receiver:
        app = await new_app(api, receiver.url)
        await data(await api.post(f"/v1/api_apps/{app['id']}/events", json={"event_types": ["bot.deleted"]}))
        await data(await api.delete(f"/v1/bots/{PLUGIN_BOT_ID}"))
        [_, delivered] = await receiver.wait_for(2)
    assert delivered.json["header"]["event_type"] == "bot.deleted"
    assert delivered.json["event"]["bot_id"] == PLUGIN_BOT_ID
    assert (await api.get(f"/v1/bots/{PLUGIN_BOT_ID}")).json()["code"] == 4200
    chat = await api.post("/v3/chat", json={"bot_id": PLUGIN_BOT_ID, "user_id": "u", "stream": False,
                                              "additional_messages": [{"role": "user", "content": "hi",
                                                                       "content_type": "text"}]})
    assert chat.json()["code"] == 4200
    listed = await data(await api.get("/v1/bots", params={"workspace_id": "7390000000000000100"}))
    assert PLUGIN_BOT_ID not in [b["id"] for b in listed["items"]]


async def test_unpublishing_sends_bot_unpublished_with_the_connector(api: httpx.AsyncClient) -> None:
    async with callback_receiver() as receiver:
        app = await new_app(api, receiver.url)
        await data(await api.post(f"/v1/api_apps/{app['id']}/events", json={"event_types": ["bot.unpublished"]}))
        await data(await api.post(f"/v1/bots/{COFFEE_BOT_ID}/unpublish",
                                  json={"connector_id": "1024", "unpublish_reason": "maintenance"}))
        [_, delivered] = await receiver.wait_for(2)
    assert delivered.json["header"]["event_type"] == "bot.unpublished"
    assert delivered.json["event"]["unpublish_reason"] == "maintenance"


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(lambda: (503, {"busy": True}), id="non-2xx"),
        pytest.param(lambda: None, id="timeout"),
    ],
)
async def test_a_failed_delivery_is_sent_again_with_the_same_event_id_and_a_fresh_signature(
    make_sandbox: SandboxFactory, failure: Callable[[], tuple[int, Any] | None]
) -> None:
    def answer(n: int, received: Received) -> tuple[int, Any] | None:
        return failure() if n == 2 else echo_challenge(n, received)  # 1: url_verification

    async with make_sandbox(callback_timeout=0.3, callback_retry_delays=(0.01, 0.01)) as sandbox, \
            httpx.AsyncClient(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {PAT}"}) as api, \
            callback_receiver(answer) as receiver:
        app = await new_app(api, receiver.url)
        await data(await api.post(f"/v1/api_apps/{app['id']}/events", json={"event_types": ["bot.published"]}))
        await data(await api.post("/v1/bot/publish", json={"bot_id": COFFEE_BOT_ID}))
        [_, first, second] = await receiver.wait_for(3)
        [delivery] = sandbox_context(sandbox.app).callbacks.deliveries
        with anyio.fail_after(10):
            await delivery.done.wait()
    assert first.json["header"]["event_id"] == second.json["header"]["event_id"]
    assert first.body == second.body
    assert first.headers["x-coze-nonce"] != second.headers["x-coze-nonce"]
    assert second.headers["x-coze-signature"] == expected_signature(second, app["verify_token"])
    assert delivery.status == "delivered"
    assert len(delivery.attempts) == 2
    assert delivery.attempts[0].status_code in (503, None)


async def test_a_delivery_that_keeps_failing_is_given_up_after_the_last_re_send(make_sandbox: SandboxFactory) -> None:
    def answer(n: int, received: Received) -> tuple[int, Any]:
        return echo_challenge(n, received) if n == 1 else (500, {})

    async with make_sandbox(callback_retry_delays=(0.01, 0.01, 0.01)) as sandbox, \
            httpx.AsyncClient(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {PAT}"}) as api, \
            callback_receiver(answer) as receiver:
        app = await new_app(api, receiver.url)
        await data(await api.post(f"/v1/api_apps/{app['id']}/events", json={"event_types": ["bot.deleted"]}))
        await data(await api.delete(f"/v1/bots/{COFFEE_BOT_ID}"))
        [delivery] = sandbox_context(sandbox.app).callbacks.deliveries
        with anyio.fail_after(10):
            await delivery.done.wait()
    assert delivery.status == "failed"
    assert [a.status_code for a in delivery.attempts] == [500, 500, 500, 500]
    assert sandbox.state.snapshot()["callbacks_failed"] == 1


async def test_the_admin_route_emits_any_event_to_one_app_and_lists_deliveries(sandbox: SandboxHandle,
                                                                              api: httpx.AsyncClient) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with callback_receiver() as receiver:
        app = await new_app(api, receiver.url)
        emitted = await data(await api.post("/_sandbox/events", headers=admin, json={
            "event_type": "benefit.usage", "event": {"usage": 3}, "api_app_id": app["id"]}))
        [_, delivered] = await receiver.wait_for(2)
        refused = await api.post("/_sandbox/events", json={"event_type": "benefit.usage"})
        listed = await data(await api.get("/_sandbox/deliveries", headers=admin))
    assert delivered.json["event"] == {"usage": 3}
    assert delivered.json["header"]["event_id"] == emitted["deliveries"][0]["event_id"]
    assert refused.status_code == 401
    assert listed["deliveries"][0]["event_type"] == "benefit.usage"


async def test_cozepy_manages_callback_apps_and_subscriptions_unchanged(sandbox: SandboxHandle) -> None:
    http = SyncHTTPClient()  # type: ignore[no-untyped-call]
    coze = Coze(auth=TokenAuth(PAT), base_url=sandbox.base_url, http_client=http)
    try:
        async with callback_receiver() as receiver:

            def flow() -> tuple[str, str, list[str], list[str]]:
                app = coze.api_apps.create(app_type="normal", name="kai-bridge")  # type: ignore[arg-type]
                coze.api_apps.update(app_id=app.id, callback_url=receiver.url)
                coze.api_apps.events.create(api_app_id=app.id, event_types=["bot.published"])
                events = [e.event_type for e in coze.api_apps.events.list(api_app_id=app.id)]
                apps = [a.id for a in coze.api_apps.list()]
                return app.id, app.verify_token, events, apps

            with anyio.fail_after(30):
                app_id, token, events, apps = await anyio.to_thread.run_sync(flow)
        assert token
        assert events == ["bot.published"]
        assert apps == [app_id]
    finally:
        http.close()
