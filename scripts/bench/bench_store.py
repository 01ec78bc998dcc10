#!/usr/bin/env python3
"""Benchmark the state store: per-operation latency and concurrent throughput, SQLite and PostgreSQL.

    .venv/bin/python scripts/bench/bench_store.py [--n 2000] [--concurrent 10000] [--pg URL]

Sequential rows are the mean latency of one awaited call (``save_chat`` is an upsert with a
durable commit: SQLite WAL + synchronous=NORMAL by default, which survives kill -9, run inline
on the event loop; add ``?synchronous=full`` to the URL for an fsync per commit on the writer
thread, with group commit). Concurrent rows start ``--concurrent`` calls at once: SQLite runs
them one after another inline (or group-commits them on its thread with FULL), PostgreSQL
spreads them over its pool. PostgreSQL runs in a scratch schema that is dropped afterwards; it is skipped
when the server is not reachable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from kai_bridge.store import ChatRecord, open_store  # noqa: E402


def record(i: int) -> ChatRecord:
    return ChatRecord(
        chat_id=f"74{i:017d}",
        conversation_id="7400000000000000001",
        user_id=f"user-{i % 100}",
        bot_id="7400000000000000999",
        status="completed",
        answer="Ethiopian coffee is floral and bright. " * 5,
        usage={"token_count": 120, "input_count": 80, "output_count": 40},
        error=None,
        updated_at=time.time(),
    )


async def bench(url: str, n: int, concurrent: int) -> list[str]:
    rows = []
    async with open_store(url) as store:

        async def timed(label: str, make: Callable[[int], Awaitable[object]]) -> None:
            start = time.perf_counter()
            for i in range(n):
                await make(i)
            rows.append(f"| {store.kind} | {label} | {(time.perf_counter() - start) / n * 1e6:,.0f} µs |")

        await timed("save_chat (upsert)", lambda i: store.save_chat(record(i)))
        await timed("get_chat", lambda i: store.get_chat(chat_id=record(i).chat_id))
        await timed(
            "set_conversation", lambda i: store.set_conversation(user_id=f"u{i}", bot_id="b", conversation_id="c")
        )
        await timed("get_conversation", lambda i: store.get_conversation(user_id=f"u{i}", bot_id="b"))
        start = time.perf_counter()
        await asyncio.gather(*(store.save_chat(record(n + i)) for i in range(concurrent)))
        rate = concurrent / (time.perf_counter() - start)
        rows.append(f"| {store.kind} | {concurrent:,} concurrent save_chat | {rate:,.0f} /s |")
        start = time.perf_counter()
        await asyncio.gather(*(store.get_chat(chat_id=record(i).chat_id) for i in range(concurrent)))
        rate = concurrent / (time.perf_counter() - start)
        rows.append(f"| {store.kind} | {concurrent:,} concurrent get_chat | {rate:,.0f} /s |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrent", type=int, default=10000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print("| backend | operation | result |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for row in asyncio.run(bench(f"sqlite:///{tmp}/bench.db", args.n, args.concurrent)):
            print(row)
    schema = f"kb_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(args.pg, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.Error as exc:
        print(f"\nPostgreSQL skipped: {str(exc).strip().splitlines()[0]}")
        return 0
    try:
        url = f"{args.pg}?options={quote(f'-csearch_path={schema}')}"
        for row in asyncio.run(bench(url, args.n, args.concurrent)):
            print(row)
    finally:
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return 0


if __name__ == "__main__":
    sys.exit(main())
