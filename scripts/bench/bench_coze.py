"""Benchmark: kai-bridge's Coze client against cozepy 0.20, on the same sandbox, same run.

    .venv/bin/python scripts/bench/bench_coze.py [--reps N] [--poll-interval S]

One sandbox on a real local socket (built-in answerer, no chunk delay) serves both clients,
each with its own JWT OAuth app. Measured, interleaved ours/cozepy after a warm-up:

- non-stream round trip: create chat, poll retrieve until terminal, list the chat's messages.
  cozepy's ``create_and_poll`` exists only on the sync client and sleeps a fixed 1 s, so the
  tunable rows run the same create/retrieve/list loop on cozepy's *async* client with the
  same poll interval as ours; one more row compares both at 1 s (cozepy's own
  ``create_and_poll``, sync client in a worker thread).
- stream: time until the whole answer has arrived (cozepy: ``AsyncCoze.chat.stream``).
- token exchanges made by 500 concurrent first calls with a fresh JWT auth (cozepy:
  ``AsyncJWTAuth``), counted by the sandbox.

Prints a Markdown table (medians, p90, ratio ours/cozepy). Takes about a minute, most of it
cozepy's token storm: it parses the PEM private key for every JWT (~90 ms of RSA key checks,
synchronously on the event loop), 500 times.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

with warnings.catch_warnings():  # cozepy's import triggers authlib's deprecation notice
    warnings.simplefilter("ignore")
    from cozepy import (
        AsyncCoze,
        AsyncJWTAuth,
        ChatEventType,
        ChatStatus,
        Coze,
        JWTAuth,
        Message,
    )

from kai_bridge.coze import ChatRequest, CozeClient, EnterMessage, RetryPolicy
from kai_bridge.coze import JWTAuth as OurJWTAuth
from kai_bridge.keys import KeyPair, generate_key_pair, load_private_key
from kai_bridge.sandbox import (
    COFFEE_BOT_ID,
    BuiltinAnswerer,
    SandboxConfig,
    SandboxHandle,
    start_sandbox,
)

QUESTION = "What is espresso?"
OUR_APP = "bench-ours"
COZEPY_APP = "bench-cozepy"


@dataclass
class Row:
    scenario: str
    client: str
    samples: list[float]
    note: str = ""


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


async def timed(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000.0


def our_client(http: httpx.AsyncClient, handle: SandboxHandle, pair: KeyPair, poll: float) -> CozeClient:
    auth = OurJWTAuth(http=http, base_url=handle.base_url, app_id=OUR_APP, kid=pair.kid,
                      private_key=load_private_key(pair.private_pem, source="bench"))
    return CozeClient(http=http, base_url=handle.base_url, auth=auth, retry=RetryPolicy.none(), poll_interval=poll)


def cozepy_async(handle: SandboxHandle, pair: KeyPair) -> AsyncCoze:
    auth = AsyncJWTAuth(client_id=COZEPY_APP, private_key=pair.private_pem.decode(), public_key_id=pair.kid,
                        ttl=900, base_url=handle.base_url)
    return AsyncCoze(auth=auth, base_url=handle.base_url)


async def cozepy_poll(coze: AsyncCoze, poll: float) -> str:
    """cozepy's create_and_poll algorithm on its async client, with a tunable interval."""
    chat = await coze.chat.create(bot_id=COFFEE_BOT_ID, user_id="bench",
                                  additional_messages=[Message.build_user_question_text(QUESTION)])
    while chat.status in (ChatStatus.IN_PROGRESS, ChatStatus.CREATED):
        await asyncio.sleep(poll)
        chat = await coze.chat.retrieve(conversation_id=chat.conversation_id, chat_id=chat.id)
    messages = await coze.chat.messages.list(conversation_id=chat.conversation_id, chat_id=chat.id)
    return "".join(m.content for m in messages if m.type == "answer")


async def cozepy_stream(coze: AsyncCoze) -> str:
    parts: list[str] = []
    stream = coze.chat.stream(bot_id=COFFEE_BOT_ID, user_id="bench",
                              additional_messages=[Message.build_user_question_text(QUESTION)])
    async for event in stream:
        if event.event == ChatEventType.CONVERSATION_MESSAGE_DELTA and event.message is not None:
            parts.append(event.message.content)
    return "".join(parts)


async def our_poll(client: CozeClient) -> str:
    result = await client.create_and_poll(ChatRequest(bot_id=COFFEE_BOT_ID, user_id="bench", messages=[EnterMessage.user(QUESTION)]))
    return result.answer


async def our_stream(client: CozeClient) -> str:
    result = await client.stream_and_collect(ChatRequest(bot_id=COFFEE_BOT_ID, user_id="bench", messages=[EnterMessage.user(QUESTION)]))
    return result.answer


async def interleaved(
    reps: int, ours: Callable[[], Awaitable[object]], theirs: Callable[[], Awaitable[object]], warmup: int = 3
) -> tuple[list[float], list[float]]:
    for _ in range(warmup):
        await ours()
        await theirs()
    a: list[float] = []
    b: list[float] = []
    for _ in range(reps):
        a.append(await timed(ours))
        b.append(await timed(theirs))
    return a, b


async def token_storm(handle: SandboxHandle, pair_ours: KeyPair, pair_cozepy: KeyPair) -> list[Row]:
    rows = []
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100)) as http:
        client = our_client(http, handle, pair_ours, 1.0)
        before = handle.state.token_exchanges
        ms = await timed(lambda: asyncio.gather(*(client.retrieve_bot(bot_id=COFFEE_BOT_ID) for _ in range(500))))
        rows.append(Row("500 concurrent first calls", "ours (JWTAuth, single flight)", [ms],
                        f"token exchanges: {handle.state.token_exchanges - before}"))
    coze = cozepy_async(handle, pair_cozepy)
    before = handle.state.token_exchanges
    ms = await timed(lambda: asyncio.gather(*(coze.bots.retrieve(bot_id=COFFEE_BOT_ID) for _ in range(500))))
    rows.append(Row("500 concurrent first calls", "cozepy AsyncJWTAuth", [ms],
                    f"token exchanges: {handle.state.token_exchanges - before}"))
    return rows


async def main(reps: int, poll: float, slow_reps: int) -> list[Row]:
    pair_ours, pair_cozepy = generate_key_pair(), generate_key_pair()
    config = SandboxConfig(apps=[(OUR_APP, pair_ours.public_pem), (COZEPY_APP, pair_cozepy.public_pem)],
                           max_conversations=100_000)
    rows: list[Row] = []
    async with start_sandbox(config, answerer=BuiltinAnswerer()) as handle:
        # The storm first, while both auths are still cold.
        rows += await token_storm(handle, pair_ours, pair_cozepy)
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100)) as http:
            ours = our_client(http, handle, pair_ours, poll)
            coze = cozepy_async(handle, pair_cozepy)
            a, b = await interleaved(reps, lambda: our_poll(ours), lambda: cozepy_poll(coze, poll))
            rows += [Row(f"non-stream round trip, poll {poll * 1000:g} ms", "ours create_and_poll", a),
                     Row(f"non-stream round trip, poll {poll * 1000:g} ms", "cozepy async (same loop)", b)]
            a, b = await interleaved(reps, lambda: our_stream(ours), lambda: cozepy_stream(coze))
            rows += [Row("stream, time to full answer", "ours stream_chat", a),
                     Row("stream, time to full answer", "cozepy AsyncCoze.chat.stream", b)]

            slow = our_client(http, handle, pair_ours, 1.0)
            sync_coze = Coze(auth=JWTAuth(client_id=COZEPY_APP, private_key=pair_cozepy.private_pem.decode(),
                                          public_key_id=pair_cozepy.kid, ttl=900, base_url=handle.base_url),
                             base_url=handle.base_url)

            def sync_create_and_poll() -> object:
                return sync_coze.chat.create_and_poll(
                    bot_id=COFFEE_BOT_ID, user_id="bench",
                    additional_messages=[Message.build_user_question_text(QUESTION)])

            a, b = await interleaved(slow_reps, lambda: our_poll(slow),
                                     lambda: asyncio.to_thread(sync_create_and_poll), warmup=0)
            rows += [Row("create_and_poll, poll 1 s (cozepy fixed)", "ours create_and_poll", a),
                     Row("create_and_poll, poll 1 s (cozepy fixed)", "cozepy sync create_and_poll (thread)", b)]
    return rows


def table(rows: list[Row]) -> str:
    lines = ["| scenario | client | N | median ms | p90 ms | ours/cozepy (median) | note |",
             "|---|---|---:|---:|---:|---:|---|"]
    medians: dict[str, float] = {}
    for row in rows:
        med = statistics.median(row.samples)
        ratio = ""
        if row.client.startswith("ours"):
            medians[row.scenario] = med
        elif row.scenario in medians:
            ratio = f"{medians[row.scenario] / med:.2f}"
        lines.append(f"| {row.scenario} | {row.client} | {len(row.samples)} | {med:.1f} | {p90(row.samples):.1f} "
                     f"| {ratio} | {row.note} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=30, help="repetitions per tunable scenario and client")
    parser.add_argument("--poll-interval", type=float, default=0.02, help="poll interval in seconds for both")
    parser.add_argument("--slow-reps", type=int, default=2, help="repetitions of the 1 s create_and_poll rows")
    ns = parser.parse_args()
    started = time.perf_counter()
    result = asyncio.run(main(ns.reps, ns.poll_interval, ns.slow_reps))
    print(table(result))
    print(f"\n_sandbox on 127.0.0.1 (built-in answerer, no chunk delay); python {sys.version.split()[0]}; "
          f"total {time.perf_counter() - started:.1f} s_")
