"""Health declarations: what the root opens is closed in reverse, and every reader sees the same checks."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import pytest

from kai_bridge.errors import StoreError
from kai_bridge.health import Health


@contextlib.asynccontextmanager
async def _service(name: str, events: list[str]) -> AsyncIterator[str]:
    events.append(f"open {name}")
    try:
        yield name
    finally:
        events.append(f"close {name}")


async def test_services_close_in_reverse_order_of_opening() -> None:
    events: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        health = Health(stack)
        assert await health.open("first", _service("a", events)) == "a"
        await health.open("second", _service("b", events))
    assert events == ["open a", "open b", "close b", "close a"]


async def test_a_ping_receives_the_opened_service_and_its_detail_is_reported() -> None:
    async def ping(value: str) -> str:
        return f"{value} answers"

    async with contextlib.AsyncExitStack() as stack:
        health = Health(stack, clock=lambda: 1234.0)
        await health.open("store", _service("sqlite", []), ping=ping)
        [result] = await health.run()
    assert (result.name, result.ok, result.detail, result.critical, result.at) == (
        "store", True, "sqlite answers", True, 1234.0)
    assert result.ms >= 0


async def test_failures_say_why_in_words_safe_to_show() -> None:
    async def ours() -> str:
        raise StoreError("the store at sqlite:///x.db is read-only")

    async def foreign() -> str:
        raise RuntimeError("password=hunter2 leaked by a library")

    async with contextlib.AsyncExitStack() as stack:
        health = Health(stack)
        health.declare("store", ping=ours)
        health.declare("other", ping=foreign, critical=False)
        store, other = await health.run()
    assert not store.ok
    assert store.detail == "the store at sqlite:///x.db is read-only"
    assert not other.ok
    assert not other.critical
    assert "hunter2" not in other.detail
    assert other.detail.startswith("RuntimeError")


async def test_a_ping_that_hangs_fails_after_the_timeout_without_holding_the_others() -> None:
    release = anyio.Event()

    async def hangs() -> str:
        await release.wait()
        return "never"

    async def quick() -> str:
        return "fine"

    async with contextlib.AsyncExitStack() as stack:
        health = Health(stack)
        health.declare("hangs", ping=hangs)
        health.declare("quick", ping=quick)
        with anyio.fail_after(5):
            hung, fine = await health.run(timeout=0.05)
    assert not hung.ok
    assert hung.detail == "no answer within 0.05 s"
    assert fine.ok


async def test_the_last_results_are_kept_for_readers_that_must_not_ping() -> None:
    answers = iter(["one", "two"])

    async def ping() -> str:
        return next(answers)

    async with contextlib.AsyncExitStack() as stack:
        health = Health(stack)
        health.declare("coze", ping=ping)
        assert health.last == {}
        await health.run()
        await health.run()
        assert health.last["coze"].detail == "two"
        assert [check.name for check in health.checks] == ["coze"]


async def test_a_name_is_declared_once() -> None:
    async def ping() -> str:
        return "ok"

    async with contextlib.AsyncExitStack() as stack:
        health = Health(stack)
        health.declare("coze", ping=ping)
        with pytest.raises(ValueError, match="already declared"):
            health.declare("coze", ping=ping)
