"""The PostgreSQL store, for several replicas sharing state: psycopg 3 async over a connection pool.

Every operation is one autocommit statement (reads, or idempotent upserts/deletes with
``ON CONFLICT``), so a statement that fails because a pooled connection died (database
restart, failover) is retried once on a fresh connection. Opening checks that the server is
reachable with one direct connection (so the error names the real cause, not a pool timeout)
and migrates the schema under an advisory lock, so replicas starting together do not race.

Webhook inbox inserts are group-committed: calls that arrive while a batch is being written
wait and go out together in the next transaction (one pipelined round trip, one commit), so
a burst of callbacks costs a few commits rather than one each. The inbox claim is one
``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)``: replicas claiming at the same
time skip each other's rows, so an event is leased to exactly one of them.

To keep the tables in their own schema, put ``options=-csearch_path%3Dmy_schema`` in the URL
(the schema must exist); the tables also carry a ``kb_`` prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

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
    redact_url,
    row_to_bot_state,
    row_to_chat,
    row_to_conversation_event,
    row_to_event,
    row_to_summary,
    scrub,
    storable,
)
from kai_bridge.store.schema import SCHEMA_VERSION, VERSION_TABLE_DDL, pending, too_new_message

__all__ = ["PostgresStore"]

T = TypeVar("T")

# Any fixed 64-bit number: "kai-bridge schema migration" for pg_advisory_xact_lock.
_MIGRATION_LOCK = 0x6B61_6962_7269_6467

_SQL_GET_CONVERSATION = "SELECT conversation_id FROM kb_conversations WHERE user_id = %s AND bot_id = %s"
_SQL_SET_CONVERSATION = (
    "INSERT INTO kb_conversations (user_id, bot_id, conversation_id, updated_at) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (user_id, bot_id) DO UPDATE SET "
    "conversation_id = excluded.conversation_id, updated_at = excluded.updated_at"
)
_SQL_DELETE_CONVERSATION = "DELETE FROM kb_conversations WHERE user_id = %s AND bot_id = %s"
_SQL_SAVE_CHAT = (
    "INSERT INTO kb_chats (chat_id, conversation_id, user_id, bot_id, status, answer, usage, error, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "  # noqa: S608 (constants only)
    "ON CONFLICT (chat_id) DO UPDATE SET conversation_id = excluded.conversation_id, "
    "user_id = excluded.user_id, bot_id = excluded.bot_id, status = excluded.status, "
    "answer = excluded.answer, usage = excluded.usage, error = excluded.error, "
    "updated_at = excluded.updated_at " + SAVE_CHAT_GUARD
)
_SQL_LEASE_UPSERT = LEASE_UPSERT.format(p="%s")
_SQL_CONVERSATION_OWNERS = CONVERSATION_OWNERS.format(p="%s")
_SQL_LEASE_DELETE = LEASE_DELETE.format(p="%s")
_SQL_GET_CHAT = (
    "SELECT chat_id, conversation_id, user_id, bot_id, status, answer, usage, error, updated_at "
    "FROM kb_chats WHERE chat_id = %s"
)
_SQL_INSERT_EVENT = sql.pg(sql.INSERT_EVENT) + " RETURNING dedup_key"
_SQL_FIND_BY_DEDUP = "SELECT dedup_key, id FROM kb_inbox WHERE dedup_key = ANY(%s)"
_SQL_CLAIM = sql.pg(sql.claim_sql(skip_locked=True))
_MAX_INSERT_BATCH = 256


class PostgresStore:
    """A :class:`~kai_bridge.store.base.Store` in PostgreSQL. Build it with :meth:`open`."""

    kind = "postgresql"

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool[Any],
        target: str,
        password: str | None,
        clock: Callable[[], float],
        pool_timeout: float,
    ) -> None:
        self._pool = pool
        self._secrets = (password, None if password is None else unquote(password))
        self._clock = clock
        self._pool_timeout = pool_timeout
        self._closed = False
        self._closing = False  # close() has begun: queued inserts are still written, new ones refused
        self.target = target
        self._inserts = _GroupCommit(self._insert_batch, max_batch=_MAX_INSERT_BATCH)

    @classmethod
    async def open(
        cls,
        *,
        url: str,
        clock: Callable[[], float] = time.time,
        connect_timeout: float = 5.0,
        pool_min_size: int = 1,
        pool_max_size: int = 10,
        pool_timeout: float = 10.0,
        statement_timeout: float = 0.0,
    ) -> PostgresStore:
        """Connect, migrate the schema and open a pool of ``pool_min_size``..``pool_max_size`` connections.

        ``statement_timeout`` (seconds; 0 = the server's default) is set on every pooled connection.
        """
        target = redact_url(url)
        password = _password_of(url)
        secrets = (password, None if password is None else unquote(password))
        try:
            conninfo = make_conninfo(url)
            if "connect_timeout" not in conninfo_to_dict(conninfo):
                conninfo = make_conninfo(conninfo, connect_timeout=max(1, round(connect_timeout)))
        except psycopg.Error as exc:
            raise StoreError(f"invalid PostgreSQL store URL {target}: {scrub(str(exc), *secrets)}") from None
        try:
            conn = await psycopg.AsyncConnection.connect(conninfo)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot connect to the PostgreSQL store {target}: {_first_line(scrub(str(exc), *secrets))}"
            ) from None
        try:
            async with conn:
                await _migrate(conn, clock)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot prepare the schema of the PostgreSQL store {target}: {scrub(str(exc), *secrets)}"
            ) from None
        limit_ms = round(statement_timeout * 1000)

        async def configure(connection: psycopg.AsyncConnection[Any]) -> None:
            if limit_ms > 0:
                # SET takes no bind parameters; the value is an int we computed.
                await connection.execute(f"SET statement_timeout = {limit_ms}")

        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            conninfo,
            min_size=pool_min_size,
            max_size=pool_max_size,
            timeout=pool_timeout,
            configure=configure,
            kwargs={"autocommit": True},
            open=False,
            name="kai-bridge-store",
        )
        try:
            await pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout:
            await pool.close()
            raise StoreError(
                f"the PostgreSQL store {target} accepted one connection but the pool could not open "
                f"{pool_min_size} within {connect_timeout:g}s (max_connections reached?)"
            ) from None
        return cls(pool=pool, target=target, password=password, clock=clock, pool_timeout=pool_timeout)

    # ---- the Store protocol ------------------------------------------------------------------
    async def get_conversation(self, *, user_id: str, bot_id: str) -> str | None:
        row = await self._fetchone(_SQL_GET_CONVERSATION, (storable(user_id), storable(bot_id)))
        return None if row is None else cast(str, row[0])

    async def set_conversation(self, *, user_id: str, bot_id: str, conversation_id: str) -> None:
        await self._execute(
            _SQL_SET_CONVERSATION, (storable(user_id), storable(bot_id), storable(conversation_id), self._clock())
        )

    async def delete_conversation(self, *, user_id: str, bot_id: str) -> None:
        await self._execute(_SQL_DELETE_CONVERSATION, (storable(user_id), storable(bot_id)))

    async def save_chat(self, record: ChatRecord) -> None:
        await self._execute(_SQL_SAVE_CHAT, chat_to_row(record))

    async def get_chat(self, *, chat_id: str) -> ChatRecord | None:
        row = await self._fetchone(_SQL_GET_CHAT, (storable(chat_id),))
        return None if row is None else row_to_chat(cast(ChatRow, tuple(row)))

    async def conversation_owners(self, *, conversation_id: str) -> list[str]:
        key = storable(conversation_id)
        return [str(row[0]) for row in await self._fetchall(_SQL_CONVERSATION_OWNERS, (key, key))]

    async def acquire_lease(self, *, name: str, owner: str, ttl: float) -> bool:
        now = self._clock()
        row = await self._fetchone(_SQL_LEASE_UPSERT, (storable(name), storable(owner), now + ttl, now))
        return row is not None

    async def release_lease(self, *, name: str, owner: str) -> None:
        await self._execute(_SQL_LEASE_DELETE, (storable(name), storable(owner)))
    # ---- the webhook inbox -------------------------------------------------------------------
    async def insert_event(self, event: NewEvent) -> InsertResult:
        if self._closing:
            raise StoreError(f"the PostgreSQL store {self.target} is closed")
        return await self._inserts.submit(event)

    async def _insert_batch(self, events: list[NewEvent]) -> list[InsertResult]:
        """One transaction for every queued insert; the first of equal dedup keys wins."""
        now = self._clock()
        rows = [new_event_row(event, now=now) for event in events]

        async def work(conn: psycopg.AsyncConnection[Any]) -> list[InsertResult]:
            async with conn.transaction(), conn.cursor() as cursor:
                await cursor.executemany(_SQL_INSERT_EVENT, rows, returning=True)
                inserted: set[str] = set()
                while True:
                    row = await cursor.fetchone()
                    if row is not None:
                        inserted.add(str(row[0]))
                    if not cursor.nextset():
                        break
                missing = sorted({str(r[1]) for r in rows} - inserted)
                existing: dict[str, str] = {}
                if missing:
                    await cursor.execute(_SQL_FIND_BY_DEDUP, (missing,))
                    existing = {str(key): str(id_) for key, id_ in await cursor.fetchall()}
            results: list[InsertResult] = []
            first_of: dict[str, str] = {}
            for event, row in zip(events, rows, strict=True):
                key = str(row[1])
                if key in inserted and key not in first_of:
                    first_of[key] = event.id
                    results.append(InsertResult(id=event.id, duplicate=False))
                elif key in first_of:
                    results.append(InsertResult(id=first_of[key], duplicate=True))
                elif key in existing:
                    results.append(InsertResult(id=existing[key], duplicate=True))
                else:  # the id itself collided with another row: nothing to name as the original
                    raise StoreError(f"an inbox event with id {event.id} already exists")
            return results

        # Safe to retry on a fresh connection: a batch that did commit inserts nothing the second
        # time and finds every row by its dedup key (those callers then hear "duplicate").
        return await self._with_connection(work)

    async def claim_events(self, *, owner: str, limit: int, lease: float) -> list[InboxEvent]:
        now = self._clock()
        rows = await self._fetchall(_SQL_CLAIM, (storable(owner), now + lease, now, now, int(limit)))
        return sorted((row_to_event(tuple(r)) for r in rows), key=lambda e: (e.received_at, e.id))

    async def renew_leases(self, *, owner: str, lease: float) -> int:
        now = self._clock()
        return await self._rowcount(sql.pg(sql.RENEW), (now + lease, now, storable(owner)))

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
        return await self._rowcount(sql.pg(sql.FINISH), params) == 1

    async def release_events(self, *, owner: str) -> int:
        now = self._clock()
        return await self._rowcount(sql.pg(sql.RELEASE), (now, now, storable(owner)))

    async def get_event(self, *, event_id: str) -> InboxEvent | None:
        row = await self._fetchone(sql.pg(sql.GET_EVENT), (storable(event_id),))
        return None if row is None else row_to_event(tuple(row))

    async def list_events(self, *, status: str | None = None, limit: int = 50) -> list[EventSummary]:
        check_status(status)
        if status is None:
            rows = await self._fetchall(sql.pg(sql.LIST_EVENTS), (int(limit),))
        else:
            rows = await self._fetchall(sql.pg(sql.LIST_EVENTS_OF_STATUS), (status, int(limit)))
        return [row_to_summary(tuple(r)) for r in rows]

    async def count_events(self) -> dict[str, int]:
        rows = await self._fetchall(sql.COUNT_EVENTS, ())
        return {str(status): int(count) for status, count in rows}

    async def replay_event(self, *, event_id: str) -> bool:
        now = self._clock()
        return await self._rowcount(sql.pg(sql.REPLAY), (now, now, storable(event_id), now)) == 1

    async def purge_events(self, *, before: float) -> int:
        return await self._rowcount(sql.pg(sql.PURGE), (float(before),))

    async def set_bot_state(self, state: BotState) -> bool:
        return await self._rowcount(sql.pg(sql.SET_BOT_STATE), (*bot_state_row(state), self._clock())) == 1

    async def get_bot_state(self, *, bot_id: str) -> BotState | None:
        row = await self._fetchone(sql.pg(sql.GET_BOT_STATE), (storable(bot_id),))
        return None if row is None else row_to_bot_state(tuple(row))

    async def list_bot_states(self) -> list[BotState]:
        return [row_to_bot_state(tuple(r)) for r in await self._fetchall(sql.LIST_BOT_STATES, ())]

    async def add_conversation_event(self, event: ConversationEvent) -> None:
        await self._execute(sql.pg(sql.ADD_CONVERSATION_EVENT), conversation_event_row(event))

    async def list_conversation_events(self, *, conversation_id: str, limit: int = 50) -> list[ConversationEvent]:
        rows = await self._fetchall(sql.pg(sql.LIST_CONVERSATION_EVENTS), (storable(conversation_id), int(limit)))
        return [row_to_conversation_event(tuple(r)) for r in rows]

    async def ping(self) -> None:
        await self._fetchone("SELECT 1", ())

    async def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        await self._inserts.drain()
        self._closed = True
        await self._pool.close()

    # ---- plumbing -----------------------------------------------------------------------------
    async def _execute(self, statement: str, params: tuple[Any, ...]) -> None:
        await self._run(statement, params, fetch=False)

    async def _fetchone(self, statement: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        return await self._run(statement, params, fetch=True)

    async def _run(self, statement: str, params: tuple[Any, ...], *, fetch: bool) -> tuple[Any, ...] | None:
        async def work(conn: psycopg.AsyncConnection[Any]) -> tuple[Any, ...] | None:
            cursor = await conn.execute(statement, params)
            return await cursor.fetchone() if fetch else None

        return await self._with_connection(work)

    async def _fetchall(self, statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        async def work(conn: psycopg.AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(statement, params)
            return await cursor.fetchall()

        return await self._with_connection(work)

    async def _rowcount(self, statement: str, params: tuple[Any, ...]) -> int:
        async def work(conn: psycopg.AsyncConnection[Any]) -> int:
            cursor = await conn.execute(statement, params)
            return cursor.rowcount

        return await self._with_connection(work)

    async def _with_connection(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Run ``work`` on a pooled connection, once more on a fresh one if the first had died.

        Every caller's work is safe to repeat (idempotent statements). A claim whose connection
        broke after it committed leased rows nobody works on: their lease runs out and they
        are due again.
        """
        if self._closed:
            raise StoreError(f"the PostgreSQL store {self.target} is closed")
        for attempt in (1, 2):
            try:
                async with self._pool.connection() as conn:
                    return await work(conn)
            except PoolTimeout:
                raise StoreError(
                    f"no connection to the PostgreSQL store {self.target} within {self._pool_timeout:g}s "
                    "(database unreachable or pool exhausted)"
                ) from None
            except PoolClosed:
                raise StoreError(f"the PostgreSQL store {self.target} is closed") from None
            except psycopg.OperationalError as exc:
                # Pooled connections broken by a server restart or failover: drop every dead one
                # (not just this one), then retry once. Every statement here is idempotent.
                if attempt == 1:
                    with contextlib.suppress(psycopg.Error, PoolClosed):
                        await self._pool.check()
                    continue
                raise self._error(exc) from exc
            except psycopg.Error as exc:
                raise self._error(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, exc: psycopg.Error) -> StoreError:
        detail = _first_line(scrub(str(exc), *self._secrets))
        return StoreError(f"the PostgreSQL store {self.target} failed: {type(exc).__name__}: {detail}")


async def _migrate(conn: psycopg.AsyncConnection[Any], clock: Callable[[], float]) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute(VERSION_TABLE_DDL)
        cursor = await conn.execute("SELECT version FROM kb_schema_version")
        applied = {int(row[0]) for row in await cursor.fetchall()}
        newest = max(applied, default=0)
        if newest > SCHEMA_VERSION:
            raise StoreError(too_new_message(newest))
        for migration in pending(applied):
            for statement in migration.statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO kb_schema_version (version, description, applied_at) VALUES (%s, %s, %s)",
                (migration.version, migration.description, clock()),
            )


def _password_of(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    if password is not None:
        return password
    # key=value conninfo strings are accepted too
    try:
        return conninfo_to_dict(url).get("password")  # type: ignore[return-value]
    except psycopg.Error:
        return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


class _GroupCommit:
    """Batches concurrent calls into one ``run_batch`` call at a time (group commit).

    A call arriving while no batch is being written starts one at once (no added latency);
    calls arriving meanwhile queue and go out together in the next batch.
    """

    def __init__(
        self, run_batch: Callable[[list[NewEvent]], Awaitable[list[InsertResult]]], *, max_batch: int
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._queue: list[tuple[NewEvent, asyncio.Future[InsertResult]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, event: NewEvent) -> InsertResult:
        future: asyncio.Future[InsertResult] = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="kai-bridge-inbox-commit")
        # shield: a caller that gives up does not cancel the batch its neighbours are waiting on.
        return await asyncio.shield(future)

    async def drain(self) -> None:
        """Wait until every queued call has been written."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher

    async def _flush(self) -> None:
        while self._queue:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            try:
                results = await self._run_batch([event for event, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
