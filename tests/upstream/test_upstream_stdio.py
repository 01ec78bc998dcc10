"""An upstream KAI server over stdio: listing, proxying, timeouts, errors, death and restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import anyio
import pytest

from kai_bridge.errors import ConfigError, ToolInputError, UpstreamToolError
from kai_bridge.tools import ToolContext, ToolRegistry
from kai_bridge.upstream import UpstreamManager, UpstreamState

from .conftest import API_KEY, HeldSleeps, stdio_config

EXPECTED = {"kai.add", "kai.coffee_knowledge_query", "kai.echo", "kai.env", "kai.fail", "kai.greet", "kai.grow", "kai.pid", "kai.slow", "kai.steps"}


def manager(registry: ToolRegistry, *configs: object, **kw: object) -> UpstreamManager:
    options: dict[str, object] = {"backoff_initial": 0.05, "backoff_max": 0.5}
    options.update(kw)
    return UpstreamManager(configs=list(configs), registry=registry, **options)  # type: ignore[arg-type]


async def test_tools_of_a_stdio_upstream_are_registered_under_its_namespace(registry: ToolRegistry) -> None:
    async with manager(registry, stdio_config()) as m:
        assert await m.wait_ready(30)
        assert {t.name for t in registry.list()} == EXPECTED


async def test_titles_annotations_and_output_schemas_are_carried_across(registry: ToolRegistry) -> None:
    async with manager(registry, stdio_config()) as m:
        assert await m.wait_ready(30)
        echo = registry.get("kai.echo")
        assert echo.title == "Echo"
        assert echo.description == "Return the text unchanged."
        assert echo.annotations.read_only
        assert echo.annotations.idempotent
        assert not echo.annotations.open_world
        add = registry.get("kai.add")
        assert add.output_schema is not None
        assert "total" in add.output_schema["properties"]
        assert add.input_schema["required"] == ["a", "b"]
        assert registry.get("kai.greet").output_schema is None


async def test_a_call_is_proxied_and_returns_the_structured_result(registry: ToolRegistry) -> None:
    async with manager(registry, stdio_config()) as m:
        assert await m.wait_ready(30)
        assert await registry.call("kai.add", {"a": 2, "b": 40}) == {"total": 42}
        assert await registry.call("kai.echo", {"text": "耶加雪菲"}) == {"result": "耶加雪菲"}


async def test_a_tool_without_structured_output_returns_its_text_content(registry: ToolRegistry) -> None:
    async with manager(registry, stdio_config()) as m:
        assert await m.wait_ready(30)
        assert await registry.call("kai.greet", {"name": "Ada"}) == {"content": ["Hello, Ada!"]}


async def test_many_concurrent_calls_share_one_upstream_session(registry: ToolRegistry) -> None:
    async with manager(registry, stdio_config()) as m:
        assert await m.wait_ready(30)
        results = await asyncio.gather(*(registry.call("kai.add", {"a": i, "b": i}) for i in range(100)))
        assert results == [{"total": 2 * i} for i in range(100)]


async def test_a_call_slower_than_the_upstream_timeout_fails_and_the_link_stays_up(registry: ToolRegistry) -> None:
    async with manager(registry, stdio_config(timeout=0.5)) as m:
        assert await m.wait_ready(30)
        with anyio.fail_after(10), pytest.raises(UpstreamToolError) as info:
            await registry.call("kai.slow", {"seconds": 60})
        message = str(info.value)
        assert "'kai'" in message
        assert "'slow'" in message
        assert "0.5 s" in message
        assert "timeout" in message
        assert await registry.call("kai.echo", {"text": "still here"}) == {"result": "still here"}
        (diag,) = m.diagnostics()
        assert (diag["timeouts"], diag["failures"], diag["calls"]) == (1, 1, 2)
        assert diag["state"] == "connected"


async def test_an_upstream_error_result_becomes_an_upstream_tool_error_with_its_message(
    registry: ToolRegistry,
) -> None:
    async with manager(registry, stdio_config()) as m:
        assert await m.wait_ready(30)
        with pytest.raises(UpstreamToolError, match=r"upstream KAI server 'kai' tool 'fail' failed: .*beans burnt"):
            await registry.call("kai.fail", {"message": "beans burnt"})


async def test_arguments_are_checked_against_the_upstream_schema_before_any_call(registry: ToolRegistry) -> None:
    async with manager(registry, stdio_config()) as m:
        assert await m.wait_ready(30)
        with pytest.raises(ToolInputError, match="'a'"):
            await registry.call("kai.add", {"a": "two", "b": 2})
        assert m.diagnostics()[0]["calls"] == 0


async def test_after_the_upstream_dies_calls_fail_fast_with_a_clear_error(registry: ToolRegistry) -> None:
    async with manager(registry, stdio_config(timeout=60), backoff_initial=30, backoff_max=30) as m:
        assert await m.wait_ready(30)
        pid = (await registry.call("kai.pid", {}))["result"]
        os.kill(pid, signal.SIGKILL)
        with anyio.fail_after(5), pytest.raises(UpstreamToolError) as info:
            await registry.call("kai.echo", {"text": "anyone?"})
        assert "upstream KAI server 'kai'" in str(info.value)
        assert ("not connected" in str(info.value)) or ("disconnected" in str(info.value))
        assert await m.wait_state("kai", UpstreamState.FAILED, timeout=10)
        with (
            anyio.fail_after(1),
            pytest.raises(
                UpstreamToolError, match=r"'kai' is not connected .*last error: the upstream closed the connection"
            ),
        ):
            await registry.call("kai.echo", {"text": "anyone?"})
        assert "kai.echo" in registry  # kept, failing fast, until the grace period ends


async def test_a_dead_stdio_upstream_is_restarted_and_its_tools_come_back(registry: ToolRegistry) -> None:
    async with manager(registry, stdio_config()) as m:
        assert await m.wait_ready(30)
        first = (await registry.call("kai.pid", {}))["result"]
        os.kill(first, signal.SIGKILL)
        assert await m.wait_state("kai", UpstreamState.FAILED, UpstreamState.CONNECTING, timeout=10)
        assert await m.wait_ready(30)
        second = (await registry.call("kai.pid", {}))["result"]
        assert second != first
        assert {t.name for t in registry.list()} == EXPECTED
        (diag,) = m.diagnostics()
        assert diag["connects"] == 2
        assert diag["last_error"] == "the upstream closed the connection"


async def test_tools_of_an_upstream_dead_past_the_grace_period_are_removed(
    registry: ToolRegistry, tmp_path: Path
) -> None:
    once = stdio_config(extra=["--once", str(tmp_path / "started")])
    async with manager(registry, once, tool_grace=0) as m:
        assert await m.wait_ready(30)
        gone = asyncio.Event()
        registry.subscribe(lambda: gone.set() if "kai.echo" not in registry else None)
        os.kill((await registry.call("kai.pid", {}))["result"], signal.SIGKILL)
        async with asyncio.timeout(10):
            await gone.wait()
        assert len(registry) == 0
        assert m.state("kai") is not UpstreamState.CONNECTED


async def test_a_tools_list_changed_notification_registers_the_new_tool(registry: ToolRegistry) -> None:
    async with manager(registry, stdio_config()) as m:
        assert await m.wait_ready(30)
        appeared = asyncio.Event()
        registry.subscribe(lambda: appeared.set() if "kai.extra" in registry else None)
        await registry.call("kai.grow", {})
        async with asyncio.timeout(10):
            await appeared.wait()
        assert await registry.call("kai.extra", {}) == {"result": "extra"}


async def test_startup_does_not_wait_for_an_upstream_that_cannot_start(registry: ToolRegistry) -> None:
    broken = stdio_config("broken").model_copy(update={"command": ["/nonexistent/kai-server-binary"]})
    with anyio.fail_after(5):
        async with manager(registry, broken, stdio_config()) as m:
            assert await m.wait_ready(30, names=["kai"])
            assert await m.wait_state("broken", UpstreamState.FAILED, timeout=10)
            broken_diag = next(d for d in m.diagnostics() if d["name"] == "broken")
            assert broken_diag["last_error"] == "cannot start 'kai-server-binary': command not found"
            assert broken_diag["tool_count"] == 0
            assert await registry.call("kai.echo", {"text": "ok"}) == {"result": "ok"}


async def test_closing_removes_the_tools_and_ends_the_server_process(registry: ToolRegistry) -> None:
    async with manager(registry, stdio_config()) as m:
        assert await m.wait_ready(30)
        pid = (await registry.call("kai.pid", {}))["result"]
    assert len(registry) == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_env_and_the_api_key_reach_a_stdio_upstream_but_never_the_diagnostics(
    registry: ToolRegistry,
) -> None:
    config = stdio_config(env={"KAI_REGION": "cn"}, api_key=API_KEY)
    async with manager(registry, config) as m:
        assert await m.wait_ready(30)
        assert await registry.call("kai.env", {"name": "KAI_REGION"}) == {"result": "cn"}
        assert await registry.call("kai.env", {"name": "KAI_API_KEY"}) == {"result": API_KEY}
        text = json.dumps(m.diagnostics())
        assert API_KEY not in text
        assert json.loads(text)[0]["target"] == Path(sys.executable).name


def test_two_upstreams_with_one_name_are_a_config_error(registry: ToolRegistry) -> None:
    with pytest.raises(ConfigError, match=r"unique.*kai"):
        UpstreamManager(configs=[stdio_config(), stdio_config()], registry=registry)


class RecordingContext(ToolContext):
    def __init__(self) -> None:
        self.progress: list[tuple[float, float | None, str | None]] = []

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        self.progress.append((progress, total, message))


async def test_upstream_progress_reaches_the_callers_context(registry: ToolRegistry) -> None:
    async with manager(registry, stdio_config()) as m:
        assert await m.wait_ready(30)
        ctx = RecordingContext()
        assert await registry.call("kai.steps", {"n": 3}, ctx=ctx) == {"result": 3}
        assert ctx.progress == [(1, 3, "step 1 of 3"), (2, 3, "step 2 of 3"), (3, 3, "step 3 of 3")]


async def test_a_hung_upstream_is_found_by_the_heartbeat_and_replaced(registry: ToolRegistry) -> None:
    # The heartbeat and the backoff wait on the test (HeldSleeps), not on the clock; the only
    # real time left is the ping's own limit (min(heartbeat_interval, connect_timeout) = 0.5 s),
    # which a stopped process never answers. Start-up keeps the default 10 s connect timeout.
    sleeps = HeldSleeps()
    async with manager(registry, stdio_config(), heartbeat_interval=0.5, sleep=sleeps) as m:
        assert await m.wait_ready(30)
        hung = (await registry.call("kai.pid", {}))["result"]
        os.kill(hung, signal.SIGSTOP)  # alive but silent: only a ping can tell
        try:
            sleeps.release()  # the heartbeat's wait ends: it pings the stopped server
            assert await m.wait_state("kai", UpstreamState.FAILED, timeout=15)
            assert "did not answer a ping" in (m.diagnostics()[0]["last_error"] or "")
            sleeps.release()  # the backoff ends: a new server is started
            assert await m.wait_ready(30)
            assert (await registry.call("kai.pid", {}))["result"] != hung
            assert m.diagnostics()[0]["connects"] == 2
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(hung, signal.SIGKILL)
