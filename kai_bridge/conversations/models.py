"""What the conversation service returns; pydantic, so the models double as the tools' output schemas."""

from __future__ import annotations

from pydantic import BaseModel, Field

from kai_bridge.coze import Chat, Message
from kai_bridge.store import ChatRecord

__all__ = [
    "ChatResult",
    "ConversationInfo",
    "ConversationMessage",
    "MessageList",
    "SendResult",
    "UsageInfo",
    "chat_result",
    "message_out",
    "usage_of",
]


class UsageInfo(BaseModel):
    token_count: int = 0
    output_count: int = 0
    input_count: int = 0


class ConversationInfo(BaseModel):
    conversation_id: str = Field(description="the Coze conversation id; pass it to send_message")
    bot_id: str
    user_id: str = Field(description="whose current conversation this now is")


class SendResult(BaseModel):
    answer: str = Field(description="the bot's whole answer")
    conversation_id: str
    chat_id: str = Field(description="fetch this answer again later with get_chat_result")
    bot_id: str
    usage: UsageInfo | None = None
    rounds: int = Field(description="local plugin rounds resolved (requires_action) during this chat")


class ConversationMessage(BaseModel):
    id: str | None
    role: str
    type: str
    content: str
    content_type: str
    chat_id: str | None = None
    created_at: int | None = None


class MessageList(BaseModel):
    conversation_id: str
    messages: list[ConversationMessage]
    first_id: str | None = Field(default=None, description="pass as before_id to page further back")
    last_id: str | None = Field(default=None, description="pass as after_id to page forward")
    has_more: bool = False


class ChatResult(BaseModel):
    chat_id: str
    conversation_id: str
    bot_id: str
    status: str = Field(description="in_progress, requires_action, completed, failed or canceled")
    answer: str = Field(description="the whole answer when completed; what had arrived otherwise")
    usage: UsageInfo | None = None
    error: str | None = None
    updated_at: float = Field(description="Unix time of the last change")


def usage_of(chat: Chat | None) -> UsageInfo | None:
    if chat is None or chat.usage is None:
        return None
    return UsageInfo(**chat.usage.model_dump())


def message_out(message: Message) -> ConversationMessage:
    return ConversationMessage(
        id=message.id,
        role=str(message.role),
        type=str(message.type),
        content=message.content,
        content_type=str(message.content_type),
        chat_id=message.chat_id,
        created_at=message.created_at,
    )


def chat_result(record: ChatRecord) -> ChatResult:
    return ChatResult(
        chat_id=record.chat_id,
        conversation_id=record.conversation_id,
        bot_id=record.bot_id,
        status=record.status,
        answer=record.answer,
        usage=UsageInfo(**record.usage) if record.usage else None,
        error=record.error,
        updated_at=record.updated_at,
    )
