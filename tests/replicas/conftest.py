"""Fixtures for the replica tests: the store tests' PostgreSQL schema per test (fails, not skips, under CI)."""

from __future__ import annotations

from tests.store.conftest import pg_base_url, pg_schema, pg_url

__all__ = ["pg_base_url", "pg_schema", "pg_url"]
