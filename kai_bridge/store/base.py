"""What every state store offers: the record types, the ``Store`` protocol, and URL helpers.

The bridge keeps two kinds of state that must outlive a process and be shared by replicas:
which Coze conversation belongs to a (user, bot) pair, and the outcome of each chat. Both
backends (embedded SQLite, shared PostgreSQL) implement the same protocol and pass the same
contract tests, so the rest of the package never knows which one it talks to.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from kai_bridge.urls import redact_url

__all__ = ["LEASE_DELETE", "LEASE_UPSERT", "SAVE_CHAT_GUARD", "ChatRecord", "Store", "redact_url", "storable"]

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class ChatRecord:
    """The last known state of one Coze chat, as the bridge saw it. ``updated_at`` is epoch seconds.

    Text is stored as both databases can hold it: a NUL character or a lone surrogate (which
    ``json.loads`` lets through from a ``\\ud800`` escape) is read back as U+FFFD.
    """

    chat_id: str
    conversation_id: str
    user_id: str
    bot_id: str
    status: str
    answer: str
    usage: dict[str, int] | None
    error: str | None
    updated_at: float


def _rank(column: str) -> str:
    return (
        f"(CASE {column} WHEN 'created' THEN 0 WHEN 'in_progress' THEN 1 WHEN 'requires_action' THEN 1 "
        "ELSE 2 END)"
    )


#: The ``WHERE`` of ``save_chat``'s upsert (both backends): a write never moves a chat back
#: (a running state over a finished one), and among states of the same rank the later
#: ``updated_at`` wins. Replicas and late writers (a refresh racing the stream's end) can then
#: write in any order and the record still ends at the newest, most advanced state.
SAVE_CHAT_GUARD = (
    f"WHERE {_rank('excluded.status')} > {_rank('kb_chats.status')} "
    f"OR ({_rank('excluded.status')} = {_rank('kb_chats.status')} "
    "AND excluded.updated_at >= kb_chats.updated_at)"
)


#: ``acquire_lease``'s upsert, both backends (placeholders aside): it takes a free or expired
#: lease, or extends one the same owner holds, and RETURNING yields a row only when it did.
LEASE_UPSERT = (
    "INSERT INTO kb_leases (name, owner, expires_at) VALUES ({p}, {p}, {p}) "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
    "WHERE kb_leases.expires_at <= {p} OR kb_leases.owner = excluded.owner RETURNING owner"
)
LEASE_DELETE = "DELETE FROM kb_leases WHERE name = {p} AND owner = {p}"


@runtime_checkable
class Store(Protocol):
    """The state store. All methods are safe to call concurrently from one event loop.

    Every method raises :class:`~kai_bridge.errors.StoreError` (with a message free of
    credentials) when the database cannot do what was asked. A write that returned is durable:
    it survives a crash of the process (kill -9).
    """

    kind: str  # "sqlite" | "postgresql"
    target: str  # where the data lives, credentials removed (for logs and diagnostics)

    async def get_conversation(self, *, user_id: str, bot_id: str) -> str | None: ...

    async def set_conversation(self, *, user_id: str, bot_id: str, conversation_id: str) -> None: ...

    async def delete_conversation(self, *, user_id: str, bot_id: str) -> None: ...

    async def save_chat(self, record: ChatRecord) -> None:
        """Insert or update the chat; an update that would move it back is ignored (see SAVE_CHAT_GUARD)."""
        ...

    async def get_chat(self, *, chat_id: str) -> ChatRecord | None: ...

    async def acquire_lease(self, *, name: str, owner: str, ttl: float) -> bool:
        """Take (or, for the same ``owner``, extend) the lease ``name`` for ``ttl`` seconds.

        True when ``owner`` now holds it; False while another owner holds an unexpired one.
        A holder that dies simply lets its lease expire.
        """
        ...

    async def release_lease(self, *, name: str, owner: str) -> None:
        """Give up the lease if ``owner`` holds it (no error otherwise)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def storable(text: str) -> str:
    """``text`` as SQLite and PostgreSQL can both store it: NUL and lone surrogates become U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text) if _UNSTORABLE.search(text) else text


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


# ---- row <-> record, shared by both backends; column order as in the kb_chats SELECTs -------

ChatRow = tuple[str, str, str, str, str, str, str | None, str | None, float]


def chat_to_row(record: ChatRecord) -> ChatRow:
    usage = None if record.usage is None else json.dumps(record.usage, separators=(",", ":"), sort_keys=True)
    return (
        storable(record.chat_id),
        storable(record.conversation_id),
        storable(record.user_id),
        storable(record.bot_id),
        storable(record.status),
        storable(record.answer),
        usage,
        None if record.error is None else storable(record.error),
        float(record.updated_at),
    )


def row_to_chat(row: ChatRow) -> ChatRecord:
    chat_id, conversation_id, user_id, bot_id, status, answer, usage, error, updated_at = row
    return ChatRecord(
        chat_id=chat_id,
        conversation_id=conversation_id,
        user_id=user_id,
        bot_id=bot_id,
        status=status,
        answer=answer,
        usage=None if usage is None else {str(k): int(v) for k, v in json.loads(usage).items()},
        error=error,
        updated_at=float(updated_at),
    )
