"""The Coze layer: an async client for the Coze Open API (JWT OAuth or PAT, chat v3, streams).

It knows no application settings: ``kai_bridge.wiring`` maps the settings to a client built
on the process's one ``httpx.AsyncClient`` (:func:`build_http_client`). Everything here is an independent implementation of the wire:
it shares nothing with :mod:`kai_bridge.sandbox`, so the two check each other.
"""

from kai_bridge.coze.auth import JWTAuth, PATAuth, TokenProvider
from kai_bridge.coze.breaker import BreakerState, CircuitBreaker
from kai_bridge.coze.client import CozeClient
from kai_bridge.coze.events import collect_answer
from kai_bridge.coze.models import (
    Bot,
    BotPage,
    Chat,
    ChatEvent,
    ChatEventError,
    ChatEventType,
    ChatPoll,
    ChatRequest,
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
from kai_bridge.coze.pipeline import build_http_client
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
    "ChatRequest",
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
    "build_http_client",
    "collect_answer",
]
