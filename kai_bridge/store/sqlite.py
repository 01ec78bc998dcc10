"""The embedded SQLite store: inline commits on the event loop, or a writer thread with group commit.

Durability: WAL journal. By default ``synchronous=NORMAL`` (:data:`DEFAULT_SYNCHRONOUS`): a
commit has written its WAL frames to the operating system before the caller is told "saved",
so a write that returned survives ``kill -9`` (or any crash) of the process, the project's
standard; only an OS crash or power cut can lose the last commits (the WAL is fsynced at each
checkpoint, and the database never corrupts). ``synchronous=FULL`` (``?synchronous=full`` on
the store URL) also fsyncs the WAL on every commit, surviving a power cut too.

Two ways a call runs:

- *Inline* (NORMAL, the default): calls made from the event loop that opened the store run
  right there on a second connection, a point read or a one-row upsert plus a commit that
  only writes to the page cache, some tens of microseconds. Handing such a call to a thread
  and back costs more than the call: on the 2-core reference machine each hand-off wakes a
  thread and then the loop, 0.2-0.5 ms under load, about 1 ms per ``send_message``. The inline
  connection never waits for a lock (``busy_timeout`` 0): when another connection or process
  holds the write lock, the call goes to the writer thread instead, which waits. It never
  checkpoints either: every few hundred inline commits the writer thread runs a passive WAL
  checkpoint, so the fsyncs of a checkpoint never stall the loop.
- *Writer thread* (FULL, ``:memory:``, other threads or loops, a busy database): one
  connection owned by one dedicated thread, with group commit. Why a hand-written thread
  rather than aiosqlite: aiosqlite is the same design (one thread per connection fed by a
  queue) but commits each statement on its own. Owning the thread lets it *group-commit*:
  writes that queue up while the disk is busy syncing are applied in one transaction (each
  inside its own SAVEPOINT, so one failing write does not fail its neighbours) and made durable
  with one fsync. Callers are told "saved" only after that commit.

Webhook inbox inserts always take the writer thread, even in NORMAL mode: a burst of
callbacks arriving together is committed as one transaction (one fsync under FULL), and the
event loop keeps parsing the next requests while the thread writes.

Calls from the loop keep their order: while any of them is queued on the thread, the next ones
queue behind it. ``busy_timeout`` lets several processes share the file (the CLI next to a server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, cast

from kai_bridge.errors import StoreError
from kai_bridge.store import inbox_sql as sql
from kai_bridge.store.base import (
    CONVERSATION_OWNERS,
    LEASE_DELETE,
    LEASE_UPSERT,
    SAVE_CHAT_GUARD,
    BotState,
    ChatRecord,
    ChatRow,
    ConversationEvent,
    EventSummary,
    InboxEvent,
    InsertResult,
    NewEvent,
    bot_state_row,
    chat_to_row,
    check_status,
    conversation_event_row,
    new_event_row,
    row_to_bot_state,
    row_to_chat,
    row_to_conversation_event,
    row_to_event,
    row_to_summary,
    storable,
)
from kai_bridge.store.schema import SCHEMA_VERSION, VERSION_TABLE_DDL, pending, too_new_message

__all__ = ["DEFAULT_SYNCHRONOUS", "SQLiteStore", "Synchronous"]

T = TypeVar("T")

logger = logging.getLogger(__name__)

Synchronous = Literal["normal", "full"]
#: NORMAL, not FULL: in WAL mode both keep every acknowledged write across a process crash
#: (kill -9), which is what the bridge promises; FULL's extra fsync per commit only adds
#: protection against power loss / an OS crash, and costs more than the whole rest of the
#: bridge's per-message overhead. Deployments that want it set ``?synchronous=full``.
DEFAULT_SYNCHRONOUS: Final[Synchronous] = "normal"

_MAX_BATCH = 512
#: Inline commits between two passive WAL checkpoints run on the writer thread (SQLite's own
#: automatic checkpoint comes every 1000 WAL pages; a chat record is one or two pages).
_CHECKPOINT_EVERY = 400
_MEMORY = ":memory:"

_SQL_GET_CONVERSATION = "SELECT conversation_id FROM kb_conversations WHERE user_id = ? AND bot_id = ?"
_SQL_SET_CONVERSATION = (
    "INSERT INTO kb_conversations (user_id, bot_id, conversation_id, updated_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (user_id, bot_id) DO UPDATE SET "
    "conversation_id = excluded.conversation_id, updated_at = excluded.updated_at"
)
_SQL_DELETE_CONVERSATION = "DELETE FROM kb_conversations WHERE user_id = ? AND bot_id = ?"
_SQL_SAVE_CHAT = (
    "INSERT INTO kb_chats (chat_id, conversation_id, user_id, bot_id, status, answer, usage, error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "  # noqa: S608 (constants only)
    "ON CONFLICT (chat_id) DO UPDATE SET conversation_id = excluded.conversation_id, "
    "user_id = excluded.user_id, bot_id = excluded.bot_id, status = excluded.status, "
    "answer = excluded.answer, usage = excluded.usage, error = excluded.error, "
    "updated_at = excluded.updated_at " + SAVE_CHAT_GUARD
)
_SQL_LEASE_UPSERT = LEASE_UPSERT.format(p="?")
_SQL_CONVERSATION_OWNERS = CONVERSATION_OWNERS.format(p="?")
_SQL_LEASE_DELETE = LEASE_DELETE.format(p="?")
_SQL_GET_CHAT = (
    "SELECT chat_id, conversation_id, user_id, bot_id, status, answer, usage, error, updated_at "
    "FROM kb_chats WHERE chat_id = ?"
)
_SQL_CLAIM = sql.claim_sql(skip_locked=False)


@dataclass(slots=True)
class _Job:
    fn: Callable[[sqlite3.Connection], Any]
    write: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Stop:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None] = field(repr=False)


def _resolve(job: _Job | _Stop, result: Any = None, exc: BaseException | None = None) -> None:
    """Hand an outcome back to the caller's event loop (the caller may have given up: then drop it)."""

    def deliver() -> None:
        if job.future.done():
            return
        if exc is None:
            job.future.set_result(result)
        else:
            job.future.set_exception(exc)

    with contextlib.suppress(RuntimeError):  # loop already closed: nobody is waiting
        job.loop.call_soon_threadsafe(deliver)


class SQLiteStore:
    """A :class:`~kai_bridge.store.base.Store` in one SQLite file. Build it with :meth:`open`."""

    kind = "sqlite"

    def __init__(self, *, conn: sqlite3.Connection, path: str, clock: Callable[[], float]) -> None:
        self._conn = conn
        self._path = path
        self._clock = clock
        self._queue: queue.SimpleQueue[_Job | _Stop] = queue.SimpleQueue()
        self._closed = False
        # The inline path (see the module docstring): set by open() for NORMAL stores on a file.
        self._inline: sqlite3.Connection | None = None
        self._home: tuple[int, asyncio.AbstractEventLoop] | None = None
        self._queued_from_home = 0  # calls of the home loop waiting on the thread
        self._inline_commits = 0
        self.inline_calls = 0  # how many calls ran inline (for tests and diagnostics)
        self._thread = threading.Thread(target=self._serve, name=f"kai-bridge-sqlite:{path}", daemon=True)
        self._thread.start()
        self.target = f"sqlite:///{path}"

    # ---- construction ------------------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        *,
        path: str | Path,
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 5.0,
        synchronous: Synchronous = DEFAULT_SYNCHRONOUS,
    ) -> SQLiteStore:
        """Open (creating the file and its parent directories) and migrate the store at ``path``.

        ``synchronous`` is the durability of a commit (see the module docstring): ``"normal"``
        survives a process crash, ``"full"`` a power cut as well.
        """
        if synchronous not in ("normal", "full"):
            raise StoreError(f"SQLite synchronous must be 'normal' or 'full', not {synchronous!r}")
        where = str(path)
        conn = await asyncio.to_thread(_connect, where, busy_timeout, synchronous)
        store = cls(conn=conn, path=where, clock=clock)
        try:
            await store._submit(_migrate_fn(clock), write=True)
            if synchronous == "normal" and where != _MEMORY:
                # Opened after the migration, which may have to wait for another opener.
                try:
                    store._inline = await asyncio.to_thread(_connect, where, 0.0, synchronous, inline=True)
                except StoreError as exc:
                    logger.info("SQLite store %s: every call goes through the writer thread (%s)", where, exc)
                else:
                    store._home = (threading.get_ident(), asyncio.get_running_loop())
        except BaseException:
            await store.close()
            raise
        return store

    # ---- the Store protocol ------------------------------------------------------------------
    async def get_conversation(self, *, user_id: str, bot_id: str) -> str | None:
        def fn(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(_SQL_GET_CONVERSATION, (storable(user_id), storable(bot_id))).fetchone()
            return None if row is None else cast(str, row[0])

        return await self._submit(fn, write=False)

    async def set_conversation(self, *, user_id: str, bot_id: str, conversation_id: str) -> None:
        params = (storable(user_id), storable(bot_id), storable(conversation_id), self._clock())
        await self._submit(lambda conn: conn.execute(_SQL_SET_CONVERSATION, params), write=True)

    async def delete_conversation(self, *, user_id: str, bot_id: str) -> None:
        await self._submit(
            lambda conn: conn.execute(_SQL_DELETE_CONVERSATION, (storable(user_id), storable(bot_id))), write=True
        )

    async def save_chat(self, record: ChatRecord) -> None:
        row = chat_to_row(record)
        await self._submit(lambda conn: conn.execute(_SQL_SAVE_CHAT, row), write=True)

    async def get_chat(self, *, chat_id: str) -> ChatRecord | None:
        def fn(conn: sqlite3.Connection) -> ChatRecord | None:
            row = conn.execute(_SQL_GET_CHAT, (storable(chat_id),)).fetchone()
            return None if row is None else row_to_chat(cast(ChatRow, tuple(row)))

        return await self._submit(fn, write=False)

    async def conversation_owners(self, *, conversation_id: str) -> list[str]:
        key = storable(conversation_id)

        def fn(conn: sqlite3.Connection) -> list[str]:
            return [str(row[0]) for row in conn.execute(_SQL_CONVERSATION_OWNERS, (key, key)).fetchall()]

        return await self._submit(fn, write=False)

    async def acquire_lease(self, *, name: str, owner: str, ttl: float) -> bool:
        now = self._clock()
        params = (storable(name), storable(owner), now + ttl, now)

        def fn(conn: sqlite3.Connection) -> bool:
            return conn.execute(_SQL_LEASE_UPSERT, params).fetchone() is not None

        return await self._submit(fn, write=True)

    async def release_lease(self, *, name: str, owner: str) -> None:
        params = (storable(name), storable(owner))
        await self._submit(lambda conn: conn.execute(_SQL_LEASE_DELETE, params), write=True)
    # ---- the webhook inbox -------------------------------------------------------------------
    async def insert_event(self, event: NewEvent) -> InsertResult:
        params = new_event_row(event, now=self._clock())

        def fn(conn: sqlite3.Connection) -> InsertResult:
            if conn.execute(sql.INSERT_EVENT, params).rowcount == 1:
                return InsertResult(id=event.id, duplicate=False)
            row = conn.execute(sql.FIND_BY_DEDUP, (params[1],)).fetchone()
            if row is None:  # the id itself collided: not a duplicate of anything we can name
                raise StoreError(f"an inbox event with id {event.id} already exists")
            return InsertResult(id=str(row[0]), duplicate=True)

        return await self._submit(fn, write=True, group=True)

    async def claim_events(self, *, owner: str, limit: int, lease: float) -> list[InboxEvent]:
        now = self._clock()
        params = (storable(owner), now + lease, now, now, int(limit))

        def fn(conn: sqlite3.Connection) -> list[InboxEvent]:
            rows = conn.execute(_SQL_CLAIM, params).fetchall()
            return sorted((row_to_event(tuple(r)) for r in rows), key=lambda e: (e.received_at, e.id))

        return await self._submit(fn, write=True)

    async def renew_leases(self, *, owner: str, lease: float) -> int:
        now = self._clock()
        params = (now + lease, now, storable(owner))
        return await self._submit(lambda conn: conn.execute(sql.RENEW, params).rowcount, write=True)

    async def finish_event(
        self,
        *,
        event_id: str,
        owner: str,
        status: str,
        result: str | None,
        error: str | None,
        due_at: float | None = None,
    ) -> bool:
        params = sql.finish_params(
            event_id=event_id, owner=owner, status=status, result=result, error=error, due_at=due_at, now=self._clock()
        )
        return await self._submit(lambda conn: conn.execute(sql.FINISH, params).rowcount == 1, write=True)

    async def release_events(self, *, owner: str) -> int:
        now = self._clock()
        params = (now, now, storable(owner))
        return await self._submit(lambda conn: conn.execute(sql.RELEASE, params).rowcount, write=True)

    async def get_event(self, *, event_id: str) -> InboxEvent | None:
        def fn(conn: sqlite3.Connection) -> InboxEvent | None:
            row = conn.execute(sql.GET_EVENT, (storable(event_id),)).fetchone()
            return None if row is None else row_to_event(tuple(row))

        return await self._submit(fn, write=False)

    async def list_events(self, *, status: str | None = None, limit: int = 50) -> list[EventSummary]:
        check_status(status)
        query, params = (
            (sql.LIST_EVENTS, (int(limit),)) if status is None else (sql.LIST_EVENTS_OF_STATUS, (status, int(limit)))
        )

        def fn(conn: sqlite3.Connection) -> list[EventSummary]:
            return [row_to_summary(tuple(r)) for r in conn.execute(query, params).fetchall()]

        return await self._submit(fn, write=False)

    async def count_events(self) -> dict[str, int]:
        def fn(conn: sqlite3.Connection) -> dict[str, int]:
            return {str(status): int(count) for status, count in conn.execute(sql.COUNT_EVENTS).fetchall()}

        return await self._submit(fn, write=False)

    async def replay_event(self, *, event_id: str) -> bool:
        now = self._clock()
        params = (now, now, storable(event_id), now)
        return await self._submit(lambda conn: conn.execute(sql.REPLAY, params).rowcount == 1, write=True)

    async def purge_events(self, *, before: float) -> int:
        params = (float(before),)
        return await self._submit(lambda conn: conn.execute(sql.PURGE, params).rowcount, write=True)

    async def set_bot_state(self, state: BotState) -> bool:
        params = (*bot_state_row(state), self._clock())
        return await self._submit(lambda conn: conn.execute(sql.SET_BOT_STATE, params).rowcount == 1, write=True)

    async def get_bot_state(self, *, bot_id: str) -> BotState | None:
        def fn(conn: sqlite3.Connection) -> BotState | None:
            row = conn.execute(sql.GET_BOT_STATE, (storable(bot_id),)).fetchone()
            return None if row is None else row_to_bot_state(tuple(row))

        return await self._submit(fn, write=False)

    async def list_bot_states(self) -> list[BotState]:
        def fn(conn: sqlite3.Connection) -> list[BotState]:
            return [row_to_bot_state(tuple(r)) for r in conn.execute(sql.LIST_BOT_STATES).fetchall()]

        return await self._submit(fn, write=False)

    async def add_conversation_event(self, event: ConversationEvent) -> None:
        params = conversation_event_row(event)
        await self._submit(lambda conn: conn.execute(sql.ADD_CONVERSATION_EVENT, params), write=True)

    async def list_conversation_events(self, *, conversation_id: str, limit: int = 50) -> list[ConversationEvent]:
        params = (storable(conversation_id), int(limit))

        def fn(conn: sqlite3.Connection) -> list[ConversationEvent]:
            rows = conn.execute(sql.LIST_CONVERSATION_EVENTS, params).fetchall()
            return [row_to_conversation_event(tuple(r)) for r in rows]

        return await self._submit(fn, write=False)

    async def ping(self) -> None:
        await self._submit(lambda conn: conn.execute("SELECT 1").fetchone(), write=False)

    async def close(self) -> None:
        """Finish queued work, close the connection and stop the thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        inline, self._inline = self._inline, None
        if inline is not None:
            with contextlib.suppress(sqlite3.Error):
                inline.close()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Stop(loop, done))
        await done

    # ---- the caller side of the thread -------------------------------------------------------
    async def _submit(self, fn: Callable[[sqlite3.Connection], T], *, write: bool, group: bool = False) -> T:
        """Run ``fn`` inline or on the writer thread; ``group``: always the thread (group commit)."""
        if self._closed:
            raise StoreError(f"the SQLite store {self._path} is closed")
        loop = asyncio.get_running_loop()
        home = self._home is not None and self._home == (threading.get_ident(), loop)
        if home and not group and self._inline is not None and self._queued_from_home == 0:
            try:
                return self._run_inline(self._inline, fn, write=write)
            except _Busy:
                pass  # another connection holds the lock: the writer thread waits for it
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, write, loop, future))
        if not home:
            return await future
        self._queued_from_home += 1
        try:
            return await future
        finally:
            self._queued_from_home -= 1

    # ---- the inline path ---------------------------------------------------------------------
    def _run_inline(self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """Run one call on the loop's own connection; raise _Busy if it would have to wait for a lock."""
        try:
            if not write:
                result = fn(conn)
            else:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                finally:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise _Busy from None
            raise self._wrap(exc) from None
        except Exception as exc:
            raise self._wrap(exc) from None
        self.inline_calls += 1
        if write:
            self._inline_commits += 1
            if self._inline_commits % _CHECKPOINT_EVERY == 0:
                self._checkpoint_later()
        return result

    def _checkpoint_later(self) -> None:
        """Queue a passive WAL checkpoint on the writer thread; nobody waits for it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        future.add_done_callback(_log_checkpoint_failure)
        self._queue.put(_Job(_checkpoint, False, loop, future))

    # ---- the thread --------------------------------------------------------------------------
    def _serve(self) -> None:
        stop: _Stop | None = None
        while stop is None:
            first = self._queue.get()
            if isinstance(first, _Stop):
                stop = first
                break
            batch = [first]
            while len(batch) < _MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Stop):
                    stop = item
                    break
                batch.append(item)
            self._run_batch(batch)
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        _resolve(stop)

    def _run_batch(self, batch: list[_Job]) -> None:
        """Run jobs in arrival order: each stretch of reads directly, each stretch of writes as one commit."""
        start = 0
        while start < len(batch):
            end = start
            write = batch[start].write
            while end < len(batch) and batch[end].write == write:
                end += 1
            if write:
                self._run_writes(batch[start:end])
            else:
                for job in batch[start:end]:
                    self._run_one(job)
            start = end

    def _run_one(self, job: _Job) -> None:
        try:
            result = job.fn(self._conn)
        except Exception as exc:
            _resolve(job, exc=self._wrap(exc))
        else:
            _resolve(job, result)

    def _run_writes(self, jobs: list[_Job]) -> None:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except Exception as exc:
            for job in jobs:
                _resolve(job, exc=self._wrap(exc))
            return
        isolate = len(jobs) > 1  # savepoints only pay off when several writes share the commit
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        for job in jobs:
            try:
                if isolate:
                    conn.execute("SAVEPOINT job")
                result = job.fn(conn)
                if isolate:
                    conn.execute("RELEASE job")
            except Exception as exc:
                if isolate:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                outcomes.append((job, None, self._wrap(exc)))
            else:
                outcomes.append((job, result, None))
        try:
            if not isolate and outcomes[0][2] is not None:
                conn.execute("ROLLBACK")
            else:
                conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            error = self._wrap(exc)
            for job, _, _ in outcomes:
                _resolve(job, exc=error)
            return
        for job, result, failure in outcomes:
            _resolve(job, result, failure)

    def _wrap(self, exc: Exception) -> Exception:
        if isinstance(exc, sqlite3.Error):
            wrapped = StoreError(f"the SQLite store {self._path} failed: {exc}")
            wrapped.__cause__ = exc
            return wrapped
        return exc


class _Busy(Exception):
    """The inline connection would have had to wait for a lock."""


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()


def _log_checkpoint_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        logger.warning("SQLite WAL checkpoint failed (the next one will retry): %s", exc)


def _connect(
    path: str, busy_timeout: float, synchronous: Synchronous = DEFAULT_SYNCHRONOUS, *, inline: bool = False
) -> sqlite3.Connection:
    """Open the file with the pragmas durability and sharing need (runs in a worker thread).

    ``inline``: the event loop's connection, which never waits for a lock and never checkpoints.
    """
    if path != _MEMORY:
        parent = Path(path).expanduser().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create the directory {parent} for the SQLite store: {exc.strerror or exc}"
            ) from None
    try:
        # isolation_level=None: no implicit transactions, the store issues BEGIN/COMMIT itself.
        conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the SQLite store at {path}: {exc}") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if path != _MEMORY and not inline:  # the inline connection opens a file already in WAL mode
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"the SQLite store at {path} cannot use WAL mode (got {mode!r})")
        conn.execute(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")
        if inline:
            conn.execute("PRAGMA wal_autocheckpoint = 0")
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot open the SQLite store at {path}: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate_fn(clock: Callable[[], float]) -> Callable[[sqlite3.Connection], None]:
    def migrate(conn: sqlite3.Connection) -> None:
        conn.execute(VERSION_TABLE_DDL)
        applied = {int(row[0]) for row in conn.execute("SELECT version FROM kb_schema_version")}
        newest = max(applied, default=0)
        if newest > SCHEMA_VERSION:
            raise StoreError(too_new_message(newest))
        todo = pending(applied)
        for migration in todo:
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO kb_schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.description, clock()),
            )

    return migrate
