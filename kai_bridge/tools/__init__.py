"""KAI tools: the registry every door calls through, and the tools kai-bridge itself provides.

:func:`build_registry` adds the bridge's own tools to the registry the composition root hands
to every door; :class:`RegistryPluginRunner` lets the conversation service run local plugins
through that same registry (the service itself knows no registry).
"""

from __future__ import annotations

from kai_bridge.conversations import ConversationService
from kai_bridge.tools.coffee import KnowledgeQuery, coffee_knowledge_tool
from kai_bridge.tools.conversations import BotGuard, conversation_tools
from kai_bridge.tools.plugins import RegistryPluginRunner
from kai_bridge.tools.registry import (
    UNKNOWN_TOOL,
    Caller,
    CallFinished,
    CozeCaller,
    Door,
    NullToolContext,
    Tool,
    ToolAnnotations,
    ToolCallObserver,
    ToolContext,
    ToolHandler,
    ToolOutcome,
    ToolRegistry,
    typed_tool,
    validate_tool_name,
)

__all__ = [
    "UNKNOWN_TOOL",
    "CallFinished",
    "Caller",
    "CozeCaller",
    "Door",
    "NullToolContext",
    "RegistryPluginRunner",
    "Tool",
    "ToolAnnotations",
    "ToolCallObserver",
    "ToolContext",
    "ToolHandler",
    "ToolOutcome",
    "ToolRegistry",
    "build_registry",
    "typed_tool",
    "validate_tool_name",
]


def build_registry(
    *,
    knowledge: KnowledgeQuery,
    conversations: ConversationService | None = None,
    registry: ToolRegistry | None = None,
    default_timeout: float | None = 30.0,
    bot_guard: BotGuard | None = None,
    shared_user_ids: bool = False,
) -> ToolRegistry:
    """``registry`` (a new one, ``default_timeout`` per call, when None) with the bridge's own tools.

    The coffee knowledge tool always; the conversation tools when a service is given.
    ``bot_guard`` refuses conversation tools aimed at a bot Coze reported deleted;
    ``shared_user_ids`` makes the ``user_id`` argument global instead of per caller.
    """
    registry = registry if registry is not None else ToolRegistry(default_timeout=default_timeout)
    registry.add(coffee_knowledge_tool(knowledge))
    if conversations is not None:
        for tool in conversation_tools(conversations, bot_guard=bot_guard, shared_user_ids=shared_user_ids):
            registry.add(tool)
    return registry
