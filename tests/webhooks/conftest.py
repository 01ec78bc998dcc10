"""Fixtures for the webhook tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo the logging set-up an in-process ``kai_bridge.cli.main`` call makes."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


# The PostgreSQL fixtures of the store tests (a schema of its own per test), for the replica tests.
from tests.store.conftest import pg_base_url, pg_schema, pg_url  # noqa: E402

__all__ = ["pg_base_url", "pg_schema", "pg_url", "restore_logging"]
