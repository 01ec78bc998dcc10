"""kill -9 in the middle of a burst of signed callbacks: nothing acknowledged is lost, nothing is doubled.

A real ``kai-bridge serve`` process gets N signed callbacks at once from 32 concurrent senders
and is killed with SIGKILL after a share of them were answered 2xx. A new process on the same
store then gets every event again that had no answer (Coze re-sends on a timeout) plus some
that had (a duplicate re-send). Every event that got a 2xx must be in ``kai-bridge events
list`` exactly once, and every event must end up dispatched (``done``), including the ones the
killed process had leased and was handling (they are taken over once their lease runs out).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import httpx2
import mcp.types as types
import pytest
from mcp import ClientSession, MCPDeprecationWarning
from mcp.client.streamable_http import streamable_http_client

from kai_bridge.mcp.events import RECENT_EVENTS_URI
from kai_bridge.store import open_store
from tests.webhooks.support import coze_body, sign, token

pytestmark = pytest.mark.e2e

N_EVENTS = 160
KILL_AFTER = 60
SENDERS = 32
LEASE = 2  # seconds: how soon the restarted process takes over what the killed one held


@dataclass
class Server:
    proc: asyncio.subprocess.Process
    url: str
    drain: asyncio.Task[None]


def environment(tmp_path: Path, verify_token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_BRIDGE_")}
    env.update(
        KAI_BRIDGE_STORE_URL=f"sqlite:///{tmp_path / 'kb.db'}",
        KAI_BRIDGE_DATA_DIR=str(tmp_path),
        KAI_BRIDGE_LOG_DIR=str(tmp_path / "logs"),
        KAI_BRIDGE_WEBHOOK_VERIFY_TOKEN=verify_token,
        KAI_BRIDGE_WEBHOOK_LEASE=str(LEASE),
        KAI_BRIDGE_CONVERSATION_LEASE=str(LEASE),  # the killed one's conversations too
        KAI_BRIDGE_SANDBOX_STREAM_DELAY="0",  # the chats need not be paced to stay in flight a while
        # A route through a real Coze chat (the embedded sandbox) keeps events in flight long
        # enough that the kill catches some mid-dispatch.
        KAI_BRIDGE_WEBHOOK_ROUTES=json.dumps([{
            "name": "announce", "event_type": "bot.published", "tool": "send_message",
            "arguments": {"message": "${event.bot_name} was published", "user_id": "webhook-${event.bot_id}"},
        }]),
    )
    return env


@contextlib.asynccontextmanager
async def serve(env: dict[str, str]) -> AsyncIterator[Server]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kai_bridge.cli", "serve", "--port", "0", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    stderr = proc.stderr
    url = ""
    async with asyncio.timeout(60):
        while not url:
            line = (await stderr.readline()).decode()
            if not line:
                raise AssertionError(f"kai-bridge serve exited early ({await proc.wait()})")
            found = re.search(r"MCP endpoint: (http://\S+)/mcp", line)
            url = found.group(1) if found else ""

    async def drain() -> None:
        while await stderr.readline():
            pass

    task = asyncio.get_running_loop().create_task(drain())
    try:
        yield Server(proc=proc, url=url, drain=task)
    finally:
        if proc.returncode is None:
            proc.terminate()
            async with asyncio.timeout(30):
                await proc.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def post_all(url: str, bodies: dict[str, bytes], verify_token: str, *, kill_after: int | None,
                   server: Server) -> set[str]:
    """Send every body (32 at a time); return the event ids answered 2xx. Kill the server after ``kill_after``."""
    acked: set[str] = set()
    pending = asyncio.Queue[str]()
    for event_id in bodies:
        pending.put_nowait(event_id)
    limits = httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

        async def sender() -> None:
            while not pending.empty():
                event_id = pending.get_nowait()
                body = bodies[event_id]
                try:
                    response = await http.post("/webhook/coze", content=body, headers=sign(body, verify_token))
                except httpx.HTTPError:
                    continue  # no answer: not acknowledged (the sender would re-send it)
                if response.status_code == 200:
                    acked.add(event_id)
                    if kill_after is not None and len(acked) == kill_after and server.proc.returncode is None:
                        os.kill(server.proc.pid, signal.SIGKILL)  # mid-burst: other requests are in flight

        await asyncio.gather(*(sender() for _ in range(SENDERS)))
    return acked


@contextlib.asynccontextmanager
async def watching(url: str) -> AsyncIterator[tuple[ClientSession, asyncio.Event]]:
    """An MCP client of the server, subscribed to its recent events; the event is set on each update."""
    changed = asyncio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            changed.set()

    async with httpx2.AsyncClient(timeout=30) as http, streamable_http_client(f"{url}/mcp", http_client=http) as (
        read, write
    ), ClientSession(read, write, message_handler=on_message) as session:
        await session.initialize()
        with pytest.warns(MCPDeprecationWarning, match="resources/subscribe"):
            await session.subscribe_resource(RECENT_EVENTS_URI)
        yield session, changed


async def done_counts(session: ClientSession) -> dict[str, int]:
    [content] = (await session.read_resource(RECENT_EVENTS_URI)).contents
    assert isinstance(content, types.TextResourceContents)
    counts: dict[str, int] = json.loads(content.text)["counts"]
    return counts


async def events_list(env: dict[str, str]) -> list[dict[str, object]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kai_bridge.cli", "events", "list", "--json", "--limit", str(N_EVENTS * 2), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


async def test_every_acknowledged_event_survives_kill_9_once_and_is_dispatched(tmp_path: Path) -> None:
    verify_token = token()
    env = environment(tmp_path, verify_token)
    bodies = {
        f"74{i:017d}": coze_body("bot.published", event_id=f"74{i:017d}", bot_id=f"73{i:017d}", bot_name=f"bot {i}")
        for i in range(N_EVENTS)
    }
    async with serve(env) as first:
        acked_before_kill = await post_all(first.url, bodies, verify_token, kill_after=KILL_AFTER, server=first)
        assert await first.proc.wait() == -signal.SIGKILL
    assert KILL_AFTER <= len(acked_before_kill) < N_EVENTS

    async with serve(env) as second, watching(second.url) as (session, changed):
        unanswered = {k: v for k, v in bodies.items() if k not in acked_before_kill}
        re_sent_duplicates = {k: bodies[k] for k in sorted(acked_before_kill)[:50]}
        acked_after = await post_all(second.url, unanswered | re_sent_duplicates, verify_token, kill_after=None,
                                     server=second)
        assert acked_after == set(unanswered) | set(re_sent_duplicates)
        # Each time the server says its recent events changed, look again, until all are done
        # (the ones the killed process held come back when their lease runs out).
        async with asyncio.timeout(120):
            while (counts := await done_counts(session)).get("done", 0) < N_EVENTS:
                await changed.wait()
                changed.clear()
        async with open_store(env["KAI_BRIDGE_STORE_URL"]) as store:
            attempts = [e.attempts for e in await store.list_events(limit=N_EVENTS * 2)]
        listed = await events_list(env)

    stored_ids = [str(row["dedup_key"]).removeprefix("event_id:") for row in listed]
    assert counts == {"done": N_EVENTS}
    assert len(stored_ids) == N_EVENTS
    assert sorted(stored_ids) == sorted(bodies)  # each event exactly once, every acknowledged one included
    assert acked_before_kill <= set(stored_ids)
    assert {row["status"] for row in listed} == {"done"}
    print(f"\ncrash test: {N_EVENTS} events, {len(acked_before_kill)} acknowledged before kill -9, "
          f"{len(unanswered)} re-sent after restart, {len(re_sent_duplicates)} duplicate re-sends; "
          f"stored {len(stored_ids)} (unique {len(set(stored_ids))}), done {counts.get('done', 0)}, "
          f"events handled twice (attempts > 1): {sum(a > 1 for a in attempts)}")
