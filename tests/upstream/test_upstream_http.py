"""An upstream KAI server over Streamable HTTP with a bearer API key."""

from __future__ import annotations

import json

import anyio
import pytest
from pydantic import SecretStr

from kai_bridge.config import UpstreamConfig
from kai_bridge.errors import UpstreamToolError
from kai_bridge.tools import ToolRegistry
from kai_bridge.upstream import UpstreamManager, UpstreamState

from .conftest import API_KEY, HeldSleeps, HttpServer


def http_config(url: str, *, name: str = "kai", key: str | None = API_KEY, timeout: float = 10.0) -> UpstreamConfig:
    return UpstreamConfig(name=name, url=url, api_key=SecretStr(key) if key is not None else None, timeout=timeout)


def manager(
    registry: ToolRegistry, *configs: UpstreamConfig, backoff: float = 0.05, sleeps: HeldSleeps | None = None
) -> UpstreamManager:
    return UpstreamManager(
        configs=list(configs),
        registry=registry,
        backoff_initial=backoff,
        backoff_max=0.5,
        wall_clock=lambda: 1_767_000_000.0,
        sleep=sleeps if sleeps is not None else anyio.sleep,
    )


async def test_with_the_right_api_key_tools_are_listed_and_calls_proxied(
    registry: ToolRegistry, http_server: HttpServer
) -> None:
    async with manager(registry, http_config(http_server.url)) as m:
        assert await m.wait_ready(30)
        assert "kai.add" in registry
        assert await registry.call("kai.add", {"a": 20, "b": 22}) == {"total": 42}
        assert await registry.call("kai.greet", {"name": "Kai"}) == {"content": ["Hello, Kai!"]}


async def test_with_a_wrong_api_key_the_upstream_fails_with_a_credentials_error_and_no_key_shown(
    registry: ToolRegistry, http_server: HttpServer
) -> None:
    wrong = "wrong-key-5d1a"
    async with manager(registry, http_config(http_server.url, key=wrong)) as m:
        assert await m.wait_state("kai", UpstreamState.FAILED, timeout=30)
        (diag,) = m.diagnostics()
        assert diag["last_error"] == (
            "the upstream refused the credentials (HTTP 401): check the api_key configured for upstream 'kai'"
        )
        assert diag["tool_count"] == 0
        assert len(registry) == 0
        assert wrong not in json.dumps(diag)


async def test_without_an_api_key_a_protected_upstream_refuses_too(
    registry: ToolRegistry, http_server: HttpServer
) -> None:
    async with manager(registry, http_config(http_server.url, key=None)) as m:
        assert await m.wait_state("kai", UpstreamState.FAILED, timeout=30)
        assert "HTTP 401" in (m.diagnostics()[0]["last_error"] or "")


async def test_a_killed_http_upstream_fails_fast_and_is_reconnected_when_it_returns(
    registry: ToolRegistry, http_server: HttpServer
) -> None:
    async with manager(registry, http_config(http_server.url, timeout=60)) as m:
        assert await m.wait_ready(30)
        assert await registry.call("kai.echo", {"text": "one"}) == {"result": "one"}
        await http_server.kill()
        with anyio.fail_after(5), pytest.raises(UpstreamToolError, match=r"upstream KAI server 'kai'"):
            await registry.call("kai.echo", {"text": "two"})
        assert m.state("kai") is not UpstreamState.CONNECTED
        await http_server.start()  # same port
        assert await m.wait_ready(30)
        assert await registry.call("kai.echo", {"text": "three"}) == {"result": "three"}
        (diag,) = m.diagnostics()
        assert diag["connects"] == 2


async def test_a_slow_http_call_times_out_with_the_upstream_timeout(
    registry: ToolRegistry, http_server: HttpServer
) -> None:
    async with manager(registry, http_config(http_server.url, timeout=0.5)) as m:
        assert await m.wait_ready(30)
        with anyio.fail_after(10), pytest.raises(UpstreamToolError, match=r"'slow' within 0\.5 s"):
            await registry.call("kai.slow", {"seconds": 60})
        assert await registry.call("kai.echo", {"text": "ok"}) == {"result": "ok"}


async def test_diagnostics_describe_each_upstream_and_contain_no_secret(
    registry: ToolRegistry, http_server: HttpServer
) -> None:
    unreachable = UpstreamConfig(
        name="gone",
        url="http://ops:hunter2pw@127.0.0.1:1/mcp?token=querysecret",
        api_key=SecretStr("gone-key-91c2"),
        timeout=3,
    )
    # No wait ever ends (HeldSleeps, never released): 'gone' stays failed after its first attempt
    # instead of going back to connecting when the backoff ends, and no heartbeat fires.
    sleeps = HeldSleeps()
    async with manager(registry, http_config(http_server.url), unreachable, sleeps=sleeps) as m:
        assert await m.wait_ready(30, names=["kai"])
        assert await m.wait_state("gone", UpstreamState.FAILED, timeout=30)
        await registry.call("kai.echo", {"text": "x"})
        with pytest.raises(UpstreamToolError):
            await registry.call("kai.fail", {"message": "no"})
        kai, gone = m.diagnostics()
    assert kai == {
        "name": "kai",
        "transport": "http",
        "target": http_server.url,
        "state": "connected",
        "tool_count": 10,
        "tool_names": [
            "kai.add",
            "kai.coffee_knowledge_query",
            "kai.echo",
            "kai.env",
            "kai.fail",
            "kai.greet",
            "kai.grow",
            "kai.pid",
            "kai.slow",
            "kai.steps",
        ],
        "skipped_tools": [],
        "last_error": None,
        "connected_since": 1_767_000_000.0,
        "connects": 1,
        "next_attempt_in": None,
        "server": {"name": "kai-fixture", "version": "1.0.0"},
        "protocol_version": "2025-11-25",
        "timeout": 10.0,
        "calls": 2,
        "failures": 1,
        "timeouts": 0,
        "last_latency_ms": kai["last_latency_ms"],
    }
    assert kai["last_latency_ms"] > 0
    assert gone["target"] == "http://127.0.0.1:1/mcp"
    assert gone["state"] == "failed"
    assert gone["last_error"].startswith("cannot reach http://127.0.0.1:1/mcp")
    assert gone["next_attempt_in"] is not None
    assert gone["connects"] == 0
    text = json.dumps([kai, gone])
    for secret in (API_KEY, "gone-key-91c2", "hunter2pw", "querysecret"):
        assert secret not in text
