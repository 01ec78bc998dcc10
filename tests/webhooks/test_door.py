"""POST /webhook/coze: who gets in, what is refused and why, and that a 2xx means stored."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from kai_bridge.webhooks import MAX_BODY_BYTES
from kai_bridge.webhooks.http import webhook_routes
from tests.webhooks.support import Door, coze_body, open_door, seed_body, sign


@pytest.fixture
async def door(tmp_path: Path) -> Any:
    async with open_door(tmp_path) as opened:
        yield opened


async def test_without_either_token_the_door_is_closed_with_503_naming_both_settings(tmp_path: Path) -> None:
    async with open_door(tmp_path, webhook_verify_token=None, webhook_token=None) as closed:
        response = await closed.post(seed_body(), {"Authorization": "Bearer anything"})
        assert await closed.store.list_events() == []
    assert response.status_code == 503
    message = response.json()["message"]
    assert "webhook_verify_token" in message
    assert "webhook_token" in message


async def test_a_signed_callback_is_stored_before_it_is_acknowledged(door: Door) -> None:
    body = coze_body("bot.published", bot_id="7390000000000000001", bot_name="Coffee")
    response = await door.signed(body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["ok"] is True
    assert answer["duplicate"] is False
    stored = await door.store.get_event(event_id=answer["id"])
    assert stored is not None
    assert (stored.event_type, stored.source, stored.status, stored.body) == (
        "bot.published", "coze", "pending", body.decode())
    assert "audit" not in answer  # acknowledge only, by default


async def test_the_seed_guides_bearer_request_is_stored(door: Door) -> None:
    response = await door.bearer_post(seed_body())
    assert response.status_code == 200
    stored = await door.store.get_event(event_id=response.json()["id"])
    assert stored is not None
    assert (stored.event_type, stored.source) == ("conversation.message", "token")


async def test_a_re_sent_event_is_acknowledged_as_a_duplicate_and_stored_once(door: Door) -> None:
    body = coze_body(event_id="7400000000000000042")
    first = (await door.signed(body)).json()
    again = (await door.signed(coze_body(event_id="7400000000000000042", bot_name="changed fields"))).json()
    identical = await door.post(body, sign(body, door.verify_token, nonce="same-nonce"))
    identical_again = await door.post(body, sign(body, door.verify_token, nonce="same-nonce"))
    assert (again["id"], again["duplicate"]) == (first["id"], True)
    assert identical.json()["duplicate"] is True
    assert identical_again.status_code == 200
    assert len(await door.store.list_events()) == 1


async def test_a_body_without_event_id_is_deduplicated_by_its_hash(door: Door) -> None:
    one = (await door.bearer_post(seed_body(message="same"))).json()
    two = (await door.bearer_post(seed_body(message="same"))).json()
    other = (await door.bearer_post(seed_body(message="different"))).json()
    assert (two["id"], two["duplicate"]) == (one["id"], True)
    assert other["duplicate"] is False
    assert {e.dedup_key[:5] for e in await door.store.list_events()} == {"body:"}


async def test_an_unknown_event_type_is_stored_and_acknowledged(door: Door) -> None:
    response = await door.signed(coze_body("something.new.from.coze", anything=[1, 2]))
    assert response.status_code == 200
    [stored] = await door.store.list_events()
    assert stored.event_type == "something.new.from.coze"


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        pytest.param({}, "no credentials", id="none"),
        pytest.param({"Authorization": "Bearer wrong"}, "invalid bearer token", id="wrong-bearer"),
        pytest.param({"Authorization": "Basic abc"}, "Authorization: Bearer", id="not-bearer"),
    ],
)
async def test_missing_or_wrong_credentials_are_401_with_the_reason(
    door: Door, headers: dict[str, str], fragment: str
) -> None:
    response = await door.post(seed_body(), headers)
    assert response.status_code == 401
    assert fragment in response.json()["message"]
    assert await door.store.list_events() == []


def _ms(offset: float) -> str:
    return str(int((time.time() + offset) * 1000))


@pytest.mark.parametrize(
    ("tamper", "fragment"),
    [
        pytest.param(lambda h, b: (h | {"X-Coze-Signature": "0" * 40}, b), "does not match", id="bad-signature"),
        pytest.param(lambda h, b: (h, b + b" "), "does not match", id="body-changed"),
        pytest.param(lambda h, b: (h | {"X-Coze-Timestamp": "soon"}, b), "milliseconds", id="timestamp-not-digits"),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if k != "X-Coze-Nonce"}, b), "X-Coze-Nonce",
                     id="no-nonce"),
    ],
)
async def test_a_tampered_signed_request_is_401(door: Door, tamper: Any, fragment: str) -> None:
    body = coze_body()
    headers, sent = tamper(sign(body, door.verify_token), body)
    response = await door.post(sent, headers)
    assert response.status_code == 401
    assert fragment in response.json()["message"]


@pytest.mark.parametrize("offset", [pytest.param(-301, id="too-old"), pytest.param(301, id="from-the-future")])
async def test_a_timestamp_outside_the_window_is_401(door: Door, offset: float) -> None:
    body = coze_body()
    response = await door.post(body, sign(body, door.verify_token, timestamp=_ms(offset)))
    assert response.status_code == 401
    assert "webhook_timestamp_tolerance" in response.json()["message"]


async def test_the_window_is_configurable(tmp_path: Path) -> None:
    async with open_door(tmp_path, webhook_timestamp_tolerance=600) as wide:
        body = coze_body()
        assert (await wide.post(body, sign(body, wide.verify_token, timestamp=_ms(-500)))).status_code == 200


async def test_a_nonce_seen_with_a_different_body_is_refused(door: Door) -> None:
    first, second = coze_body(), coze_body()
    assert (await door.post(first, sign(first, door.verify_token, nonce="n-1"))).status_code == 200
    response = await door.post(second, sign(second, door.verify_token, nonce="n-1"))
    assert response.status_code == 401
    assert "nonce" in response.json()["message"].lower()
    assert len(await door.store.list_events()) == 1


async def test_a_signed_request_is_refused_where_only_the_bearer_token_is_set(tmp_path: Path) -> None:
    async with open_door(tmp_path, webhook_verify_token=None) as bearer_only:
        body = coze_body()
        response = await bearer_only.post(body, sign(body, "whatever"))
        assert response.status_code == 401
        assert "webhook_verify_token is not set" in response.json()["message"]
        assert (await bearer_only.bearer_post(seed_body())).status_code == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b"", "empty", id="empty"),
        pytest.param(b"{not json", "not JSON", id="not-json"),
        pytest.param(b"[1, 2]", "array, not an object", id="array"),
        pytest.param(b'"text"', "string, not an object", id="string"),
        pytest.param(b"\xff\xfe{}", "not UTF-8", id="not-utf8"),
        pytest.param(b'{"data": {}}', "no event type", id="no-event-type"),
        pytest.param(b'{"header": {"event_type": 5}}', "header.event_type must be", id="type-not-string"),
        pytest.param(b'{"event": ""}', "event must be a non-empty string", id="empty-type"),
        pytest.param(json.dumps({"event": "x" * 200}).encode(), "printable characters", id="type-too-long"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "", id="deeply-nested"),
    ],
)
async def test_a_body_that_is_not_an_event_is_400_with_the_reason(door: Door, body: bytes, fragment: str) -> None:
    response = await door.bearer_post(body)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_event"
    assert fragment in response.json()["message"]


async def test_url_verification_is_answered_with_the_challenge_signed_or_not(door: Door) -> None:
    body = json.dumps({"header": {"event_type": "url_verification", "event_id": "1", "created_at": 1749116452112},
                       "event": {"challenge": "ch-42"}}).encode()
    signed = await door.signed(body)
    unsigned = await door.post(body, {"Content-Type": "application/json"})
    assert signed.json() == {"challenge": "ch-42"}
    assert unsigned.status_code == 200
    assert unsigned.json() == {"challenge": "ch-42"}
    assert await door.store.list_events() == []  # echoing a challenge stores nothing


async def test_a_url_verification_without_a_challenge_is_400(door: Door) -> None:
    body = json.dumps({"header": {"event_type": "url_verification"}, "event": {}}).encode()
    assert (await door.signed(body)).status_code == 400


@pytest.mark.parametrize(
    ("status", "code"),
    [pytest.param("approved", 2, id="approved"), pytest.param("rejected", 3, id="rejected"),
     pytest.param("reviewing", 1, id="reviewing")],
)
async def test_bot_published_gets_the_configured_audit_answer(tmp_path: Path, status: str, code: int) -> None:
    async with open_door(tmp_path, webhook_audit_status=status, webhook_audit_reason="checked") as audited:
        published = (await audited.signed(coze_body("bot.published"))).json()
        deleted = (await audited.signed(coze_body("bot.deleted"))).json()
    assert published["audit"] == {"audit_status": code, "reason": "checked"}
    assert "audit" not in deleted


async def test_a_declared_body_over_1_mib_is_413_without_reading_it(door: Door) -> None:
    headers = {"Authorization": f"Bearer {door.bearer}", "Content-Length": str(MAX_BODY_BYTES + 1)}
    response = await door.client.post("/webhook/coze", content=b"{}", headers=headers)
    assert response.status_code == 413


async def test_a_streamed_body_is_read_only_up_to_the_limit(door: Door) -> None:
    app = Starlette(routes=webhook_routes(receiver=door.service.receiver))
    chunk = b" " * 65536
    total_chunks = 64  # 4 MiB offered
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled < total_chunks}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/webhook/coze", "raw_path": b"/webhook/coze",
             "query_string": b"", "headers": [(b"authorization", f"Bearer {door.bearer}".encode())],
             "http_version": "1.1", "scheme": "http", "server": ("test", 80), "client": ("127.0.0.1", 1)}
    await app(scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 413
    assert pulled == MAX_BODY_BYTES // len(chunk) + 1  # stopped at the first chunk past the limit


async def test_a_body_of_exactly_1_mib_is_accepted(door: Door) -> None:
    prefix = b'{"event": "big", "data": "'
    body = prefix + b"x" * (MAX_BODY_BYTES - len(prefix) - 2) + b'"}'
    assert len(body) == MAX_BODY_BYTES
    assert (await door.bearer_post(body)).status_code == 200


async def test_a_bad_content_length_is_400(door: Door) -> None:
    headers = {"Authorization": f"Bearer {door.bearer}", "Content-Length": "lots"}
    response = await door.client.post("/webhook/coze", content=b"{}", headers=headers)
    assert response.status_code == 400


async def test_a_store_that_cannot_commit_gets_503_and_nothing_is_acknowledged(door: Door) -> None:
    await door.store.close()
    response = await door.bearer_post(seed_body())
    assert response.status_code == 503
    assert response.json()["ok"] is False
    assert "not acknowledged" in response.json()["message"]


async def test_only_post_is_served(door: Door) -> None:
    assert (await door.client.get("/webhook/coze")).status_code == 405


headers_st = st.fixed_dictionaries(
    {},
    optional={
        "Authorization": st.sampled_from(["Bearer ", "Bearer x", "bearer", "Token y"]) | st.text(max_size=30),
        "X-Coze-Signature": st.text(max_size=50),
        "X-Coze-Timestamp": st.text(max_size=20) | st.integers(-(10**18), 10**18).map(str),
        "X-Coze-Nonce": st.text(max_size=300),
        "Content-Type": st.sampled_from(["application/json", "text/plain", "x/y"]),
    },
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=15,
)
bodies = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries({"header": st.dictionaries(st.sampled_from(["event_type", "event_id", "created_at"]),
                                                       json_values)},
                            optional={"event": json_values}).map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries({"event": json_values}, optional={"data": json_values}).map(lambda v: json.dumps(v).encode())
)


def _wire_headers(headers: dict[str, str]) -> dict[str, str]:
    """Header values as a client can put them on the wire: Latin-1 text, no line breaks."""
    return {k: v.encode("latin-1", "replace").decode("latin-1").replace("\r", "").replace("\n", "") for k, v in
            headers.items()}


def test_no_input_gets_a_5xx_or_a_traceback(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    opened = open_door(tmp_path)
    door = loop.run_until_complete(opened.__aenter__())
    try:

        @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(body=bodies, headers=headers_st, use=st.sampled_from(["raw", "signed", "bearer"]))
        def fuzz(body: bytes, headers: dict[str, str], use: str) -> None:
            sent = _wire_headers(headers)
            if use == "signed":
                sent = sign(body, door.verify_token) | {k: v for k, v in sent.items() if k == "Content-Type"}
            elif use == "bearer":
                sent = sent | {"Authorization": f"Bearer {door.bearer}"}
            raw = {k.encode(): v.encode("latin-1") for k, v in sent.items()}
            response = loop.run_until_complete(door.client.post("/webhook/coze", content=body, headers=raw))
            assert response.status_code in (200, 400, 401, 413), response.text
            answer = response.json()
            assert isinstance(answer, dict)
            assert "Traceback" not in response.text
            if use != "raw" and response.status_code == 401:
                raise AssertionError(f"valid credentials refused: {answer}")

        fuzz()
    finally:
        loop.run_until_complete(opened.__aexit__(None, None, None))
        loop.close()


async def test_the_tokens_appear_in_no_answer_and_no_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    async with open_door(tmp_path, webhook_routes=[{"event_type": "*", "tool": "missing.tool"}]) as door:
        answers = [
            await door.signed(coze_body()),
            await door.post(coze_body(), sign(coze_body(), door.verify_token[:-1] + "x")),
            await door.post(seed_body(), {"Authorization": f"Bearer {door.bearer[:-1]}"}),
            await door.bearer_post(b"{bad"),
        ]
        await door.service.dispatcher.dispatch_due()
        answers_text = " ".join(a.text for a in answers) + json.dumps(await door.service.diagnostics())
    for secret in (door.verify_token, door.bearer, door.bearer[:-1]):
        assert secret not in answers_text
        assert secret not in caplog.text
