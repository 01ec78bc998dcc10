"""The PostgreSQL store, for several replicas sharing state: psycopg 3 async over a connection pool.

Every operation is one autocommit statement (reads, or idempotent upserts/deletes with
``ON CONFLICT``), so a statement that fails because a pooled connection died (database
restart, failover) is retried once on a fresh connection. Opening checks that the server is
reachable with one direct connection (so the error names the real cause, not a pool timeout)
and migrates the schema under an advisory lock, so replicas starting together do not race.

To keep the tables in their own schema, put ``options=-csearch_path%3Dmy_schema`` in the URL
(the schema must exist); the tables also carry a ``kb_`` prefix.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from kai_bridge.errors import StoreError
from kai_bridge.store.base import (
    LEASE_DELETE,
    LEASE_UPSERT,
    SAVE_CHAT_GUARD,
    ChatRecord,
    ChatRow,
    chat_to_row,
    redact_url,
    row_to_chat,
    scrub,
    storable,
)
from kai_bridge.store.schema import SCHEMA_VERSION, VERSION_TABLE_DDL, pending, too_new_message

__all__ = ["PostgresStore"]

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
_SQL_LEASE_DELETE = LEASE_DELETE.format(p="%s")
_SQL_GET_CHAT = (
    "SELECT chat_id, conversation_id, user_id, bot_id, status, answer, usage, error, updated_at "
    "FROM kb_chats WHERE chat_id = %s"
)


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
        self.target = target

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
    ) -> PostgresStore:
        """Connect, migrate the schema and open a pool of ``pool_min_size``..``pool_max_size`` connections."""
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
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            conninfo,
            min_size=pool_min_size,
            max_size=pool_max_size,
            timeout=pool_timeout,
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

    async def acquire_lease(self, *, name: str, owner: str, ttl: float) -> bool:
        now = self._clock()
        row = await self._fetchone(_SQL_LEASE_UPSERT, (storable(name), storable(owner), now + ttl, now))
        return row is not None

    async def release_lease(self, *, name: str, owner: str) -> None:
        await self._execute(_SQL_LEASE_DELETE, (storable(name), storable(owner)))

    async def ping(self) -> None:
        await self._fetchone("SELECT 1", ())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._pool.close()

    # ---- plumbing -----------------------------------------------------------------------------
    async def _execute(self, sql: str, params: tuple[Any, ...]) -> None:
        await self._run(sql, params, fetch=False)

    async def _fetchone(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        return await self._run(sql, params, fetch=True)

    async def _run(self, sql: str, params: tuple[Any, ...], *, fetch: bool) -> tuple[Any, ...] | None:
        if self._closed:
            raise StoreError(f"the PostgreSQL store {self.target} is closed")
        for attempt in (1, 2):
            try:
                async with self._pool.connection() as conn:
                    cursor = await conn.execute(sql, params)
                    return await cursor.fetchone() if fetch else None
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
