"""What every state store offers: the record types, the ``Store`` protocol, and URL helpers.

The bridge keeps state that must outlive a process and be shared by replicas: which Coze
conversation belongs to a (user, bot) pair, the outcome of each chat, and the webhook inbox
(every acknowledged callback, deduplicated, with its dispatch state) plus what the inbox's
handlers derived from it (per-bot state, conversation events). Both backends (embedded
SQLite, shared PostgreSQL) implement the same protocol and pass the same contract tests, so
the rest of the package never knows which one it talks to.

The inbox is worked through *leases*: :meth:`Store.claim_events` hands each due event to
exactly one owner until ``lease`` seconds pass (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so
replicas never claim the same row; SQLite: one writer at a time). The owner finishes it
(:meth:`Store.finish_event`, fenced by owner), renews its leases while it works, or dies:
then the lease runs out and the event is due again. For a ``processing`` event ``due_at``
is when its lease expires.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from kai_bridge.urls import redact_url

__all__ = [
    "CLAIMABLE_STATUSES",
    "EVENT_STATUSES",
    "LEASE_DELETE",
    "LEASE_UPSERT",
    "SAVE_CHAT_GUARD",
    "BotState",
    "ChatRecord",
    "ConversationEvent",
    "EventSummary",
    "InboxEvent",
    "InsertResult",
    "NewEvent",
    "Store",
    "process_owner",
    "redact_url",
    "storable",
]

#: Every status an inbox event can have. ``pending``: not yet tried; ``processing``: leased
#: to a dispatcher; ``retrying``: failed, due again at ``due_at``; ``done``; ``dead``: gave up
#: (after the last attempt, or an error no retry can fix), ``last_error`` says why.
EVENT_STATUSES: Final = ("pending", "processing", "retrying", "done", "dead")
CLAIMABLE_STATUSES: Final = ("pending", "retrying", "processing")

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


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A webhook event as received, before the store has it. ``body`` is the raw JSON text."""

    id: str
    dedup_key: str
    event_type: str
    source: str  # how it came in: "coze" (signed) or "token" (Bearer)
    body: str
    received_at: float


@dataclass(frozen=True, slots=True)
class InsertResult:
    """Where an inserted event lives: its own id, or the id of the earlier event it duplicates."""

    id: str
    duplicate: bool


@dataclass(frozen=True, slots=True)
class EventSummary:
    """An inbox event without its body (lists)."""

    id: str
    dedup_key: str
    event_type: str
    source: str
    status: str
    attempts: int
    received_at: float
    due_at: float
    last_error: str | None
    updated_at: float


@dataclass(frozen=True, slots=True)
class InboxEvent:
    """An inbox event in full. ``result`` is the handlers' outcome as JSON text (None until tried)."""

    id: str
    dedup_key: str
    event_type: str
    source: str
    body: str
    status: str
    attempts: int
    received_at: float
    due_at: float
    lease_owner: str | None
    last_error: str | None
    result: str | None
    updated_at: float

    def summary(self) -> EventSummary:
        return EventSummary(
            id=self.id,
            dedup_key=self.dedup_key,
            event_type=self.event_type,
            source=self.source,
            status=self.status,
            attempts=self.attempts,
            received_at=self.received_at,
            due_at=self.due_at,
            last_error=self.last_error,
            updated_at=self.updated_at,
        )


@dataclass(frozen=True, slots=True)
class BotState:
    """What the last bot event said about a bot. ``changed_at``: the event's own time (epoch seconds)."""

    bot_id: str
    state: str  # "published" | "unpublished" | "deleted"
    event_type: str
    event_id: str  # the inbox event that said so
    bot_name: str | None
    connector_id: str | None
    changed_at: float


@dataclass(frozen=True, slots=True)
class ConversationEvent:
    """An event recorded against a conversation. ``data`` is the event's data as JSON text."""

    conversation_id: str
    event_id: str
    event_type: str
    message: str | None
    data: str
    received_at: float
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
CONVERSATION_OWNERS = (
    "SELECT user_id FROM kb_conversations WHERE conversation_id = {p} "
    "UNION SELECT user_id FROM kb_chats WHERE conversation_id = {p} ORDER BY 1 LIMIT 100"
)


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

    async def conversation_owners(self, *, conversation_id: str) -> list[str]:
        """The user keys this conversation is (or was) known under: current for them, or chatted in."""
        ...

    async def acquire_lease(self, *, name: str, owner: str, ttl: float) -> bool:
        """Take (or, for the same ``owner``, extend) the lease ``name`` for ``ttl`` seconds.

        True when ``owner`` now holds it; False while another owner holds an unexpired one.
        A holder that dies simply lets its lease expire.
        """
        ...

    async def release_lease(self, *, name: str, owner: str) -> None:
        """Give up the lease if ``owner`` holds it (no error otherwise)."""
        ...

    # ---- the webhook inbox ---------------------------------------------------------------
    async def insert_event(self, event: NewEvent) -> InsertResult:
        """Store ``event`` once per ``dedup_key``; a second one is reported as a duplicate of the first.

        Returns only once the event is durable. Concurrent calls are committed together.
        """
        ...

    async def claim_events(self, *, owner: str, limit: int, lease: float) -> list[InboxEvent]:
        """Lease up to ``limit`` due events (oldest due first) to ``owner`` for ``lease`` seconds.

        Due: ``pending``/``retrying`` whose ``due_at`` has passed, or ``processing`` whose lease
        expired (its owner died). Claiming counts an attempt.
        """
        ...

    async def renew_leases(self, *, owner: str, lease: float) -> int:
        """Extend every lease ``owner`` holds to ``lease`` seconds from now; returns how many."""
        ...

    async def finish_event(
        self,
        *,
        event_id: str,
        owner: str,
        status: str,
        result: str | None,
        error: str | None,
        due_at: float | None = None,
    ) -> bool:
        """Record the outcome of a claimed event (``done``, ``retrying`` at ``due_at``, or ``dead``).

        False when ``owner`` no longer holds the lease (it expired and another owner took it):
        the outcome is then dropped.
        """
        ...

    async def release_events(self, *, owner: str) -> int:
        """Give back every event ``owner`` holds, due now, its attempt not counted; returns how many."""
        ...

    async def get_event(self, *, event_id: str) -> InboxEvent | None: ...

    async def list_events(self, *, status: str | None = None, limit: int = 50) -> list[EventSummary]:
        """The newest ``limit`` events (optionally of one status), newest first."""
        ...

    async def count_events(self) -> dict[str, int]:
        """How many events there are of each status (statuses with none are left out)."""
        ...

    async def replay_event(self, *, event_id: str) -> bool:
        """Make an event pending again (attempts, error and result cleared).

        False when there is no such event or it is being processed under a live lease.
        """
        ...

    async def purge_events(self, *, before: float) -> int:
        """Delete ``done`` and ``dead`` events received before ``before``; returns how many."""
        ...

    # ---- what the inbox's handlers keep ----------------------------------------------------
    async def set_bot_state(self, state: BotState) -> bool:
        """Record a bot's state unless a newer one (later ``changed_at``) is already stored."""
        ...

    async def get_bot_state(self, *, bot_id: str) -> BotState | None: ...

    async def list_bot_states(self) -> list[BotState]: ...

    async def add_conversation_event(self, event: ConversationEvent) -> None:
        """Record an event against its conversation (once per (conversation_id, event_id))."""
        ...

    async def list_conversation_events(self, *, conversation_id: str, limit: int = 50) -> list[ConversationEvent]:
        """The conversation's newest ``limit`` events, oldest first."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def process_owner() -> str:
    """A lease owner name unique to this process: host, pid and a random part (pids repeat across hosts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


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


# ---- inbox rows, shared by both backends; column orders as in the SELECTs ----------------

INBOX_COLUMNS: Final = (
    "id, dedup_key, event_type, source, body, status, attempts, received_at, due_at, "
    "lease_owner, last_error, result, updated_at"
)
SUMMARY_COLUMNS: Final = (
    "id, dedup_key, event_type, source, status, attempts, received_at, due_at, last_error, updated_at"
)
BOT_STATE_COLUMNS: Final = "bot_id, state, event_type, event_id, bot_name, connector_id, changed_at"
CONVERSATION_EVENT_COLUMNS: Final = "conversation_id, event_id, event_type, message, data, received_at"


def new_event_row(event: NewEvent, *, now: float) -> tuple[object, ...]:
    """Parameters of the inbox INSERT: (id, dedup_key, event_type, source, body, received_at, due_at, updated_at)."""
    return (
        storable(event.id),
        storable(event.dedup_key),
        storable(event.event_type),
        storable(event.source),
        storable(event.body),
        float(event.received_at),
        float(event.received_at),
        float(now),
    )


def row_to_event(row: tuple[object, ...]) -> InboxEvent:
    (id_, dedup_key, event_type, source, body, status, attempts, received_at, due_at, owner, error, result,
     updated_at) = row
    return InboxEvent(
        id=str(id_),
        dedup_key=str(dedup_key),
        event_type=str(event_type),
        source=str(source),
        body=str(body),
        status=str(status),
        attempts=int(str(attempts)),
        received_at=float(str(received_at)),
        due_at=float(str(due_at)),
        lease_owner=None if owner is None else str(owner),
        last_error=None if error is None else str(error),
        result=None if result is None else str(result),
        updated_at=float(str(updated_at)),
    )


def row_to_summary(row: tuple[object, ...]) -> EventSummary:
    id_, dedup_key, event_type, source, status, attempts, received_at, due_at, error, updated_at = row
    return EventSummary(
        id=str(id_),
        dedup_key=str(dedup_key),
        event_type=str(event_type),
        source=str(source),
        status=str(status),
        attempts=int(str(attempts)),
        received_at=float(str(received_at)),
        due_at=float(str(due_at)),
        last_error=None if error is None else str(error),
        updated_at=float(str(updated_at)),
    )


def bot_state_row(state: BotState) -> tuple[object, ...]:
    return (
        storable(state.bot_id),
        storable(state.state),
        storable(state.event_type),
        storable(state.event_id),
        None if state.bot_name is None else storable(state.bot_name),
        None if state.connector_id is None else storable(state.connector_id),
        float(state.changed_at),
    )


def row_to_bot_state(row: tuple[object, ...]) -> BotState:
    bot_id, state, event_type, event_id, bot_name, connector_id, changed_at = row
    return BotState(
        bot_id=str(bot_id),
        state=str(state),
        event_type=str(event_type),
        event_id=str(event_id),
        bot_name=None if bot_name is None else str(bot_name),
        connector_id=None if connector_id is None else str(connector_id),
        changed_at=float(str(changed_at)),
    )


def conversation_event_row(event: ConversationEvent) -> tuple[object, ...]:
    return (
        storable(event.conversation_id),
        storable(event.event_id),
        storable(event.event_type),
        None if event.message is None else storable(event.message),
        storable(event.data),
        float(event.received_at),
    )


def row_to_conversation_event(row: tuple[object, ...]) -> ConversationEvent:
    conversation_id, event_id, event_type, message, data, received_at = row
    return ConversationEvent(
        conversation_id=str(conversation_id),
        event_id=str(event_id),
        event_type=str(event_type),
        message=None if message is None else str(message),
        data=str(data),
        received_at=float(str(received_at)),
    )


def check_status(status: str | None) -> None:
    """Refuse a status that is not one of :data:`EVENT_STATUSES` (a caller's mistake, said plainly)."""
    if status is not None and status not in EVENT_STATUSES:
        raise ValueError(f"unknown event status {status!r}: use one of {', '.join(EVENT_STATUSES)}")
