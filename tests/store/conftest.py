"""Fixtures for the store tests: a fresh SQLite file or a fresh PostgreSQL schema per test.

Without a reachable server the PostgreSQL tests skip on a developer's machine, but fail under
CI (``CI`` set, as ``.ci/run`` has it): there ``scripts/dev test`` starts the server first, so
a skip would hide a broken set-up (the inspector test does the same).
"""

from __future__ import annotations

import getpass
import os
import uuid
from collections.abc import Iterator
from typing import NoReturn
from urllib.parse import quote

import psycopg
import pytest

PG_HOST = "127.0.0.1:5432"
PG_DB = "test"


def _find_pg_user() -> tuple[str | None, str]:
    """The first user the local server accepts (trust auth), or None and why not."""
    reasons = []
    for user in ("postgres", getpass.getuser()):
        try:
            with psycopg.connect(f"postgresql://{user}@{PG_HOST}/{PG_DB}", connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return user, ""
        except psycopg.Error as exc:
            reasons.append(f"{user}: {str(exc).strip().splitlines()[0]}")
    return None, "; ".join(reasons)


def unreachable(why: str) -> NoReturn:
    """Skip the PostgreSQL tests, or fail them under CI, saying why the server is not usable."""
    message = f"PostgreSQL at {PG_HOST} db {PG_DB!r} not reachable ({why})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; under CI these tests must run: scripts/dev test starts the server", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_base_url() -> str:
    """``postgresql://USER@127.0.0.1:5432/test``; skips (fails under CI) when the server is not reachable."""
    user, why = _find_pg_user()
    if user is None:
        unreachable(why)
    return f"postgresql://{user}@{PG_HOST}/{PG_DB}"


@pytest.fixture
def pg_schema(pg_base_url: str) -> Iterator[str]:
    """A schema of its own for one test, dropped afterwards."""
    schema = f"kb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_base_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(pg_base_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def pg_url(pg_base_url: str, pg_schema: str) -> str:
    """A store URL whose tables land in the test's own schema (libpq ``options`` sets search_path)."""
    return f"{pg_base_url}?options={quote(f'-csearch_path={pg_schema}')}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),  # NORMAL: calls from the loop run inline
        pytest.param("sqlite-full", id="sqlite-full"),  # FULL: every call through the writer thread
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The same contract, once per backend (and per SQLite path)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('store') / 'nested' / 'kai-bridge.db'}"
    if request.param == "sqlite-full":
        return f"sqlite:///{tmp_path_factory.mktemp('store') / 'nested' / 'kai-bridge.db'}?synchronous=full"
    return str(request.getfixturevalue("pg_url"))
