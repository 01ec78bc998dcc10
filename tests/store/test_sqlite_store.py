"""SQLite-only behaviour: durability across kill -9, file handling, group-commit isolation, errors."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

import kai_bridge.store.sqlite as sqlite_module
from kai_bridge.errors import StoreError
from kai_bridge.store import ChatRecord, SQLiteStore, open_store

WRITER = Path(__file__).with_name("sqlite_writer.py")


def record(chat_id: str, **kw: object) -> ChatRecord:
    base: dict[str, object] = {
        "conversation_id": "c",
        "user_id": "u",
        "bot_id": "b",
        "status": "completed",
        "answer": "a",
        "usage": None,
        "error": None,
        "updated_at": 1.0,
    }
    base.update(kw)
    return ChatRecord(chat_id=chat_id, **base)  # type: ignore[arg-type]


@pytest.mark.e2e
async def test_every_write_a_killed_writer_was_told_about_survives_kill_9(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(WRITER), url, "8", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    acknowledged: list[str] = []
    try:
        async with asyncio.timeout(60):
            while len(acknowledged) < 400:
                line = await proc.stdout.readline()
                if not line:
                    stderr = await proc.stderr.read() if proc.stderr else b""
                    pytest.fail(f"writer exited early: {stderr.decode(errors='replace')[-2000:]}")
                acknowledged.append(line.decode().strip())
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-write: the writer never stops on its own
        rest, _ = await proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    acknowledged += [line for line in rest.decode().splitlines() if line.strip()]  # said before the kill

    async with open_store(url) as store:
        for key in acknowledged:
            saved = await store.get_chat(chat_id=key)
            assert saved is not None, f"chat {key} was acknowledged but lost"
            assert saved.answer == f"answer {key}"
        last_per_task: dict[str, int] = {}
        for key in acknowledged:
            task, n = key.split(":")
            last_per_task[task] = max(last_per_task.get(task, -1), int(n))
        for task, last in last_per_task.items():
            conversation = await store.get_conversation(user_id=f"user-{task}", bot_id="bot")
            assert conversation is not None
            assert int(conversation.split(":")[1]) >= last


async def test_opening_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "store.db"
    async with open_store(f"sqlite:///{path}") as store:
        await store.ping()
    assert path.is_file()


@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        pytest.param("", 1, id="default-normal"),  # WAL + NORMAL: survives kill -9 (test above)
        pytest.param("?synchronous=full", 2, id="full-on-request"),  # fsync per commit: survives power loss
        pytest.param("?synchronous=NORMAL", 1, id="normal-any-case"),
    ],
)
async def test_the_file_is_in_wal_mode_with_the_synchronous_level_the_url_asks_for(
    tmp_path: Path, suffix: str, expected: int
) -> None:
    path = tmp_path / "s.db"
    async with open_store(f"sqlite:///{path}{suffix}") as store:
        assert isinstance(store, SQLiteStore)
        await store.ping()  # the writer thread is idle now: its connection may be read here
        writer = store._conn
        assert writer.execute("PRAGMA synchronous").fetchone()[0] == expected
        assert writer.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        inline = store._inline
        if expected == 2:  # FULL: every call goes through the writer thread (group commit)
            assert inline is None
        else:  # NORMAL: the loop's own connection never waits for a lock and never checkpoints
            assert inline is not None
            assert inline.execute("PRAGMA synchronous").fetchone()[0] == expected
            assert inline.execute("PRAGMA busy_timeout").fetchone()[0] == 0
            assert inline.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_an_unknown_synchronous_level_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="synchronous must be normal or full"):
        async with open_store(f"sqlite:///{tmp_path / 'x.db'}?synchronous=off"):
            pass
    assert not (tmp_path / "x.db").exists()


async def test_one_failing_write_does_not_fail_the_writes_committed_with_it(tmp_path: Path) -> None:
    store = await SQLiteStore.open(path=tmp_path / "g.db", synchronous="full")  # the group-commit path
    try:
        duplicate = "INSERT INTO kb_schema_version (version, description, applied_at) VALUES (1, 'dup', 0)"
        goods = [record(f"good-{i}") for i in range(50)]
        results = await asyncio.gather(
            *(store.save_chat(r) for r in goods[:25]),
            store._submit(lambda conn: conn.execute(duplicate), write=True),  # fails inside the shared commit
            *(store.save_chat(r) for r in goods[25:]),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        assert len(errors) == 1
        assert isinstance(errors[0], StoreError)
        assert "UNIQUE constraint failed" in str(errors[0])
        for r in goods:
            assert await store.get_chat(chat_id=r.chat_id) == r
    finally:
        await store.close()


async def test_calls_from_the_opening_loop_run_inline_and_other_connections_see_the_writes(tmp_path: Path) -> None:
    path = tmp_path / "inline.db"
    async with open_store(f"sqlite:///{path}") as store:
        assert isinstance(store, SQLiteStore)
        await store.save_chat(record("one"))
        await store.set_conversation(user_id="u", bot_id="b", conversation_id="c1")
        assert await store.get_chat(chat_id="one") == record("one")
        assert store.inline_calls == 3
        other = sqlite3.connect(path)
        try:
            assert other.execute("SELECT chat_id FROM kb_chats").fetchall() == [("one",)]
        finally:
            other.close()
        # Another event loop (in another thread) goes through the writer thread, and sees the same data.
        seen = await asyncio.to_thread(asyncio.run, store.get_conversation(user_id="u", bot_id="b"))
        assert seen == "c1"
        assert store.inline_calls == 3


async def test_a_write_that_finds_the_database_locked_waits_on_the_thread_and_keeps_call_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locked.db"
    async with open_store(f"sqlite:///{path}") as store:
        assert isinstance(store, SQLiteStore)
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            blocker.execute("INSERT INTO kb_conversations VALUES ('x', 'y', 'z', 0)")
            write = asyncio.create_task(store.save_chat(record("late")))
            await asyncio.sleep(0)  # one loop step: the task tries inline, meets the lock, queues
            assert store._queued_from_home == 1
            # Queued behind the write, not run inline ahead of it: it sees the record.
            read = asyncio.create_task(store.get_chat(chat_id="late"))
            await asyncio.sleep(0)
            assert not write.done()
            blocker.execute("COMMIT")
        finally:
            blocker.close()
        async with asyncio.timeout(10):
            await write
            assert await read == record("late")
        assert await store.get_conversation(user_id="x", bot_id="y") == "z"
        assert store._queued_from_home == 0


async def test_inline_commits_hand_wal_checkpoints_to_the_writer_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = threading.Event()
    results: list[tuple[int, int, int]] = []

    def checkpoint(conn: sqlite3.Connection) -> None:
        results.append(tuple(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()))
        done.set()

    monkeypatch.setattr(sqlite_module, "_CHECKPOINT_EVERY", 5)
    monkeypatch.setattr(sqlite_module, "_checkpoint", checkpoint)
    async with open_store(f"sqlite:///{tmp_path / 'wal.db'}") as store:
        for i in range(4):
            await store.save_chat(record(f"c{i}"))
        assert results == []
        await store.save_chat(record("c4"))
        assert await asyncio.to_thread(done.wait, 10)
    busy, wal_frames, checkpointed = results[0]
    assert busy == 0
    assert wal_frames > 0
    assert checkpointed == wal_frames  # the whole WAL went into the database file


async def test_a_second_process_style_connection_sees_committed_writes(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    async with open_store(f"sqlite:///{path}") as store:
        await store.set_conversation(user_id="u", bot_id="b", conversation_id="c")
        other = sqlite3.connect(path)
        try:
            row = other.execute("SELECT conversation_id FROM kb_conversations").fetchone()
        finally:
            other.close()
    assert row == ("c",)


async def test_an_in_memory_store_works_for_throwaway_use() -> None:
    async with open_store("sqlite:///:memory:") as store:
        await store.set_conversation(user_id="u", bot_id="b", conversation_id="c")
        assert await store.get_conversation(user_id="u", bot_id="b") == "c"


async def test_a_file_that_is_not_a_database_gives_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"cannot open the SQLite store .*junk\.db"):
        async with open_store(f"sqlite:///{path}"):
            pass


async def test_a_path_that_cannot_be_created_gives_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the directory"):
        async with open_store(f"sqlite:///{blocker / 'sub' / 'store.db'}"):
            pass


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("sqlite://", id="no-path"),
        pytest.param("sqlite:///", id="empty-path"),
        pytest.param("sqlite://host/db", id="host-form"),
    ],
)
async def test_a_malformed_sqlite_url_gives_a_store_error_with_the_accepted_forms(url: str) -> None:
    with pytest.raises(StoreError, match=r"sqlite:///relative/path\.db"):
        async with open_store(url):
            pass


async def test_the_thread_stops_when_the_store_closes(tmp_path: Path) -> None:
    store = await SQLiteStore.open(path=tmp_path / "t.db")
    thread = store._thread
    assert thread.is_alive()
    await store.close()
    thread.join(timeout=5)
    assert not thread.is_alive()


async def test_a_caller_that_gives_up_does_not_break_the_store(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        task = asyncio.create_task(store.save_chat(record("x")))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await store.save_chat(record("y"))
        assert await store.get_chat(chat_id="y") == record("y")
