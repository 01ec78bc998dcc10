"""Typed Coze objects: what the client sends and what it gets back.

The models are tolerant readers: unknown fields are ignored, ids that arrive as numbers
become strings (Coze ids are 19-digit numbers serialised as strings, and one stray int must
not break a chat), and every enum keeps values it has never seen instead of failing, so a
new Coze status or message type degrades to "unknown" rather than to an exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

__all__ = [
    "Bot",
    "BotPage",
    "Chat",
    "ChatEvent",
    "ChatEventError",
    "ChatEventType",
    "ChatPoll",
    "ChatRequest",
    "ChatStatus",
    "Conversation",
    "ConversationPage",
    "EnterMessage",
    "LastError",
    "Message",
    "MessageContentType",
    "MessagePage",
    "MessageRole",
    "MessageType",
    "RequiredAction",
    "Section",
    "ToolCall",
    "ToolCallFunction",
    "ToolOutput",
    "Usage",
    "User",
]


class _OpenEnum(StrEnum):
    """A str enum that accepts unknown values (as pseudo-members) instead of raising."""

    @classmethod
    def _missing_(cls, value: object) -> _OpenEnum | None:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = "UNKNOWN"
        member._value_ = value
        return member

    @property
    def is_known(self) -> bool:
        return self._value_ in type(self)._value2member_map_


class ChatStatus(_OpenEnum):
    CREATED = "created"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    REQUIRES_ACTION = "requires_action"
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        """Terminal per the docs: the chat will not move on by itself."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {ChatStatus.COMPLETED, ChatStatus.FAILED, ChatStatus.REQUIRES_ACTION, ChatStatus.CANCELED}
)


class MessageRole(_OpenEnum):
    USER = "user"
    ASSISTANT = "assistant"


class MessageType(_OpenEnum):
    QUESTION = "question"
    ANSWER = "answer"
    FUNCTION_CALL = "function_call"
    TOOL_OUTPUT = "tool_output"
    TOOL_RESPONSE = "tool_response"
    FOLLOW_UP = "follow_up"
    VERBOSE = "verbose"
    KNOWLEDGE = "knowledge"
    UNSET = ""


class MessageContentType(_OpenEnum):
    TEXT = "text"
    OBJECT_STRING = "object_string"
    CARD = "card"
    AUDIO = "audio"


class ChatEventType(_OpenEnum):
    """Every event of a chat stream (coze-protocol §4.5); others are kept as unknown."""

    CHAT_CREATED = "conversation.chat.created"
    CHAT_IN_PROGRESS = "conversation.chat.in_progress"
    CHAT_COMPLETED = "conversation.chat.completed"
    CHAT_FAILED = "conversation.chat.failed"
    CHAT_REQUIRES_ACTION = "conversation.chat.requires_action"
    MESSAGE_DELTA = "conversation.message.delta"
    MESSAGE_COMPLETED = "conversation.message.completed"
    AUDIO_DELTA = "conversation.audio.delta"
    ERROR = "error"
    DONE = "done"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, populate_by_name=True)


class LastError(_Model):
    code: int = 0
    msg: str = ""


class Usage(_Model):
    token_count: int = 0
    output_count: int = 0
    input_count: int = 0


class ToolCallFunction(_Model):
    name: str
    arguments: str = "{}"

    def parsed_arguments(self) -> dict[str, Any]:
        """The JSON arguments as a dict (``{}`` when empty); ValueError when not a JSON object."""
        if not self.arguments.strip():
            return {}
        value = json.loads(self.arguments)
        if not isinstance(value, dict):
            raise ValueError("tool call arguments are not a JSON object")
        return value


class ToolCall(_Model):
    id: str
    type: str = "function"
    function: ToolCallFunction


class _SubmitToolOutputs(_Model):
    tool_calls: list[ToolCall] = Field(default_factory=list)


class RequiredAction(_Model):
    type: str = "submit_tool_outputs"
    submit_tool_outputs: _SubmitToolOutputs | None = None

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self.submit_tool_outputs.tool_calls if self.submit_tool_outputs else []


class Chat(_Model):
    id: str
    conversation_id: str
    bot_id: str | None = None
    status: ChatStatus = ChatStatus.CREATED
    created_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    meta_data: dict[str, str] | None = None
    last_error: LastError | None = None
    required_action: RequiredAction | None = None
    usage: Usage | None = None
    section_id: str | None = None


class Message(_Model):
    id: str | None = None
    conversation_id: str | None = None
    bot_id: str | None = None
    chat_id: str | None = None
    section_id: str | None = None
    role: MessageRole = MessageRole.ASSISTANT
    type: MessageType = MessageType.UNSET
    content: str = ""
    content_type: MessageContentType = MessageContentType.TEXT
    meta_data: dict[str, str] | None = None
    created_at: int | None = None
    updated_at: int | None = None
    reasoning_content: str | None = None


class EnterMessage(_Model):
    """A message sent with a chat or a new conversation (``additional_messages``)."""

    role: MessageRole = MessageRole.USER
    content: str
    content_type: MessageContentType = MessageContentType.TEXT
    type: MessageType | None = None
    meta_data: dict[str, str] | None = None

    @classmethod
    def user(cls, content: str) -> EnterMessage:
        return cls(role=MessageRole.USER, type=MessageType.QUESTION, content=content)

    @classmethod
    def assistant(cls, content: str) -> EnterMessage:
        return cls(role=MessageRole.ASSISTANT, type=MessageType.ANSWER, content=content)

    def tagged(self, key: str, value: str) -> EnterMessage:
        """A copy with ``key: value`` added to its ``meta_data`` (Coze keeps and returns it)."""
        return self.model_copy(update={"meta_data": {**(self.meta_data or {}), key: value}})

    def wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRequest:
    """One chat turn as ``POST /v3/chat`` takes it; ``stream`` is the method's choice, not the request's.

    ``messages`` are the additional messages (the last is the query); ``conversation_id``
    continues a conversation (Coze creates one when it is None). ``send_key`` names the send
    across repeats (a webhook event dispatched again after a crash): the question's tag is made
    from it, and the conversation is searched for that tag before anything is sent, so a repeat
    follows the chat the first try started instead of starting another. It is not sent as such.
    """

    bot_id: str
    user_id: str
    messages: Sequence[EnterMessage] = ()
    conversation_id: str | None = None
    custom_variables: Mapping[str, str] | None = None
    meta_data: Mapping[str, str] | None = None
    auto_save_history: bool = True
    send_key: str | None = None

    def body(self, *, stream: bool) -> dict[str, Any]:
        """The JSON body (Coze rejects nulls in the optional maps, so they are left out)."""
        body: dict[str, Any] = {
            "bot_id": self.bot_id,
            "user_id": self.user_id,
            "additional_messages": [m.wire() for m in self.messages],
            "stream": stream,
            "auto_save_history": self.auto_save_history,
        }
        if self.custom_variables is not None:
            body["custom_variables"] = dict(self.custom_variables)
        if self.meta_data is not None:
            body["meta_data"] = dict(self.meta_data)
        return body


class ToolOutput(_Model):
    tool_call_id: str
    output: str


class Conversation(_Model):
    id: str
    name: str | None = None
    created_at: int | None = None
    updated_at: int | None = None
    meta_data: dict[str, str] | None = None
    last_section_id: str | None = None
    creator_id: str | None = None
    connector_id: str | None = None


class ConversationPage(_Model):
    items: list[Conversation] = Field(default_factory=list, validation_alias=AliasChoices("items", "conversations"))
    has_more: bool = False


class Section(_Model):
    id: str
    conversation_id: str | None = None


class MessagePage(_Model):
    items: list[Message] = Field(default_factory=list)
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool = False


class Bot(_Model):
    id: str = Field(validation_alias=AliasChoices("id", "bot_id"))
    name: str | None = None
    description: str | None = None
    icon_url: str | None = None
    is_published: bool | None = None
    updated_at: int | None = None
    owner_user_id: str | None = None
    plugin_info_list: list[dict[str, Any]] | None = None


class BotPage(_Model):
    items: list[Bot] = Field(default_factory=list)
    total: int = 0


class User(_Model):
    """``GET /v1/users/me``: the Coze user the access token (or PAT) belongs to."""

    user_id: str
    user_name: str = ""
    nick_name: str = ""
    avatar_url: str = ""


class ChatEventError(_Model):
    """The payload of a stream ``error`` event."""

    code: int = 0
    msg: str = ""


class ChatEvent(_Model):
    """One event of a chat stream, typed. Exactly the field matching the kind is set."""

    event: ChatEventType
    chat: Chat | None = None
    message: Message | None = None
    error: ChatEventError | None = None
    logid: str | None = None

    @property
    def is_chat_event(self) -> bool:
        return self.event.startswith("conversation.chat.")


class ChatPoll(_Model):
    chat: Chat
    messages: list[Message] = Field(default_factory=list)

    @property
    def answer(self) -> str:
        """The concatenated ``answer`` messages (what a person would call the reply)."""
        return "".join(m.content for m in self.messages if m.type == MessageType.ANSWER)
