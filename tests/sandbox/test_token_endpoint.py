"""The JWT token endpoint: what it accepts and how it refuses (flat OAuth error shape)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anyio.to_thread
import httpx
import pytest
from cozepy import CozeAPIError, JWTOAuthApp

from kai_bridge.keys import KeyPair
from kai_bridge.sandbox import SandboxHandle
from tests.sandbox.conftest import SandboxFactory
from tests.sandbox.support import APP_ID, FakeClock, make_jwt, token_body

T = TypeVar("T")
TOKEN_PATH = "/api/permission/oauth2/token"


async def in_thread(fn: Callable[[], T]) -> T:
    with anyio.fail_after(30):
        return await anyio.to_thread.run_sync(fn)


@pytest.fixture
async def raw(sandbox: SandboxHandle) -> Any:
    async with httpx.AsyncClient(base_url=sandbox.base_url, timeout=10) as http:
        yield http


async def exchange(raw: httpx.AsyncClient, jwt_token: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return await raw.post(
        TOKEN_PATH, json=token_body() if body is None else body, headers={"Authorization": f"Bearer {jwt_token}"}
    )


def assert_oauth_error(response: httpx.Response, *, status: int, error_code: str, contains: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-tt-logid"]
    body = response.json()
    assert set(body) == {"error_code", "error_message", "error"}
    assert body["error_code"] == error_code
    assert body["error"] == error_code
    assert contains in body["error_message"]


@pytest.fixture
def closing_apps() -> Iterator[list[JWTOAuthApp]]:
    apps: list[JWTOAuthApp] = []
    yield apps
    for app in apps:
        client = app._requester._sync_client
        if client is not None:
            client.close()


async def test_a_valid_jwt_gets_a_token_with_absolute_expiry(
    raw: httpx.AsyncClient, sandbox: SandboxHandle, key_pair: KeyPair
) -> None:
    before = int(time.time())

    response = await exchange(raw, make_jwt(key_pair, aud=sandbox.host_port), token_body(1200))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["token_type"] == "Bearer"
    assert before + 1200 <= body["expires_in"] <= int(time.time()) + 1200


async def test_duration_defaults_to_900_seconds(
    raw: httpx.AsyncClient, sandbox: SandboxHandle, key_pair: KeyPair
) -> None:
    response = await exchange(raw, make_jwt(key_pair, aud=sandbox.host_port), token_body(None))

    assert response.status_code == 200
    assert abs(response.json()["expires_in"] - (time.time() + 900)) < 5


@pytest.mark.parametrize(
    ("case", "error_code", "status", "contains"),
    [
        pytest.param("wrong_key", "invalid_client", 401, "signature verification failed", id="signed-with-another-key"),
        pytest.param("unknown_kid", "invalid_client", 401, "invalid jwt: kid not been registred", id="unknown-kid"),
        pytest.param("expired", "invalid_client", 401, "expired", id="expired"),
        pytest.param("wrong_aud", "invalid_client", 401, "aud must be", id="wrong-aud"),
        pytest.param("wrong_iss", "invalid_client", 401, "iss must be", id="wrong-iss"),
        pytest.param("future_iat", "invalid_client", 401, "iat is in the future", id="iat-in-the-future"),
        pytest.param("no_jti", "invalid_client", 401, "jti is required", id="missing-jti"),
        pytest.param("too_long", "invalid_client", 401, "exp - iat", id="lifetime-too-long"),
        pytest.param("garbage", "invalid_client", 401, "not a well-formed JWT", id="not-a-jwt"),
        pytest.param("no_header", "invalid_client", 401, "missing JWT", id="no-authorization"),
        pytest.param("long_duration", "invalid_request", 400, "duration_seconds", id="duration-over-86399"),
        pytest.param("zero_duration", "invalid_request", 400, "duration_seconds", id="duration-zero"),
        pytest.param("bad_grant", "unsupported_grant_type", 400, "not supported grant type: password", id="grant"),
    ],
)
async def test_bad_token_requests_are_refused_in_the_flat_oauth_shape(
    raw: httpx.AsyncClient,
    sandbox: SandboxHandle,
    key_pair: KeyPair,
    other_key_pair: KeyPair,
    case: str,
    error_code: str,
    status: int,
    contains: str,
) -> None:
    aud = sandbox.host_port
    now = time.time()
    body = token_body()
    headers: dict[str, str] = {}
    token: str | None
    if case == "wrong_key":
        token = make_jwt(key_pair, aud=aud, private_pem=other_key_pair.private_pem)
    elif case == "unknown_kid":
        token = make_jwt(other_key_pair, aud=aud)
    elif case == "expired":
        token = make_jwt(key_pair, aud=aud, iat=now - 4000, exp=now - 400)
    elif case == "wrong_aud":
        token = make_jwt(key_pair, aud="api.coze.cn")
    elif case == "wrong_iss":
        token = make_jwt(key_pair, aud=aud, iss="some-other-app")
    elif case == "future_iat":
        token = make_jwt(key_pair, aud=aud, iat=now + 600, exp=now + 1200)
    elif case == "no_jti":
        token = make_jwt(key_pair, aud=aud, jti="")
    elif case == "too_long":
        token = make_jwt(key_pair, aud=aud, exp=now + 3 * 86400)
    elif case == "garbage":
        token = "not.a.jwt"
    elif case == "no_header":
        token = None
    elif case == "long_duration":
        token, body = make_jwt(key_pair, aud=aud), token_body(86400)
    elif case == "zero_duration":
        token, body = make_jwt(key_pair, aud=aud), token_body(0)
    else:
        token, body = make_jwt(key_pair, aud=aud), {**token_body(), "grant_type": "password"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"

    response = await raw.post(TOKEN_PATH, json=body, headers=headers)

    assert_oauth_error(response, status=status, error_code=error_code, contains=contains)
    assert sandbox.state.tokens_issued == 0
    assert sandbox.state.token_failures[error_code] == 1


async def test_a_jwt_is_accepted_only_once(raw: httpx.AsyncClient, sandbox: SandboxHandle, key_pair: KeyPair) -> None:
    token = make_jwt(key_pair, aud=sandbox.host_port)

    first = await exchange(raw, token)
    second = await exchange(raw, token)

    assert first.status_code == 200
    assert_oauth_error(second, status=401, error_code="invalid_client", contains="jti has already been used")


async def test_a_refused_grant_does_not_burn_the_jti(
    raw: httpx.AsyncClient, sandbox: SandboxHandle, key_pair: KeyPair
) -> None:
    token = make_jwt(key_pair, aud=sandbox.host_port)

    refused = await exchange(raw, token, token_body(90000))
    accepted = await exchange(raw, token, token_body(900))

    assert refused.status_code == 400
    assert accepted.status_code == 200


async def test_a_configured_audience_replaces_the_host(make_sandbox: SandboxFactory, key_pair: KeyPair) -> None:
    async with make_sandbox(audience="api.coze.cn") as handle, httpx.AsyncClient(base_url=handle.base_url) as http:
        by_host = await exchange(http, make_jwt(key_pair, aud=handle.host_port))
        by_config = await exchange(http, make_jwt(key_pair, aud="api.coze.cn"))

    assert_oauth_error(by_host, status=401, error_code="invalid_client", contains="aud must be 'api.coze.cn'")
    assert by_config.status_code == 200


async def test_the_enterprise_account_token_path_is_served_too(
    raw: httpx.AsyncClient, sandbox: SandboxHandle, key_pair: KeyPair
) -> None:
    response = await raw.post(
        "/api/permission/oauth2/account/123/token",
        json=token_body(),
        headers={"Authorization": f"Bearer {make_jwt(key_pair, aud=sandbox.host_port)}"},
    )

    assert response.status_code == 200


async def test_a_body_that_is_not_json_is_an_invalid_request(
    raw: httpx.AsyncClient, sandbox: SandboxHandle, key_pair: KeyPair
) -> None:
    response = await raw.post(
        TOKEN_PATH,
        content=b"{not json",
        headers={"Authorization": f"Bearer {make_jwt(key_pair, aud=sandbox.host_port)}"},
    )

    assert_oauth_error(response, status=400, error_code="invalid_request", contains="JSON object")


@pytest.mark.parametrize(
    ("case", "contains"),
    [
        pytest.param("wrong_key", "signature verification failed", id="signed-with-another-key"),
        pytest.param("unknown_kid", "invalid jwt: kid not been registred", id="unknown-kid"),
        pytest.param("wrong_iss", "iss must be", id="wrong-iss"),
        pytest.param("long_duration", "duration_seconds", id="duration-over-86399"),
    ],
)
async def test_cozepy_raises_coze_api_error_with_the_sandbox_message(
    sandbox: SandboxHandle,
    key_pair: KeyPair,
    other_key_pair: KeyPair,
    closing_apps: list[JWTOAuthApp],
    case: str,
    contains: str,
) -> None:
    private = key_pair.private_pem.decode()
    kid = key_pair.kid
    client_id = APP_ID
    ttl = 900
    if case == "wrong_key":
        private = other_key_pair.private_pem.decode()
    elif case == "unknown_kid":
        private, kid = other_key_pair.private_pem.decode(), other_key_pair.kid
    elif case == "wrong_iss":
        client_id = "another-app"
    else:
        ttl = 86400
    app = JWTOAuthApp(client_id, private, kid, sandbox.base_url)
    closing_apps.append(app)

    with pytest.raises(CozeAPIError) as caught:
        await in_thread(lambda: app.get_access_token(ttl=ttl))

    assert caught.value.code is None
    assert caught.value.msg is not None
    assert contains in caught.value.msg


async def test_cozepy_sees_a_wrong_audience_refused(
    make_sandbox: SandboxFactory, key_pair: KeyPair, closing_apps: list[JWTOAuthApp]
) -> None:
    async with make_sandbox(audience="api.coze.com") as handle:
        app = JWTOAuthApp(APP_ID, key_pair.private_pem.decode(), key_pair.kid, handle.base_url)
        closing_apps.append(app)
        with pytest.raises(CozeAPIError) as caught:
            await in_thread(app.get_access_token)

    assert caught.value.msg is not None
    assert "aud must be 'api.coze.com'" in caught.value.msg


async def test_cozepy_sees_an_expired_jwt_refused(
    make_sandbox: SandboxFactory, key_pair: KeyPair, closing_apps: list[JWTOAuthApp]
) -> None:
    clock = FakeClock()
    clock.advance(2 * 3600)  # the sandbox lives two hours ahead: cozepy's one-hour JWT is stale
    async with make_sandbox(clock=clock) as handle:
        app = JWTOAuthApp(APP_ID, key_pair.private_pem.decode(), key_pair.kid, handle.base_url)
        closing_apps.append(app)
        with pytest.raises(CozeAPIError) as caught:
            await in_thread(app.get_access_token)

    assert caught.value.msg is not None
    assert "expired" in caught.value.msg
