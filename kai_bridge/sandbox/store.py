"""In-memory conversations, messages and chats of a sandbox, with Coze-shaped JSON views.

Bounded: beyond ``max_conversations`` the oldest conversation (and its chats) is forgotten, so a
long benchmark against the sandbox does not grow without limit.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kai_bridge.sandbox.wire import IdGenerator

__all__ = ["CONNECTOR_API", "RUNNING_STATUSES", "Chat", "Conversation", "Message", "Store"]

CONNECTOR_API = "1024"
RUNNING_STATUSES = frozenset({"created", "in_progress"})
VISIBLE_TYPES = frozenset({"question", "answer"})


@dataclass(slots=True)
class Message:
    id: str
    conversation_id: str
    bot_id: str
    chat_id: str
    section_id: str
    role: str
    type: str
    content: str
    content_type: str
    meta_data: dict[str, str]
    created_at: int
    updated_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "bot_id": self.bot_id,
            "chat_id": self.chat_id,
            "section_id": self.section_id,
            "role": self.role,
            "type": self.type,
            "content": self.content,
            "content_type": self.content_type,
            "meta_data": self.meta_data,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def delta_json(self, chunk: str) -> dict[str, Any]:
        """A ``conversation.message.delta`` payload: same id, an incremental content chunk."""
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "bot_id": self.bot_id,
            "chat_id": self.chat_id,
            "section_id": self.section_id,
            "role": self.role,
            "type": self.type,
            "content": chunk,
            "content_type": self.content_type,
        }


@dataclass(slots=True)
class Conversation:
    id: str
    bot_id: str
    name: str
    created_at: int
    updated_at: int
    meta_data: dict[str, str]
    last_section_id: str
    creator_id: str
    connector_id: str
    messages: list[Message] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    chat_ids: list[str] = field(default_factory=list)
    running_chat_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "meta_data": self.meta_data,
            "last_section_id": self.last_section_id,
            "creator_id": self.creator_id,
            "connector_id": self.connector_id,
        }
        if self.name:
            out["name"] = self.name
        if self.bot_id:
            out["bot_id"] = self.bot_id
        return out

    def add(self, message: Message) -> None:
        self.index[message.id] = len(self.messages)
        self.messages.append(message)

    def remove(self, message_id: str) -> Message | None:
        pos = self.index.pop(message_id, None)
        if pos is None:
            return None
        removed = self.messages.pop(pos)
        self.index = {m.id: i for i, m in enumerate(self.messages)}
        return removed


@dataclass(slots=True)
class Chat:
    id: str
    conversation_id: str
    bot_id: str
    user_id: str
    section_id: str
    created_at: int
    meta_data: dict[str, str]
    auto_save_history: bool
    question: str
    status: str = "created"
    completed_at: int | None = None
    failed_at: int | None = None
    last_error: dict[str, Any] | None = None
    required_action: dict[str, Any] | None = None
    usage: dict[str, int] | None = None
    messages: list[Message] = field(default_factory=list)
    pending_tool_calls: dict[str, str] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None

    def to_json(self, *, status: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "bot_id": self.bot_id,
            "created_at": self.created_at,
            "meta_data": self.meta_data,
            "last_error": self.last_error if self.last_error is not None else {"code": 0, "msg": ""},
            "status": status or self.status,
            "section_id": self.section_id,
        }
        if self.completed_at is not None:
            out["completed_at"] = self.completed_at
        if self.failed_at is not None:
            out["failed_at"] = self.failed_at
        if self.required_action is not None and (status or self.status) == "requires_action":
            out["required_action"] = self.required_action
        if self.usage is not None:
            out["usage"] = self.usage
        return out


class Store:
    """All mutable sandbox data; used only from the serving event loop (no locks needed)."""

    def __init__(self, *, ids: IdGenerator, clock: Callable[[], float], max_conversations: int) -> None:
        self.ids = ids
        self._clock = clock
        self._max = max_conversations
        self.conversations: OrderedDict[str, Conversation] = OrderedDict()
        self.chats: dict[str, Chat] = {}

    def now(self) -> int:
        return int(self._clock())

    def create_conversation(
        self,
        *,
        bot_id: str,
        creator_id: str,
        name: str = "",
        meta_data: dict[str, str] | None = None,
        connector_id: str = CONNECTOR_API,
    ) -> Conversation:
        now = self.now()
        conv = Conversation(
            id=self.ids.next(),
            bot_id=bot_id,
            name=name,
            created_at=now,
            updated_at=now,
            meta_data=dict(meta_data or {}),
            last_section_id=self.ids.next(),
            creator_id=creator_id,
            connector_id=connector_id,
        )
        self.conversations[conv.id] = conv
        while len(self.conversations) > self._max:
            _old_id, old = self.conversations.popitem(last=False)
            self._forget_chats(old)
        return conv

    def delete_conversation(self, conversation_id: str) -> Conversation | None:
        conv = self.conversations.pop(conversation_id, None)
        if conv is not None:
            self._forget_chats(conv)
        return conv

    def _forget_chats(self, conv: Conversation) -> None:
        for chat_id in conv.chat_ids:
            chat = self.chats.pop(chat_id, None)
            if chat is not None and chat.task is not None and not chat.task.done():
                chat.task.cancel()

    def new_message(
        self,
        *,
        conv: Conversation,
        chat_id: str,
        bot_id: str,
        role: str,
        type_: str,
        content: str,
        content_type: str = "text",
        meta_data: dict[str, str] | None = None,
    ) -> Message:
        now = self.now()
        return Message(
            id=self.ids.next(),
            conversation_id=conv.id,
            bot_id=bot_id,
            chat_id=chat_id,
            section_id=conv.last_section_id,
            role=role,
            type=type_,
            content=content,
            content_type=content_type,
            meta_data=dict(meta_data or {}),
            created_at=now,
            updated_at=now,
        )

    def create_chat(
        self,
        *,
        conv: Conversation,
        bot_id: str,
        user_id: str,
        meta_data: dict[str, str] | None,
        auto_save_history: bool,
        question: str,
    ) -> Chat:
        chat = Chat(
            id=self.ids.next(),
            conversation_id=conv.id,
            bot_id=bot_id,
            user_id=user_id,
            section_id=conv.last_section_id,
            created_at=self.now(),
            meta_data=dict(meta_data or {}),
            auto_save_history=auto_save_history,
            question=question,
        )
        self.chats[chat.id] = chat
        conv.chat_ids.append(chat.id)
        return chat

    def visible_messages(self, conv: Conversation, *, chat_id: str | None, middle: bool) -> list[Message]:
        return [
            m
            for m in conv.messages
            if (middle or m.type in VISIBLE_TYPES) and (chat_id is None or m.chat_id == chat_id)
        ]
