"""The Coze layer: an async client for the Coze Open API (JWT OAuth or PAT, chat v3, streams).

Build one with :meth:`CozeClient.from_settings` on the process's one ``httpx.AsyncClient``
(:func:`build_http_client`). Everything here is an independent implementation of the wire:
it shares nothing with :mod:`kai_bridge.sandbox`, so the two check each other.
"""

from kai_bridge.coze.auth import JWTAuth, PATAuth, TokenProvider, auth_from_settings
from kai_bridge.coze.breaker import BreakerState, CircuitBreaker
from kai_bridge.coze.client import CozeClient, build_http_client
from kai_bridge.coze.events import collect_answer
from kai_bridge.coze.models import (
    Bot,
    BotPage,
    Chat,
    ChatEvent,
    ChatEventError,
    ChatEventType,
    ChatPoll,
    ChatStatus,
    Conversation,
    ConversationPage,
    EnterMessage,
    LastError,
    Message,
    MessageContentType,
    MessagePage,
    MessageRole,
    MessageType,
    RequiredAction,
    Section,
    ToolCall,
    ToolOutput,
    Usage,
    User,
)
from kai_bridge.coze.retry import RetryPolicy

__all__ = [
    "Bot",
    "BotPage",
    "BreakerState",
    "Chat",
    "ChatEvent",
    "ChatEventError",
    "ChatEventType",
    "ChatPoll",
    "ChatStatus",
    "CircuitBreaker",
    "Conversation",
    "ConversationPage",
    "CozeClient",
    "EnterMessage",
    "JWTAuth",
    "LastError",
    "Message",
    "MessageContentType",
    "MessagePage",
    "MessageRole",
    "MessageType",
    "PATAuth",
    "RequiredAction",
    "RetryPolicy",
    "Section",
    "TokenProvider",
    "ToolCall",
    "ToolOutput",
    "Usage",
    "User",
    "auth_from_settings",
    "build_http_client",
    "collect_answer",
]
