"""The SQL of the webhook inbox and its handlers' tables, written once for both backends.

Statements use ``?`` placeholders (SQLite's); :func:`pg` turns them into ``%s`` for psycopg
(no statement here contains a literal ``?``). The claim is the only statement that differs:
PostgreSQL locks the rows it picks with ``FOR UPDATE SKIP LOCKED`` so replicas claiming at
the same moment skip each other's rows instead of waiting or double-claiming; SQLite runs it
inside ``BEGIN IMMEDIATE``, where only one writer exists at a time.
"""

# Every f-string below joins constant column lists and clauses; values are always parameters.
# ruff: noqa: S608

from __future__ import annotations

from typing import Final

from kai_bridge.store.base import (
    BOT_STATE_COLUMNS,
    CONVERSATION_EVENT_COLUMNS,
    INBOX_COLUMNS,
    SUMMARY_COLUMNS,
    check_status,
    storable,
)

__all__ = ["claim_sql", "finish_params", "pg"]

INSERT_EVENT: Final = (
    "INSERT INTO kb_inbox (id, dedup_key, event_type, source, body, status, attempts, received_at, due_at, "
    "updated_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?) ON CONFLICT (dedup_key) DO NOTHING"
)
FIND_BY_DEDUP: Final = "SELECT id FROM kb_inbox WHERE dedup_key = ?"
_DUE: Final = "status IN ('pending', 'retrying', 'processing') AND due_at <= ?"


def claim_sql(*, skip_locked: bool) -> str:
    """Lease the due events: (owner, lease_until, now, now, limit) -> the claimed rows."""
    lock = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
    return (
        "UPDATE kb_inbox SET status = 'processing', lease_owner = ?, due_at = ?, attempts = attempts + 1, "
        f"updated_at = ? WHERE id IN (SELECT id FROM kb_inbox WHERE {_DUE} ORDER BY due_at, id LIMIT ?{lock}) "
        f"RETURNING {INBOX_COLUMNS}"
    )


RENEW: Final = "UPDATE kb_inbox SET due_at = ?, updated_at = ? WHERE status = 'processing' AND lease_owner = ?"
FINISH: Final = (
    "UPDATE kb_inbox SET status = ?, due_at = ?, lease_owner = NULL, last_error = ?, result = ?, updated_at = ? "
    "WHERE id = ? AND status = 'processing' AND lease_owner = ?"
)


def finish_params(
    *, event_id: str, owner: str, status: str, result: str | None, error: str | None, due_at: float | None, now: float
) -> tuple[object, ...]:
    """The parameters of :data:`FINISH`, in its order; refuses an unknown ``status``."""
    check_status(status)
    return (
        status,
        now if due_at is None else float(due_at),
        None if error is None else storable(error),
        None if result is None else storable(result),
        now,
        storable(event_id),
        storable(owner),
    )


# The SET expressions read the row as it was: attempts > 1 means an earlier attempt happened.
RELEASE: Final = (
    "UPDATE kb_inbox SET status = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END, "
    "attempts = attempts - 1, due_at = ?, lease_owner = NULL, updated_at = ? "
    "WHERE status = 'processing' AND lease_owner = ?"
)
GET_EVENT: Final = f"SELECT {INBOX_COLUMNS} FROM kb_inbox WHERE id = ?"
LIST_EVENTS: Final = f"SELECT {SUMMARY_COLUMNS} FROM kb_inbox ORDER BY received_at DESC, id DESC LIMIT ?"
LIST_EVENTS_OF_STATUS: Final = (
    f"SELECT {SUMMARY_COLUMNS} FROM kb_inbox WHERE status = ? ORDER BY received_at DESC, id DESC LIMIT ?"
)
COUNT_EVENTS: Final = "SELECT status, COUNT(*) FROM kb_inbox GROUP BY status"
# A processing event whose lease ran out (its owner died) may be replayed; a live lease may not.
REPLAY: Final = (
    "UPDATE kb_inbox SET status = 'pending', attempts = 0, due_at = ?, lease_owner = NULL, last_error = NULL, "
    "result = NULL, updated_at = ? WHERE id = ? AND (status <> 'processing' OR due_at <= ?)"
)
PURGE: Final = "DELETE FROM kb_inbox WHERE received_at < ? AND status IN ('done', 'dead')"

SET_BOT_STATE: Final = (
    "INSERT INTO kb_bot_states (bot_id, state, event_type, event_id, bot_name, connector_id, changed_at, "
    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (bot_id) DO UPDATE SET state = excluded.state, "
    "event_type = excluded.event_type, event_id = excluded.event_id, "
    "bot_name = COALESCE(excluded.bot_name, kb_bot_states.bot_name), "
    "connector_id = COALESCE(excluded.connector_id, kb_bot_states.connector_id), "
    "changed_at = excluded.changed_at, updated_at = excluded.updated_at "
    "WHERE excluded.changed_at >= kb_bot_states.changed_at"
)
GET_BOT_STATE: Final = f"SELECT {BOT_STATE_COLUMNS} FROM kb_bot_states WHERE bot_id = ?"
LIST_BOT_STATES: Final = f"SELECT {BOT_STATE_COLUMNS} FROM kb_bot_states ORDER BY bot_id"

ADD_CONVERSATION_EVENT: Final = (
    f"INSERT INTO kb_conversation_events ({CONVERSATION_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (conversation_id, event_id) DO NOTHING"
)
LIST_CONVERSATION_EVENTS: Final = (
    f"SELECT {CONVERSATION_EVENT_COLUMNS} FROM (SELECT {CONVERSATION_EVENT_COLUMNS} FROM kb_conversation_events "
    "WHERE conversation_id = ? ORDER BY received_at DESC, event_id DESC LIMIT ?) AS recent "
    "ORDER BY received_at, event_id"
)


def pg(sql: str) -> str:
    """``sql`` with psycopg's ``%s`` placeholders."""
    return sql.replace("?", "%s")
