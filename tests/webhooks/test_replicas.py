"""Two replicas on one PostgreSQL inbox: every event is dispatched once, by one of them."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from kai_bridge.tools.registry import Tool, ToolAnnotations, ToolContext, ToolRegistry
from tests.webhooks.support import Door, open_door, seed_body

pytestmark = pytest.mark.postgres


def recording_registry(name: str, calls: list[tuple[str, str]]) -> ToolRegistry:
    async def record(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        calls.append((name, str(arguments["event"])))
        await anyio.lowlevel.checkpoint()
        return {"by": name}

    registry = ToolRegistry(default_timeout=10)
    registry.add(Tool(
        name="record", title="record", description="records which replica handled which event",
        input_schema={"type": "object", "properties": {"event": {"type": "string"}}}, output_schema=None,
        annotations=ToolAnnotations(read_only=False, destructive=False, idempotent=True, open_world=False),
        handler=record,
    ))
    return registry


async def test_replicas_sharing_a_postgresql_inbox_dispatch_each_event_exactly_once(
    tmp_path: Path, pg_url: str
) -> None:
    calls: list[tuple[str, str]] = []
    route = [{"name": "rec", "event_type": "conversation.message", "tool": "record", "arguments": {"event": "${@id}"}}]
    async with contextlib.AsyncExitStack() as stack:
        doors: list[Door] = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            door = await stack.enter_async_context(open_door(
                tmp_path / name, registry=recording_registry(name, calls), dispatch=True, poll_interval=0.05,
                store_url=pg_url, webhook_routes=route))
            doors.append(door)
        ids = []
        for i in range(60):
            response = await doors[i % 2].bearer_post(seed_body(conversation_id=f"c{i}", message=f"m{i}"))
            assert response.status_code == 200
            ids.append(response.json()["id"])
        changed = asyncio.Event()

        async def wake(_ids: list[str]) -> None:
            changed.set()

        for door in doors:  # either replica may finish the last one
            door.service.feed.subscribe(wake)
        with anyio.fail_after(30):
            while True:
                changed.clear()
                if (await doors[0].store.count_events()).get("done", 0) == len(ids):
                    break
                await changed.wait()
    handled = [event for _, event in calls]
    assert sorted(handled) == sorted(ids)  # each one, once
    assert {name for name, _ in calls} <= {"a", "b"}
    by = {name: sum(n == name for n, _ in calls) for name in ("a", "b")}
    print(f"\nreplica a handled {by['a']}, replica b {by['b']}")
