"""Coze conversations for the doors: the service, what it returns, and how it runs local plugins.

``service`` holds :class:`ConversationService` (conversations per user, streaming, the
requires_action loop, cancellation); ``records`` writes chat records in order; ``plugins``
is the service's own :class:`PluginRunner` protocol (the tool registry adapts to it in
``kai_bridge.tools``; this package imports nothing from there); ``models`` are the results.
"""

from kai_bridge.conversations.models import (
    ChatResult,
    ConversationInfo,
    ConversationMessage,
    MessageList,
    SendResult,
    UsageInfo,
)
from kai_bridge.conversations.plugins import PluginRunner
from kai_bridge.conversations.service import ConversationService, MayTouch

__all__ = [
    "ChatResult",
    "ConversationInfo",
    "ConversationMessage",
    "ConversationService",
    "MayTouch",
    "MessageList",
    "PluginRunner",
    "SendResult",
    "UsageInfo",
]
