"""Durable state shared by the bridge's doors and replicas: conversations and chat outcomes.

``open_store(url)`` picks the backend from the URL: ``sqlite:///path/to.db`` (embedded, the
default; parent directories are created; ``?synchronous=full`` makes each commit survive a
power cut too, not only a process crash) or ``postgresql://...`` (several replicas share one
database). Both satisfy the :class:`Store` protocol and the same contract tests.

The PostgreSQL backend (psycopg, ~60 ms to import) is loaded only when a URL asks for it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, cast
from urllib.parse import parse_qs, urlsplit

from kai_bridge.errors import StoreError
from kai_bridge.store.base import ChatRecord, Store, redact_url
from kai_bridge.store.sqlite import DEFAULT_SYNCHRONOUS, SQLiteStore, Synchronous

if TYPE_CHECKING:
    from kai_bridge.store.postgres import PostgresStore

__all__ = ["ChatRecord", "PostgresStore", "SQLiteStore", "Store", "connect_store", "open_store", "redact_url"]

_SQLITE_PREFIX = "sqlite:///"


async def connect_store(
    url: str,
    *,
    clock: Callable[[], float] = time.time,
    connect_timeout: float = 5.0,
) -> Store:
    """Open the store ``url`` names; the caller must ``await store.close()``. Raises StoreError."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        scheme = ""
    if scheme == "sqlite":
        if not url.startswith(_SQLITE_PREFIX) or len(url) == len(_SQLITE_PREFIX):
            raise StoreError(
                f"invalid SQLite store URL {redact_url(url)!r}: use sqlite:///relative/path.db, "
                "sqlite:////absolute/path.db or sqlite:///:memory:"
            )
        path, _, query = url[len(_SQLITE_PREFIX) :].partition("?")
        synchronous = parse_qs(query).get("synchronous", [DEFAULT_SYNCHRONOUS])[-1].lower()
        if synchronous not in ("normal", "full"):
            raise StoreError(f"invalid SQLite store URL: synchronous must be normal or full, not {synchronous!r}")
        return await SQLiteStore.open(
            path=path, clock=clock, busy_timeout=connect_timeout, synchronous=cast(Synchronous, synchronous)
        )
    if scheme in ("postgresql", "postgres"):
        from kai_bridge.store.postgres import PostgresStore

        return await PostgresStore.open(url=url, clock=clock, connect_timeout=connect_timeout)
    # Only the scheme is echoed: a URL we cannot parse is one we cannot safely redact.
    what = f"scheme {scheme!r}" if scheme else "(no scheme)"
    raise StoreError(f"unsupported store URL {what}: use sqlite:///path/to.db or postgresql://user@host/db")


@asynccontextmanager
async def open_store(
    url: str,
    *,
    clock: Callable[[], float] = time.time,
    connect_timeout: float = 5.0,
) -> AsyncIterator[Store]:
    """``async with open_store(url) as store:`` — opened, migrated, and closed on exit."""
    store = await connect_store(url, clock=clock, connect_timeout=connect_timeout)
    try:
        yield store
    finally:
        await store.close()


def __getattr__(name: str) -> object:
    if name == "PostgresStore":
        from kai_bridge.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'kai_bridge.store' has no attribute {name!r}")
