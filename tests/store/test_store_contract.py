"""One contract, both backends: every test here runs against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import sqlite3

import anyio
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kai_bridge.errors import StoreError
from kai_bridge.store import ChatRecord, Store, connect_store, open_store
from kai_bridge.store.schema import MIGRATIONS, SCHEMA_VERSION


def chat(chat_id: str = "7400000000000000001", **changes: object) -> ChatRecord:
    record = ChatRecord(
        chat_id=chat_id,
        conversation_id="7400000000000000100",
        user_id="user-1",
        bot_id="7400000000000000999",
        status="completed",
        answer="Ethiopian coffee is floral and bright.",
        usage={"token_count": 42, "input_count": 30, "output_count": 12},
        error=None,
        updated_at=1_760_000_000.25,
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def raw_execute(url: str, sql: str) -> list[tuple[object, ...]]:
    """Run one statement on the store's database behind the store's back; returns its rows."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///").partition("?")[0])
        try:
            with conn:
                return conn.execute(sql).fetchall()
        finally:
            conn.close()
    with psycopg.connect(url, autocommit=True) as pg:
        cursor = pg.execute(sql)
        return cursor.fetchall() if cursor.description else []


async def test_a_conversation_never_set_is_none(store_url: str) -> None:
    async with open_store(store_url) as store:
        assert await store.get_conversation(user_id="u", bot_id="b") is None


async def test_a_set_conversation_is_read_back(store_url: str) -> None:
    async with open_store(store_url) as store:
        await store.set_conversation(user_id="u", bot_id="b", conversation_id="c1")
        assert await store.get_conversation(user_id="u", bot_id="b") == "c1"


async def test_setting_a_conversation_again_replaces_it(store_url: str) -> None:
    async with open_store(store_url) as store:
        await store.set_conversation(user_id="u", bot_id="b", conversation_id="c1")
        await store.set_conversation(user_id="u", bot_id="b", conversation_id="c2")
        assert await store.get_conversation(user_id="u", bot_id="b") == "c2"


async def test_conversations_are_kept_per_user_and_bot(store_url: str) -> None:
    async with open_store(store_url) as store:
        await store.set_conversation(user_id="u1", bot_id="b1", conversation_id="c11")
        await store.set_conversation(user_id="u1", bot_id="b2", conversation_id="c12")
        await store.set_conversation(user_id="u2", bot_id="b1", conversation_id="c21")
        got = [
            await store.get_conversation(user_id=u, bot_id=b)
            for u, b in [("u1", "b1"), ("u1", "b2"), ("u2", "b1"), ("u2", "b2")]
        ]
        assert got == ["c11", "c12", "c21", None]


async def test_a_deleted_conversation_is_gone_and_deleting_again_is_harmless(store_url: str) -> None:
    async with open_store(store_url) as store:
        await store.set_conversation(user_id="u", bot_id="b", conversation_id="c1")
        await store.set_conversation(user_id="u", bot_id="other", conversation_id="c2")
        await store.delete_conversation(user_id="u", bot_id="b")
        await store.delete_conversation(user_id="u", bot_id="b")
        assert await store.get_conversation(user_id="u", bot_id="b") is None
        assert await store.get_conversation(user_id="u", bot_id="other") == "c2"


async def test_an_unknown_chat_is_none(store_url: str) -> None:
    async with open_store(store_url) as store:
        assert await store.get_chat(chat_id="nope") is None


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(chat(), id="completed-with-usage"),
        pytest.param(chat(status="in_progress", answer="", usage=None), id="no-usage"),
        pytest.param(chat(status="failed", answer="", error="4013 rate limited"), id="failed-with-error"),
        pytest.param(chat(answer="埃塞俄比亚咖啡带有花香和柑橘的明亮酸质。☕" * 200), id="long-chinese-answer"),
        pytest.param(chat(usage={}), id="empty-usage"),
    ],
)
async def test_a_saved_chat_is_read_back_equal(store_url: str, record: ChatRecord) -> None:
    async with open_store(store_url) as store:
        await store.save_chat(record)
        assert await store.get_chat(chat_id=record.chat_id) == record


async def test_saving_a_chat_again_updates_every_field(store_url: str) -> None:
    first = chat(status="in_progress", answer="", usage=None, updated_at=1.0)
    second = chat(
        conversation_id="c-other",
        user_id="user-2",
        bot_id="bot-2",
        status="failed",
        answer="partial",
        usage={"token_count": 1},
        error="boom",
        updated_at=2.5,
    )
    async with open_store(store_url) as store:
        await store.save_chat(first)
        await store.save_chat(second)
        assert await store.get_chat(chat_id=first.chat_id) == second



@pytest.mark.parametrize(
    ("older", "newer", "kept"),
    [
        pytest.param(("completed", 2.0), ("in_progress", 3.0), "completed", id="running-never-overwrites-finished"),
        pytest.param(("requires_action", 2.0), ("in_progress", 1.0), "requires_action", id="stale-same-rank-is-ignored"),
        pytest.param(("in_progress", 2.0), ("requires_action", 2.5), "requires_action", id="newer-same-rank-wins"),
        pytest.param(("in_progress", 5.0), ("failed", 1.0), "failed", id="finishing-wins-whatever-the-clock"),
        pytest.param(("failed", 2.0), ("canceled", 1.0), "failed", id="stale-final-state-is-ignored"),
    ],
)
async def test_a_write_never_moves_a_chat_back(
    store_url: str, older: tuple[str, float], newer: tuple[str, float], kept: str
) -> None:
    async with open_store(store_url) as store:
        await store.save_chat(chat(status=older[0], updated_at=older[1]))
        await store.save_chat(chat(status=newer[0], updated_at=newer[1]))
        stored = await store.get_chat(chat_id=chat().chat_id)
    assert stored is not None
    assert stored.status == kept


async def test_concurrent_writers_end_at_the_most_advanced_newest_state(store_url: str) -> None:
    # Two replicas racing: each writes the chat's whole life, in shuffled order, at the same time.
    life = [("in_progress", 1.0), ("requires_action", 2.0), ("in_progress", 3.0), ("completed", 4.0)]
    orders = [life[::-1], life[1:] + life[:1], life]
    async with open_store(store_url) as first, open_store(store_url) as second:

        async def write(store: Store, order: list[tuple[str, float]]) -> None:
            for status, at in order:
                await store.save_chat(chat(status=status, updated_at=at, answer=f"{status}@{at}"))

        async with anyio.create_task_group() as tg:
            for index, order in enumerate(orders * 4):
                tg.start_soon(write, first if index % 2 else second, order)
        stored = await first.get_chat(chat_id=chat().chat_id)
    assert stored is not None
    assert (stored.status, stored.updated_at, stored.answer) == ("completed", 4.0, "completed@4.0")

async def test_chats_are_kept_apart_by_chat_id(store_url: str) -> None:
    async with open_store(store_url) as store:
        await store.save_chat(chat("a", answer="A"))
        await store.save_chat(chat("b", answer="B"))
        a, b = await store.get_chat(chat_id="a"), await store.get_chat(chat_id="b")
        assert a is not None
        assert b is not None
        assert (a.answer, b.answer) == ("A", "B")


async def test_data_survives_closing_and_reopening(store_url: str) -> None:
    async with open_store(store_url) as store:
        await store.set_conversation(user_id="u", bot_id="b", conversation_id="c1")
        await store.save_chat(chat())
    async with open_store(store_url) as store:
        assert await store.get_conversation(user_id="u", bot_id="b") == "c1"
        assert await store.get_chat(chat_id=chat().chat_id) == chat()


async def test_many_concurrent_callers_all_get_their_writes_and_reads(store_url: str) -> None:
    async with open_store(store_url) as store:

        async def one(i: int) -> tuple[str | None, ChatRecord | None]:
            await store.set_conversation(user_id=f"u{i}", bot_id="b", conversation_id=f"c{i}")
            await store.save_chat(chat(f"chat-{i}", answer=f"answer {i}"))
            return await store.get_conversation(user_id=f"u{i}", bot_id="b"), await store.get_chat(chat_id=f"chat-{i}")

        results = await asyncio.gather(*(one(i) for i in range(200)))
        for i, (conversation, record) in enumerate(results):
            assert conversation == f"c{i}"
            assert record is not None
            assert record.answer == f"answer {i}"


async def test_two_stores_opening_a_fresh_database_at_once_both_work(store_url: str) -> None:
    async with open_store(store_url) as one, open_store(store_url) as two:
        await one.set_conversation(user_id="u", bot_id="b", conversation_id="from-one")
        assert await two.get_conversation(user_id="u", bot_id="b") == "from-one"

    async def open_and_ping() -> None:
        async with open_store(store_url) as store:
            await store.ping()

    await asyncio.gather(*(open_and_ping() for _ in range(4)))


async def test_ping_passes_on_an_open_store(store_url: str) -> None:
    async with open_store(store_url) as store:
        await store.ping()


async def test_a_closed_store_refuses_work_with_a_store_error(store_url: str) -> None:
    async with open_store(store_url) as store:
        pass
    await store.close()  # closing twice is harmless
    with pytest.raises(StoreError, match="closed"):
        await store.ping()
    with pytest.raises(StoreError, match="closed"):
        await store.get_chat(chat_id="x")


async def test_the_store_says_which_backend_it_is(store_url: str) -> None:
    async with open_store(store_url) as store:
        assert isinstance(store, Store)
        assert store.kind == ("sqlite" if store_url.startswith("sqlite") else "postgresql")
        assert store.target


async def test_a_database_migrated_by_a_newer_version_is_refused(store_url: str) -> None:
    async with open_store(store_url):
        pass
    newer = SCHEMA_VERSION + 1
    insert = "INSERT INTO kb_schema_version (version, description, applied_at) VALUES ({}, 'future', 0)"
    raw_execute(store_url, insert.format(newer))
    with pytest.raises(StoreError, match=rf"schema is version {newer}.*upgrade kai-bridge"):
        async with open_store(store_url):
            pass


async def test_each_migration_is_recorded_once_however_often_the_store_is_opened(store_url: str) -> None:
    for _ in range(3):
        async with open_store(store_url) as store:
            await store.ping()
    rows = raw_execute(store_url, "SELECT version FROM kb_schema_version ORDER BY version")
    assert [int(str(row[0])) for row in rows] == [m.version for m in MIGRATIONS]


text = st.text(max_size=200)
records = st.builds(
    ChatRecord,
    chat_id=st.text(min_size=1, max_size=40),
    conversation_id=text,
    user_id=text,
    bot_id=text,
    status=st.sampled_from(["created", "in_progress", "completed", "failed", "requires_action", "canceled"]),
    answer=st.text(max_size=2000),
    usage=st.none() | st.dictionaries(st.text(max_size=20), st.integers(-(2**63), 2**63 - 1), max_size=5),
    error=st.none() | text,
    updated_at=st.floats(min_value=0, max_value=4e9, allow_nan=False),
)


def stored(value: str) -> str:
    """What the contract says comes back: NUL and lone surrogates read back as U+FFFD."""
    return "".join("\ufffd" if ch == "\x00" or "\ud800" <= ch <= "\udfff" else ch for ch in value)


def test_any_record_reads_back_the_same_on_both_backends(store_url: str) -> None:
    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(connect_store(store_url))
    serial = itertools.count()
    try:

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(record=records, user_id=text, bot_id=text, conversation_id=text)
        def roundtrip(record: ChatRecord, user_id: str, bot_id: str, conversation_id: str) -> None:
            # A chat id of its own per example: a second write of the same chat may be (rightly) refused.
            record = dataclasses.replace(record, chat_id=f"{next(serial)}-{record.chat_id}")
            loop.run_until_complete(store.save_chat(record))
            got = loop.run_until_complete(store.get_chat(chat_id=record.chat_id))
            assert got == dataclasses.replace(
                record,
                chat_id=stored(record.chat_id),
                conversation_id=stored(record.conversation_id),
                user_id=stored(record.user_id),
                bot_id=stored(record.bot_id),
                answer=stored(record.answer),
                error=None if record.error is None else stored(record.error),
            )
            loop.run_until_complete(
                store.set_conversation(user_id=user_id, bot_id=bot_id, conversation_id=conversation_id)
            )
            found = loop.run_until_complete(store.get_conversation(user_id=user_id, bot_id=bot_id))
            assert found == stored(conversation_id)

        roundtrip()
    finally:
        loop.run_until_complete(store.close())
        loop.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_lease_has_one_holder_until_it_is_released_or_expires(store_url: str) -> None:
    clock = _Clock()
    async with open_store(store_url, clock=clock) as store:
        assert await store.acquire_lease(name="conv:1", owner="replica-a", ttl=30) is True
        assert await store.acquire_lease(name="conv:1", owner="replica-b", ttl=30) is False
        assert await store.acquire_lease(name="conv:2", owner="replica-b", ttl=30) is True  # other names are free
        assert await store.acquire_lease(name="conv:1", owner="replica-a", ttl=30) is True  # the holder extends
        await store.release_lease(name="conv:1", owner="replica-b")  # not the holder: nothing happens
        assert await store.acquire_lease(name="conv:1", owner="replica-b", ttl=30) is False
        await store.release_lease(name="conv:1", owner="replica-a")
        assert await store.acquire_lease(name="conv:1", owner="replica-b", ttl=30) is True
        clock.now += 31  # replica-b died holding it: the lease expires
        assert await store.acquire_lease(name="conv:1", owner="replica-c", ttl=30) is True


async def test_of_many_concurrent_takers_exactly_one_gets_the_lease(store_url: str) -> None:
    async with open_store(store_url) as first, open_store(store_url) as second:
        won: list[str] = []

        async def take(store: Store, owner: str) -> None:
            if await store.acquire_lease(name="conv:busy", owner=owner, ttl=60):
                won.append(owner)

        async with anyio.create_task_group() as tg:
            for index in range(40):
                tg.start_soon(take, first if index % 2 else second, f"owner-{index}")
    assert len(won) == 1
