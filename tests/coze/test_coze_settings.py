"""The client, its pool and its credentials are built from the frozen settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from kai_bridge.config import load_settings
from kai_bridge.coze.auth import JWTAuth, PATAuth, auth_from_settings
from kai_bridge.coze.client import USER_AGENT, CozeClient, build_http_client
from kai_bridge.errors import ConfigError
from kai_bridge.keys import KeyPair, write_key_pair


async def test_http_client_pool_and_timeouts_come_from_settings() -> None:
    settings = load_settings(environ={}, overrides={"coze_max_connections": 7, "coze_max_keepalive": 3,
                                                    "coze_timeout": 12.5, "coze_connect_timeout": 2.0})
    async with build_http_client(settings) as http:
        pool = http._transport._pool  # type: ignore[attr-defined]
        assert (pool._max_connections, pool._max_keepalive_connections) == (7, 3)
        assert (http.timeout.read, http.timeout.connect) == (12.5, 2.0)
        assert http.headers["user-agent"] == USER_AGENT


async def test_seed_defaults_are_100_connections_and_30_seconds() -> None:
    async with build_http_client(load_settings(environ={})) as http:
        assert http._transport._pool._max_connections == 100  # type: ignore[attr-defined]
        assert http.timeout.read == 30.0


async def test_jwt_settings_build_a_jwt_provider_with_the_configured_audience(
    tmp_path: Path, key_pair: KeyPair
) -> None:
    private, _ = write_key_pair(key_pair, tmp_path / "k")
    settings = load_settings(environ={}, overrides={
        "coze_api_base": "https://api.coze.cn", "coze_app_id": "123", "coze_kid": key_pair.kid,
        "coze_private_key_path": private, "coze_jwt_aud": "api.coze.cn", "coze_bot_id": "42"})
    async with build_http_client(settings) as http:
        client = CozeClient.from_settings(settings, http=http)
        assert isinstance(client.auth, JWTAuth)
        assert client.auth.aud == "api.coze.cn"
        assert client.base_url == "https://api.coze.cn"
        assert client.diagnostics()["auth"]["app_id"] == "123"


async def test_pat_settings_build_a_pat_provider(tmp_path: Path) -> None:
    settings = load_settings(environ={}, overrides={"coze_api_base": "https://api.coze.com",
                                                    "coze_pat": "pat_abcdefghijklmnop"})
    async with build_http_client(settings) as http:
        auth = auth_from_settings(settings, http=http)
        assert isinstance(auth, PATAuth)
        assert await auth.get_token() == "pat_abcdefghijklmnop"
        assert "pat_abcdefghijklmnop" not in repr(auth)


async def test_no_credentials_is_a_config_error_naming_the_settings() -> None:
    settings = load_settings(environ={})
    async with build_http_client(settings) as http:
        with pytest.raises(ConfigError, match="coze_app_id"):
            auth_from_settings(settings, http=http)
