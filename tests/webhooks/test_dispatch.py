"""The dispatcher over a real SQLite inbox: at least once, retries with back-off, dead letter, recovery."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from kai_bridge.errors import ToolError
from kai_bridge.store.base import InboxEvent
from kai_bridge.tools.registry import Tool, ToolAnnotations, ToolContext, ToolRegistry
from kai_bridge.webhooks import BotStates, Dispatcher
from tests.webhooks.support import Door, coze_body, open_door, seed_body


class Clock:
    def __init__(self) -> None:
        self.now = 1_760_000_000.0

    def __call__(self) -> float:
        return self.now


def tool(name: str, handler: Callable[[dict[str, Any], ToolContext], Awaitable[dict[str, Any]]]) -> Tool:
    return Tool(
        name=name, title=name, description=f"test tool {name}", output_schema=None, handler=handler,
        input_schema={"type": "object", "properties": {"text": {"type": "string"}}, "additionalProperties": False},
        annotations=ToolAnnotations(read_only=False, destructive=False, idempotent=True, open_world=False),
    )


class Tools:
    """A real registry with two tools: ``record`` (keeps its calls) and ``flaky`` (fails ``failures`` times)."""

    def __init__(self, *, failures: int = 0) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.keys: list[str | None] = []  # the idempotency key of each flaky call
        self.failures = failures
        self.registry = ToolRegistry(default_timeout=10)

        async def record(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
            self.calls.append(("record", arguments))
            return {"echo": arguments.get("text"), "caller": ctx.caller_id}

        async def flaky(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
            self.calls.append(("flaky", arguments))
            self.keys.append(ctx.idempotency_key)
            if self.failures > 0:
                self.failures -= 1
                raise ToolError("the KAI system is down")
            return {"ok": True}

        self.registry.add(tool("record", record))
        self.registry.add(tool("flaky", flaky))


def routes(*items: tuple[str, str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": name, "event_type": "conversation.message", "tool": tool_name, "arguments": arguments}
            for name, tool_name, arguments in items]


async def stored(door: Door, event_id: str) -> InboxEvent:
    event = await door.store.get_event(event_id=event_id)
    assert event is not None
    return event


async def test_an_event_runs_every_handler_once_and_is_done_with_their_results(tmp_path: Path) -> None:
    tools = Tools()
    config = routes(("echo", "record", {"text": "${data.message}"}))
    async with open_door(tmp_path, registry=tools.registry, webhook_routes=config) as door:
        event_id = (await door.bearer_post(seed_body(message="hi there"))).json()["id"]
        assert await door.service.dispatcher.dispatch_due() == 1
        assert await door.service.dispatcher.dispatch_due() == 0
        event = await stored(door, event_id)
    assert (event.status, event.attempts, event.last_error) == ("done", 1, None)
    handlers = json.loads(event.result or "")["handlers"]
    assert set(handlers) == {"log", "conversation", "route:echo"}
    assert handlers["route:echo"]["result"] == {"tool": "record",
                                                "result": {"echo": "hi there", "caller": "webhook-route-echo"}}
    assert tools.calls == [("record", {"text": "hi there"})]


async def test_a_failing_route_is_retried_with_back_off_then_dead_with_its_last_error(tmp_path: Path) -> None:
    clock = Clock()
    tools = Tools(failures=100)
    config = routes(("ok", "record", {"text": "${data.message}"}), ("kai", "flaky", {}))
    async with open_door(tmp_path, registry=tools.registry, webhook_routes=config, clock=clock,
                         webhook_max_attempts=3, webhook_backoff_base=10, webhook_backoff_max=1000) as door:
        event_id = (await door.bearer_post(seed_body())).json()["id"]
        dispatcher = door.service.dispatcher
        delays = []
        for attempt in (1, 2):
            assert await dispatcher.dispatch_due() == 1
            event = await stored(door, event_id)
            assert (event.status, event.attempts) == ("retrying", attempt)
            assert "route:kai: tool 'flaky' failed" not in (event.last_error or "")
            assert "the KAI system is down" in (event.last_error or "")
            delays.append(event.due_at - clock.now)
            assert await dispatcher.dispatch_due() == 0  # not due yet
            clock.now = event.due_at
        assert await dispatcher.dispatch_due() == 1
        event = await stored(door, event_id)
    assert (event.status, event.attempts) == ("dead", 3)
    assert event.last_error is not None
    assert event.last_error.startswith("route:kai:")
    assert 8 <= delays[0] <= 12  # base 10, doubling, +-20% jitter
    assert 16 <= delays[1] <= 24
    # The route that worked ran once; only the failing one was tried again.
    assert [name for name, _ in tools.calls] == ["record", "flaky", "flaky", "flaky"]


async def test_a_retry_that_succeeds_ends_done(tmp_path: Path) -> None:
    clock = Clock()
    tools = Tools(failures=1)
    async with open_door(tmp_path, registry=tools.registry, webhook_routes=routes(("kai", "flaky", {})),
                         clock=clock) as door:
        event_id = (await door.bearer_post(seed_body())).json()["id"]
        await door.service.dispatcher.dispatch_due()
        clock.now = (await stored(door, event_id)).due_at
        await door.service.dispatcher.dispatch_due()
        event = await stored(door, event_id)
    assert (event.status, event.attempts, event.last_error) == ("done", 2, None)


async def test_every_attempt_at_an_event_gives_its_tool_the_same_idempotency_key(tmp_path: Path) -> None:
    # A send that a dead dispatcher started must be recognisable by the next attempt: same key, per event.
    clock = Clock()
    tools = Tools(failures=2)
    async with open_door(tmp_path, registry=tools.registry, webhook_routes=routes(("kai", "flaky", {})),
                         clock=clock) as door:
        first = (await door.bearer_post(seed_body())).json()["id"]
        second = (await door.bearer_post(seed_body(message="Another message"))).json()["id"]
        for _ in range(3):
            await door.service.dispatcher.dispatch_due()
            clock.now = max(clock.now, *[(await stored(door, e)).due_at for e in (first, second)]) + 1
    assert len(tools.keys) == 4  # two failed attempts, then one success per event
    assert all(key and key.startswith("event:") for key in tools.keys)
    assert len(set(tools.keys)) == 2  # the same key on each attempt at an event, another for the other event


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        pytest.param({"text": "${data.absent}"}, "is not in the event", id="mapping-error"),
        pytest.param({"unexpected": 1}, "invalid arguments", id="tool-input-error"),
    ],
)
async def test_an_error_no_retry_can_fix_is_dead_at_once(tmp_path: Path, arguments: dict[str, Any],
                                                         fragment: str) -> None:
    tools = Tools()
    async with open_door(tmp_path, registry=tools.registry, webhook_routes=routes(("bad", "record", arguments)),
                         webhook_max_attempts=5) as door:
        event_id = (await door.bearer_post(seed_body())).json()["id"]
        await door.service.dispatcher.dispatch_due()
        event = await stored(door, event_id)
    assert (event.status, event.attempts) == ("dead", 1)
    assert fragment in (event.last_error or "")


async def test_a_route_to_a_tool_not_registered_yet_is_retried(tmp_path: Path) -> None:
    async with open_door(tmp_path, webhook_routes=routes(("later", "kai.not_connected_yet", {}))) as door:
        event_id = (await door.bearer_post(seed_body())).json()["id"]
        await door.service.dispatcher.dispatch_due()
        event = await stored(door, event_id)
    assert event.status == "retrying"
    assert "unknown tool" in (event.last_error or "")


async def test_an_event_held_by_a_dead_process_is_handled_once_its_lease_runs_out(tmp_path: Path) -> None:
    clock = Clock()
    tools = Tools()
    async with open_door(tmp_path, registry=tools.registry, clock=clock, webhook_lease=30,
                         webhook_routes=routes(("echo", "record", {"text": "${data.message}"}))) as door:
        event_id = (await door.bearer_post(seed_body())).json()["id"]
        [taken] = await door.store.claim_events(owner="crashed-process", limit=1, lease=30)
        assert taken.id == event_id
        assert await door.service.dispatcher.dispatch_due() == 0
        clock.now += 31
        assert await door.service.dispatcher.dispatch_due() == 1
        event = await stored(door, event_id)
    assert (event.status, event.attempts) == ("done", 2)
    assert len(tools.calls) == 1


async def test_bot_events_keep_the_newest_state_and_a_deleted_bot_is_refused(tmp_path: Path) -> None:
    async with open_door(tmp_path) as door:
        bots = BotStates(store=door.store)
        bot = "7390000000000000001"
        await door.signed(coze_body("bot.published", bot_id=bot, bot_name="Coffee Expert", created_at=1_000))
        await door.signed(coze_body("bot.deleted", bot_id=bot, created_at=3_000))
        late = await door.signed(coze_body("bot.unpublished", bot_id=bot, created_at=2_000))
        while await door.service.dispatcher.dispatch_due():
            pass
        refusal = await bots.refusal(bot)
        snapshot = await bots.snapshot()
        late_event = await stored(door, late.json()["id"])
    assert refusal is not None
    assert f"the Coze bot {bot} (Coffee Expert) was deleted" in refusal
    assert "1970-01-01T00:00:03Z" in refusal
    assert await bots.refusal("7390000000000000002") is None
    assert [(s["bot_id"], s["state"]) for s in snapshot] == [(bot, "deleted")]
    assert json.loads(late_event.result or "")["handlers"]["bot_state"]["result"]["applied"] is False


async def test_a_bot_event_without_a_bot_id_is_dead_at_once(tmp_path: Path) -> None:
    async with open_door(tmp_path) as door:
        event_id = (await door.signed(coze_body("bot.deleted", bot_name="no id"))).json()["id"]
        await door.service.dispatcher.dispatch_due()
        event = await stored(door, event_id)
    assert event.status == "dead"
    assert "without a bot_id" in (event.last_error or "")


async def test_seed_conversation_events_are_recorded_against_their_conversation(tmp_path: Path) -> None:
    async with open_door(tmp_path) as door:
        for text in ("first", "second"):
            await door.bearer_post(seed_body(conversation_id="conv_42", message=text))
        await door.bearer_post(seed_body(conversation_id="conv_other", message="elsewhere"))
        await door.service.dispatcher.dispatch_due()
        recorded = await door.store.list_conversation_events(conversation_id="conv_42")
    assert [(e.event_type, e.message) for e in recorded] == [("conversation.message", "first"),
                                                            ("conversation.message", "second")]
    assert json.loads(recorded[0].data) == {"conversation_id": "conv_42", "message": "first"}


async def test_the_running_dispatcher_handles_a_new_event_without_waiting_for_its_poll(tmp_path: Path) -> None:
    tools = Tools()
    # With an hour between polls, only the wake-up after the commit can get it done in time.
    async with open_door(tmp_path, registry=tools.registry, dispatch=True, poll_interval=3600,
                         webhook_routes=routes(("echo", "record", {"text": "${data.message}"}))) as door:
        finished = anyio.Event()
        door.service.feed.subscribe(lambda ids: _set(finished))
        with anyio.fail_after(10):
            event_id = (await door.bearer_post(seed_body(message="now"))).json()["id"]
            while (await stored(door, event_id)).status != "done":
                await finished.wait()
                finished = anyio.Event()
    assert tools.calls == [("record", {"text": "now"})]


async def _set(event: anyio.Event) -> None:
    event.set()


async def test_stopping_the_dispatcher_hands_back_what_it_holds_without_counting_the_attempt(tmp_path: Path) -> None:
    started, never = anyio.Event(), anyio.Event()
    registry = ToolRegistry(default_timeout=None)

    async def slow(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        started.set()
        await never.wait()
        return {}

    registry.add(tool("slow", slow))
    async with open_door(tmp_path, registry=registry, webhook_routes=routes(("slow", "slow", {}))) as door:
        event_id = (await door.bearer_post(seed_body())).json()["id"]
        async with anyio.create_task_group() as tg:
            tg.start_soon(door.service.dispatcher.run)
            with anyio.fail_after(10):
                await started.wait()
            assert (await stored(door, event_id)).status == "processing"
            tg.cancel_scope.cancel()
        event = await stored(door, event_id)
    assert (event.status, event.attempts, event.lease_owner) == ("pending", 0, None)


async def test_while_the_door_is_busy_the_dispatcher_works_one_event_at_a_time(tmp_path: Path) -> None:
    started, release = anyio.Event(), anyio.Event()
    running = 0
    most = 0
    registry = ToolRegistry(default_timeout=None)

    async def gated(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        started.set()
        await release.wait()
        running -= 1
        return {}

    registry.add(tool("gated", gated))
    async with open_door(tmp_path, registry=registry, webhook_routes=routes(("gate", "gated", {}))) as door:
        ids = [(await door.bearer_post(seed_body(message=f"m{i}"))).json()["id"] for i in range(3)]
        assert door.service.inbox.busy()  # just received: the door counts as busy
        assert not door.service.inbox.busy(window=0)
        dispatcher = Dispatcher(store=door.store, handlers=door.service.dispatcher._handlers, busy=lambda: True,
                                concurrency=8, poll_interval=3600)
        async with anyio.create_task_group() as tg:
            tg.start_soon(dispatcher.run)
            with anyio.fail_after(10):
                await started.wait()
                statuses = sorted([(await stored(door, i)).status for i in ids])
                release.set()
                while {(await stored(door, i)).status for i in ids} != {"done"}:
                    await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
    assert statuses == ["pending", "pending", "processing"]
    assert most == 1
