"""The Coze client, its pool and its credentials are built from the frozen settings, in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from kai_bridge.config import load_settings
from kai_bridge.coze import JWTAuth, PATAuth
from kai_bridge.coze.pipeline import USER_AGENT
from kai_bridge.errors import ConfigError
from kai_bridge.keys import KeyPair, generate_key_pair, write_key_pair
from kai_bridge.wiring import auth_from_settings, client_from_settings, http_client_from_settings, open_coze_session


@pytest.fixture(scope="module")
def key_pair() -> KeyPair:
    return generate_key_pair()


async def test_http_client_pool_and_timeouts_come_from_settings() -> None:
    settings = load_settings(environ={}, overrides={"coze_max_connections": 7, "coze_max_keepalive": 3,
                                                    "coze_timeout": 12.5, "coze_connect_timeout": 2.0})
    async with http_client_from_settings(settings) as http:
        pool = http._transport._pool  # type: ignore[attr-defined]
        assert (pool._max_connections, pool._max_keepalive_connections) == (7, 3)
        assert (http.timeout.read, http.timeout.connect) == (12.5, 2.0)
        assert http.headers["user-agent"] == USER_AGENT


async def test_seed_defaults_are_100_connections_and_30_seconds() -> None:
    async with http_client_from_settings(load_settings(environ={})) as http:
        assert http._transport._pool._max_connections == 100  # type: ignore[attr-defined]
        assert http.timeout.read == 30.0


async def test_jwt_settings_build_a_jwt_client_with_the_configured_audience_and_policies(
    tmp_path: Path, key_pair: KeyPair
) -> None:
    private, _ = write_key_pair(key_pair, tmp_path / "k")
    settings = load_settings(environ={}, overrides={
        "coze_api_base": "https://api.coze.cn", "coze_app_id": "123", "coze_kid": key_pair.kid,
        "coze_private_key_path": private, "coze_jwt_aud": "api.coze.cn", "coze_bot_id": "42",
        "coze_max_retries": 1, "coze_breaker_failures": 2})
    async with http_client_from_settings(settings) as http:
        client = client_from_settings(settings, http=http, auth=auth_from_settings(settings, http=http))
        assert isinstance(client.auth, JWTAuth)
        assert client.auth.aud == "api.coze.cn"
        assert client.base_url == "https://api.coze.cn"
        diagnostics = client.diagnostics()
        assert diagnostics["auth"]["app_id"] == "123"
        assert diagnostics["retry"]["max_retries"] == 1
        assert diagnostics["breaker"]["failure_threshold"] == 2


async def test_the_embedded_sandbox_client_follows_the_retry_and_breaker_settings() -> None:
    settings = load_settings(environ={}, overrides={"coze_max_retries": 0, "coze_breaker_failures": 9})

    async with open_coze_session(settings, announce=lambda _: None) as session:
        diagnostics = session.client.diagnostics()
        await session.client.ping()  # the sandbox accepts the generated key

    assert session.sandbox_url is not None
    assert diagnostics["retry"]["max_retries"] == 0
    assert diagnostics["breaker"]["failure_threshold"] == 9


async def test_pat_settings_build_a_pat_provider() -> None:
    settings = load_settings(environ={}, overrides={"coze_api_base": "https://api.coze.com",
                                                    "coze_pat": "pat_abcdefghijklmnop"})
    async with http_client_from_settings(settings) as http:
        auth = auth_from_settings(settings, http=http)
        assert isinstance(auth, PATAuth)
        assert await auth.get_token() == "pat_abcdefghijklmnop"
        assert "pat_abcdefghijklmnop" not in repr(auth)


async def test_no_credentials_is_a_config_error_naming_the_settings() -> None:
    settings = load_settings(environ={})
    async with http_client_from_settings(settings) as http:
        with pytest.raises(ConfigError, match="coze_app_id"):
            auth_from_settings(settings, http=http)

