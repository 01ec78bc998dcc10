"""Fixtures for the webhook tests."""

from __future__ import annotations

# The PostgreSQL fixtures of the store tests (a schema of its own per test), for the replica tests.
from tests.store.conftest import pg_base_url, pg_schema, pg_url

__all__ = ["pg_base_url", "pg_schema", "pg_url"]
