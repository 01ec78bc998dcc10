"""PostgreSQL-only behaviour: schema placement, surviving server-side disconnects, pool use."""

from __future__ import annotations

import asyncio
import re
import uuid

import psycopg
import pytest

from kai_bridge.store import ChatRecord, open_store
from kai_bridge.store.schema import MIGRATIONS

pytestmark = pytest.mark.postgres


def record(chat_id: str) -> ChatRecord:
    return ChatRecord(
        chat_id=chat_id,
        conversation_id="c",
        user_id="u",
        bot_id="b",
        status="completed",
        answer="a",
        usage={"token_count": 3},
        error=None,
        updated_at=1.0,
    )


async def test_tables_land_in_the_schema_named_by_the_url(pg_base_url: str, pg_url: str, pg_schema: str) -> None:
    async with open_store(pg_url) as store:
        await store.save_chat(record("x"))
    with psycopg.connect(pg_base_url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (pg_schema,)
        ).fetchall()
    created = {name for m in MIGRATIONS for sql in m.statements for name in re.findall(r"CREATE TABLE (\w+)", sql)}
    assert [r[0] for r in rows] == sorted({*created, "kb_schema_version"})
    assert "kb_chats" in created


async def test_calls_succeed_after_the_server_drops_every_pooled_connection(pg_base_url: str, pg_url: str) -> None:
    app = f"kb_test_{uuid.uuid4().hex[:8]}"
    async with open_store(f"{pg_url}&application_name={app}") as store:
        await asyncio.gather(*(store.save_chat(record(f"before-{i}")) for i in range(50)))  # grow the pool
        with psycopg.connect(pg_base_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s) AS t",
                (app,),
            ).fetchone()
        assert killed is not None
        assert killed[0] >= 2
        await asyncio.gather(*(store.save_chat(record(f"after-{i}")) for i in range(50)))
        assert await store.get_chat(chat_id="after-49") == record("after-49")
        await store.ping()


async def test_concurrent_callers_share_a_bounded_pool(pg_base_url: str, pg_url: str) -> None:
    app = f"kb_test_{uuid.uuid4().hex[:8]}"
    async with open_store(f"{pg_url}&application_name={app}") as store:
        await asyncio.gather(*(store.save_chat(record(f"c{i}")) for i in range(300)))
        with psycopg.connect(pg_base_url) as admin:
            row = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)).fetchone()
        assert row is not None
        assert 1 <= row[0] <= 10
        assert all([await store.get_chat(chat_id=f"c{i}") for i in range(300)])
