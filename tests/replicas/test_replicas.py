"""Two ``kai-bridge serve`` replicas on one PostgreSQL, with the standalone sandbox as their Coze.

Real processes on port 0 (``--ready-file``), a schema of the test's own in the local PostgreSQL
(``?options=-csearch_path=...``), credentials generated at test time. What a load balancer in
front of N replicas needs from them:

- a webhook event delivered to either or both (the same event id to both at once, and re-sent)
  is stored once and dispatched once (one Coze chat in the sandbox per event);
- a conversation started through one replica continues through the other (same user, same Coze
  conversation, in the sandbox's own message list), with JWT or PAT credentials;
- two sends into one conversation at once, one per replica, are queued, not refused (no 4016);
- a replica killed with SIGKILL while it holds dispatch leases loses no acknowledged event, and
  the other replica takes its unfinished events over once their leases run out.

Waits poll (a store count, a ready file) inside ``anyio.fail_after``; nothing sleeps for a
fixed time hoping something happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import pytest

from kai_bridge.store import Store, open_store
from tests.replicas.cluster import (
    REPO,
    ReplicaEnv,
    Running,
    call_tool,
    mcp_client,
    private_key_file,
    replica,
    replicas,
    sandbox,
)
from tests.webhooks.support import coze_body, sign

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

T = TypeVar("T")


async def until(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, seconds: float, what: str) -> T:
    """Poll ``probe()`` until ``done(value)``; fail after ``seconds`` saying what was awaited and the last value."""
    value: T | None = None
    try:
        with anyio.fail_after(seconds):
            while True:
                value = await probe()
                if done(value):
                    return value
                await anyio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {seconds:g} s (last seen: {value!r})") from None


async def post_event(http: httpx.AsyncClient, replica: Running, body: bytes, verify_token: str) -> int:
    """A signed Coze callback to one replica; the HTTP status (0: no answer, as when the replica died)."""
    try:
        response = await http.post(f"{replica.url}/webhook/coze", content=body, headers=sign(body, verify_token))
    except httpx.HTTPError:
        return 0
    return response.status_code


ANNOUNCE = {
    "name": "announce", "event_type": "bot.published", "tool": "send_message",
    "arguments": {"message": "${event.bot_name} was published", "user_id": "webhook-${event.bot_id}"},
}


async def test_an_event_sent_to_both_replicas_at_once_and_again_is_stored_once_and_dispatched_once(
    tmp_path: Path, pg_url: str
) -> None:
    n = 12
    async with sandbox(tmp_path / "coze") as coze:
        env = ReplicaEnv(store_url=pg_url, coze_url=coze.url, key_file=private_key_file(tmp_path), routes=[ANNOUNCE])
        bodies = {f"74{i:017d}": coze_body("bot.published", event_id=f"74{i:017d}", bot_id=f"73{i:017d}",
                                           bot_name=f"bot {i}") for i in range(n)}
        async with replicas(env, tmp_path, "a", "b") as (a, b), httpx.AsyncClient(timeout=30) as http, \
                open_store(pg_url) as store:
            answers: list[int] = []

            async def deliver(target: Running, body: bytes) -> None:
                answers.append(await post_event(http, target, body, env.verify_token))

            async with anyio.create_task_group() as tg:  # every event to both replicas at the same moment
                for body in bodies.values():
                    tg.start_soon(deliver, a, body)
                    tg.start_soon(deliver, b, body)
            for i, body in enumerate(bodies.values()):  # and re-sent, as Coze does when it saw no answer
                await deliver((a, b)[i % 2], body)
            counts = await until(store.count_events, lambda c: c.get("done", 0) >= n, seconds=45,
                                 what=f"all {n} events dispatched")
            events = [await store.get_event(event_id=s.id) for s in await store.list_events(limit=10 * n)]
        state = await coze.state()

    assert answers == [200] * (3 * n)  # every delivery acknowledged, duplicates included
    assert counts == {"done": n}
    assert sorted(e.dedup_key.removeprefix("event_id:") for e in events if e) == sorted(bodies)  # each stored once
    assert [e.attempts for e in events if e] == [1] * n  # each claimed once: never by both replicas
    assert state["chats_created"] == n  # and its route ran once: one Coze chat per event
    print(f"\n{n} events x 3 deliveries over 2 replicas: stored {len(events)}, Coze chats {state['chats_created']}")


@pytest.mark.parametrize("credential", [pytest.param("jwt", id="jwt"), pytest.param("pat", id="pat")])
async def test_a_conversation_started_through_one_replica_continues_through_the_other(
    tmp_path: Path, pg_url: str, credential: str
) -> None:
    async with sandbox(tmp_path / "coze") as coze:
        env = ReplicaEnv(store_url=pg_url, coze_url=coze.url, credential=credential, pat=coze.pat,
                         key_file=private_key_file(tmp_path))
        async with replicas(env, tmp_path, "a", "b") as (a, b), mcp_client(a.url) as via_a, \
                mcp_client(b.url) as via_b:
            first = await call_tool(via_a, "send_message", {"user_id": "alice", "message": "What is a washed coffee?"})
            second = await call_tool(via_b, "send_message", {"user_id": "alice", "message": "And a natural one?"})
            listed = await call_tool(via_b, "get_conversation_messages", {"user_id": "alice", "order": "asc"})
        in_coze = await coze.messages(first["conversation_id"])
        state = await coze.state()

    assert second["conversation_id"] == first["conversation_id"]
    asked = [m["content"] for m in in_coze if m["role"] == "user"]
    assert asked == ["What is a washed coffee?", "And a natural one?"]  # one Coze conversation, in order
    answers = [m["content"] for m in in_coze if m["role"] == "assistant" and m["type"] == "answer"]
    assert answers == [first["answer"], second["answer"]]
    assert listed["conversation_id"] == first["conversation_id"]
    assert [m["content"] for m in listed["messages"] if m["role"] == "user"] == asked
    if credential == "jwt":
        assert state["tokens_issued"] == 2  # one token per replica (each caches its own)
    else:
        assert state["token_exchanges"] == 0


async def test_two_sends_into_one_conversation_one_per_replica_are_queued_not_refused(
    tmp_path: Path, pg_url: str
) -> None:
    # Coze streams an answer over seconds; 60 ms between chunks keeps a chat running (about 3 s)
    # long enough for the second send to arrive while the first one is still being answered.
    async with sandbox(tmp_path / "coze", chunk_delay_ms=60) as coze:
        env = ReplicaEnv(store_url=pg_url, coze_url=coze.url, key_file=private_key_file(tmp_path))
        async with replicas(env, tmp_path, "a", "b") as (a, b), mcp_client(a.url) as via_a, \
                mcp_client(b.url) as via_b:
            opened = await call_tool(via_a, "create_conversation", {"user_id": "bob"})
            conversation = opened["conversation_id"]
            before = await coze.state()
            results: dict[str, dict[str, Any]] = {}
            overlap: dict[str, Any] = {}

            async def send(name: str, session: Any, message: str) -> None:
                results[name] = await call_tool(session, "send_message",
                                                {"user_id": "bob", "conversation_id": conversation, "message": message})

            async with anyio.create_task_group() as tg:
                tg.start_soon(send, "a", via_a, "Tell me about Ethiopian coffee.")
                # The second send goes out while the first chat is running in Coze.
                running = await until(coze.state, lambda s: s["chats_created"] > before["chats_created"],
                                      seconds=30, what="the first chat started in Coze")
                overlap["running_when_sent"] = running["chats_completed"] == before["chats_completed"]
                tg.start_soon(send, "b", via_b, "And about Kenyan coffee?")
        in_coze = await coze.messages(conversation)
        state = await coze.state()

    assert overlap["running_when_sent"]  # the second send really met a running chat
    assert results["a"]["conversation_id"] == results["b"]["conversation_id"] == conversation
    assert "4016" not in state["api_errors"]  # the second was queued behind the first, never refused by Coze
    assert state["chats_created"] - before["chats_created"] == 2
    turns = [(m["role"], m["content"]) for m in in_coze if m["type"] in ("question", "answer")]
    assert turns == [
        ("user", "Tell me about Ethiopian coffee."), ("assistant", results["a"]["answer"]),
        ("user", "And about Kenyan coffee?"), ("assistant", results["b"]["answer"]),
    ]  # one chat after the other, not interleaved


LEASE = 3.0  # seconds: how long a dead replica's dispatch leases outlive it


def fixture_upstream() -> list[dict[str, Any]]:
    return [{"name": "kai", "command": [sys.executable, str(REPO / "tests" / "upstream" / "kai_fixture_server.py"),
                                        "stdio"]}]


async def statuses(store: Store) -> dict[str, str]:
    """Each stored event's status, by its Coze event id."""
    return {s.dedup_key.removeprefix("event_id:"): s.status for s in await store.list_events(limit=1000)}


async def tools_of(base_url: str) -> set[str]:
    async with mcp_client(base_url) as session:
        return {tool.name for tool in (await session.list_tools()).tools}


async def test_a_replica_killed_while_it_holds_dispatch_leases_loses_nothing_and_the_other_takes_over(
    tmp_path: Path, pg_url: str
) -> None:
    # 4 events stuck in replica a's dispatcher (< its 8 slots), then a burst of 60 more from 8 senders,
    # during which a is killed: what it answered before is acknowledged, the rest is re-sent to b.
    held, burst, senders = 4, 60, 8
    # Replica a's route hangs (a stuck handler: the fixture's `slow`); replica b's answers at once.
    stuck = {"name": "work", "event_type": "bot.published", "tool": "kai.slow", "arguments": {"seconds": 120}}
    quick = {"name": "work", "event_type": "bot.published", "tool": "kai.echo", "arguments": {"text": "${@id}"}}
    common = {"KAI_BRIDGE_WEBHOOK_LEASE": str(LEASE), "KAI_BRIDGE_UPSTREAMS": json.dumps(fixture_upstream())}
    env_a = ReplicaEnv(store_url=pg_url, credential="sandbox", routes=[stuck], extra=common)
    env_b = ReplicaEnv(store_url=pg_url, credential="sandbox", routes=[quick], extra=common,
                       verify_token=env_a.verify_token, webhook_token=env_a.webhook_token)
    bodies = {f"75{i:017d}": coze_body("bot.published", event_id=f"75{i:017d}", bot_id=f"73{i:017d}")
              for i in range(held + burst)}
    ids = list(bodies)
    orphans: list[int] = []
    async with contextlib.AsyncExitStack() as stack:
        store: Store = await stack.enter_async_context(open_store(pg_url))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=30))
        a = await stack.enter_async_context(replica("a", env_a, tmp_path))
        await until(lambda: tools_of(a.url), lambda tools: "kai.slow" in tools, seconds=30,
                    what="replica a's upstream connected")
        for event_id in ids[:held]:
            assert await post_event(http, a, bodies[event_id], env_a.verify_token) == 200
        await until(store.count_events, lambda c: c.get("processing", 0) == held, seconds=30,
                    what=f"replica a leased all {held} events")

        b = await stack.enter_async_context(replica("b", env_b, tmp_path))
        await until(lambda: tools_of(b.url), lambda tools: "kai.echo" in tools, seconds=30,
                    what="replica b's upstream connected")
        leased = [await store.get_event(event_id=s.id) for s in await store.list_events(limit=held)]
        owners = {e.lease_owner.split(":")[1] for e in leased if e and e.lease_owner}
        assert owners == {str(a.process.pid)}  # a live replica's leases are its own: b has not taken any

        acked: set[str] = set()
        killed_at = 0.0
        queue = list(reversed(ids[held:]))

        async def sender() -> None:
            nonlocal killed_at
            while queue:
                event_id = queue.pop()
                if await post_event(http, a, bodies[event_id], env_a.verify_token) == 200:
                    acked.add(event_id)
                    if len(acked) == 10 and not killed_at:
                        orphans.extend(a.kill_9())  # mid-burst: other deliveries are in flight
                        killed_at = time.monotonic()

        async with anyio.create_task_group() as tg:
            for _ in range(senders):
                tg.start_soon(sender)
        assert await a.process.wait() == -signal.SIGKILL
        stored_at_kill = set(await statuses(store))
        # Coze re-sends what got no answer (and sometimes what did): to the replica still up.
        unanswered = [event_id for event_id in ids[held:] if event_id not in acked]
        for event_id in unanswered + sorted(acked)[:5]:
            assert await post_event(http, b, bodies[event_id], env_b.verify_token) == 200
        await until(lambda: statuses(store), lambda now: [now.get(i) for i in ids[:held]] == ["done"] * held,
                    seconds=LEASE + 30, what="replica b finished the events replica a held")
        takeover = time.monotonic() - killed_at
        counts = await until(store.count_events, lambda c: c.get("done", 0) == held + burst, seconds=30,
                             what="every event dispatched")
        final = [await store.get_event(event_id=s.id) for s in await store.list_events(limit=1000)]
    for pid in orphans:  # a's upstream server, left behind by the kill
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    assert 0 < len(acked) < burst  # the kill came mid-burst
    assert acked <= stored_at_kill  # nothing a replica acknowledged is lost, though it died right after
    assert counts == {"done": held + burst}
    assert sorted(e.dedup_key.removeprefix("event_id:") for e in final if e) == sorted(ids)  # each stored once
    results = {e.dedup_key.removeprefix("event_id:"): json.loads(e.result or "{}") for e in final if e}
    echoed = {key: value["handlers"]["route:work"]["result"]["tool"] for key, value in results.items()}
    assert set(echoed.values()) == {"kai.echo"}  # all finished by replica b, a's stuck ones included
    attempts = {e.dedup_key.removeprefix("event_id:"): e.attempts for e in final if e}
    assert {attempts[i] for i in ids[:held]} == {2}  # a's unfinished attempt, then b's
    print(f"\nkill -9 with {held} events leased: {len(acked)} of {burst} acknowledged before the kill, "
          f"{len(unanswered)} re-sent to b; takeover of the held events {takeover:.2f} s after the kill "
          f"(lease {LEASE:g} s); attempts of the others {sorted({attempts[i] for i in ids[held:]})}")
