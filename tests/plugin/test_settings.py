"""The plugin face's settings: refused with a message naming the setting, never echoing the token."""

from __future__ import annotations

import secrets

import pytest

from kai_bridge.config import load_settings
from kai_bridge.errors import ConfigError
from kai_bridge.limits import RateLimit
from kai_bridge.plugin import PluginOptions


def test_defaults_are_the_seed_s_rate_limit_and_a_face_without_token() -> None:
    settings = load_settings(environ={}, check_files=False)
    options = PluginOptions.from_settings(settings, loopback=True)
    assert options.token is None
    assert options.token_header == "Authorization"
    assert options.token_query == ""
    assert options.rate_limit == RateLimit(door="Coze plugin face", per_minute=60, burst=10)
    assert settings.mcp_rate_limit_per_minute > 0
    assert settings.coze_quota_per_second == 0  # no outgoing quota unless configured


def test_the_plugin_settings_come_from_the_environment() -> None:
    token = secrets.token_hex(20)
    settings = load_settings(environ={
        "KAI_BRIDGE_PLUGIN_TOKEN": token, "KAI_BRIDGE_PLUGIN_TOKEN_HEADER": "X-Api-Key",
        "KAI_BRIDGE_PLUGIN_TOKEN_QUERY": "kai_token", "KAI_BRIDGE_PLUGIN_TOOLS": "coffee_knowledge_query",
        "KAI_BRIDGE_PLUGIN_RATE_LIMIT_PER_MINUTE": "120", "KAI_BRIDGE_PLUGIN_RATE_LIMIT_BURST": "20",
        "KAI_BRIDGE_PLUGIN_PUBLIC_URL": "https://kai.example.com/", "KAI_BRIDGE_PLUGIN_WAIT": "9",
    }, check_files=False)
    options = PluginOptions.from_settings(settings, loopback=False)
    assert options.token == token
    assert token not in repr(options)
    assert token not in repr(settings)
    assert (options.token_header, options.token_query, options.tools) == ("X-Api-Key", "kai_token",
                                                                          ("coffee_knowledge_query",))
    assert (options.rate_limit.per_minute, options.rate_limit.burst, options.wait) == (120, 20, 9)
    assert options.public_url == "https://kai.example.com"
    assert options.open_without_token is False


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        pytest.param("PLUGIN_TOKEN", "abc def 0123456789abcdef", "must not contain whitespace", id="token-space"),
        pytest.param("PLUGIN_TOKEN", "0123456789abcdef\t", "must not contain whitespace", id="token-tab"),
        pytest.param("PLUGIN_TOKEN", secrets.token_hex(4), "too short", id="token-short"),
        pytest.param("PLUGIN_TOKEN_HEADER", "X Api Key", "HTTP header name", id="header-with-spaces"),
        pytest.param("PLUGIN_TOKEN_QUERY", "a&b", "parameter name", id="query-name"),
        pytest.param("PLUGIN_PUBLIC_URL", "kai.example.com", "plugin_public_url", id="public-url"),
        pytest.param("PLUGIN_RATE_LIMIT_BURST", "0", "plugin_rate_limit_burst", id="burst-zero"),
        pytest.param("MCP_RATE_LIMIT_PER_MINUTE", "-1", "mcp_rate_limit_per_minute", id="negative-rate"),
        pytest.param("COZE_QUOTA_MAX_WAIT", "-1", "coze_quota_max_wait", id="negative-wait"),
    ],
)
def test_a_bad_plugin_setting_is_refused_without_echoing_it(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={f"KAI_BRIDGE_{name}": value}, check_files=False)
    assert message in str(refused.value)
    if name == "PLUGIN_TOKEN":
        assert value.strip() not in str(refused.value)


def test_an_empty_token_means_none() -> None:
    assert load_settings(environ={"KAI_BRIDGE_PLUGIN_TOKEN": ""}, check_files=False).plugin_token is None
