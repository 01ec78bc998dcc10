"""The store's schema as an ordered list of migrations, shared by SQLite and PostgreSQL.

A database records the versions it has applied in ``kb_schema_version``; opening a store applies
the missing ones in one transaction (PostgreSQL: under an advisory lock, so replicas starting
together do not race). To change the schema, append a :class:`Migration` — never edit one that
has shipped. The SQL is kept to the subset both databases read the same way (``TEXT``,
``INTEGER``, ``DOUBLE PRECISION``, ``ON CONFLICT``). Tables carry a ``kb_`` prefix so a shared
PostgreSQL database (or schema) can hold them next to other applications' tables.

Version 2 is the webhook inbox ``kb_inbox`` (one row per acknowledged event, unique per
``dedup_key``; the partial index serves the dispatcher's "what is due" claim) and what its
handlers keep: ``kb_bot_states`` (newest bot event per bot) and ``kb_conversation_events``.
It landed after version 3 (leases): a database that has 1 and 3 gets 2 when it is next opened.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "VERSION_TABLE_DDL", "Migration"]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


VERSION_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS kb_schema_version (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        description="conversations and chats",
        statements=(
            """
            CREATE TABLE kb_conversations (
                user_id TEXT NOT NULL,
                bot_id TEXT NOT NULL,
                conversation_id TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (user_id, bot_id)
            )
            """,
            """
            CREATE TABLE kb_chats (
                chat_id TEXT PRIMARY KEY,
                conversation_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                bot_id TEXT NOT NULL,
                status TEXT NOT NULL,
                answer TEXT NOT NULL,
                usage TEXT,
                error TEXT,
                updated_at DOUBLE PRECISION NOT NULL
            )
            """,
            "CREATE INDEX kb_chats_conversation ON kb_chats (conversation_id)",
        ),
    ),
    Migration(
        version=2,
        description="webhook inbox, bot states, conversation events",
        statements=(
            """
            CREATE TABLE kb_inbox (
                id TEXT PRIMARY KEY,
                dedup_key TEXT NOT NULL UNIQUE,
                event_type TEXT NOT NULL,
                source TEXT NOT NULL,
                body TEXT NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                received_at DOUBLE PRECISION NOT NULL,
                due_at DOUBLE PRECISION NOT NULL,
                lease_owner TEXT,
                last_error TEXT,
                result TEXT,
                updated_at DOUBLE PRECISION NOT NULL
            )
            """,
            "CREATE INDEX kb_inbox_due ON kb_inbox (due_at) WHERE status IN ('pending', 'retrying', 'processing')",
            "CREATE INDEX kb_inbox_received ON kb_inbox (received_at)",
            """
            CREATE TABLE kb_bot_states (
                bot_id TEXT PRIMARY KEY,
                state TEXT NOT NULL,
                event_type TEXT NOT NULL,
                event_id TEXT NOT NULL,
                bot_name TEXT,
                connector_id TEXT,
                changed_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )
            """,
            """
            CREATE TABLE kb_conversation_events (
                conversation_id TEXT NOT NULL,
                event_id TEXT NOT NULL,
                event_type TEXT NOT NULL,
                message TEXT,
                data TEXT NOT NULL,
                received_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (conversation_id, event_id)
            )
            """,
        ),
    ),
    Migration(
        version=3,
        description="leases (one holder at a time across replicas, with expiry)",
        statements=(
            """
            CREATE TABLE kb_leases (
                name TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL
            )
            """,
        ),
    ),
    Migration(
        version=4,
        description="find who a conversation belongs to (callers may touch only their own)",
        statements=("CREATE INDEX kb_conversations_by_id ON kb_conversations (conversation_id)",),
    ),
)

SCHEMA_VERSION = max(m.version for m in MIGRATIONS)


def pending(applied: set[int]) -> list[Migration]:
    """The migrations not yet in ``applied``, in order."""
    return [m for m in MIGRATIONS if m.version not in applied]


def too_new_message(found: int) -> str:
    return (
        f"the store's schema is version {found} but this kai-bridge knows versions up to {SCHEMA_VERSION}: "
        "a newer kai-bridge has migrated this database; upgrade kai-bridge (or point store_url elsewhere)"
    )
