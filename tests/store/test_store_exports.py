"""The store's public surface is deliberate: this pins it."""

from __future__ import annotations

import kai_bridge.store


def test_the_store_package_exports_exactly_its_public_names() -> None:
    assert kai_bridge.store.__all__ == [
        "ChatRecord",
        "PoolOptions",
        "PostgresStore",
        "SQLiteStore",
        "Store",
        "connect_store",
        "open_store",
        "redact_url",
    ]
