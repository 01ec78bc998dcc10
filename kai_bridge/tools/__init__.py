"""KAI tools: the registry every door calls through, and the tools kai-bridge itself provides.

:func:`build_registry` assembles the registry the composition root hands to every door.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kai_bridge.tools.registry import (
    Caller,
    CozeCaller,
    NullToolContext,
    Tool,
    ToolAnnotations,
    ToolContext,
    ToolHandler,
    ToolRegistry,
    typed_tool,
    validate_tool_name,
)

if TYPE_CHECKING:
    from kai_bridge.conversations import ConversationService
    from kai_bridge.tools.coffee import KnowledgeQuery

__all__ = [
    "Caller",
    "CozeCaller",
    "NullToolContext",
    "Tool",
    "ToolAnnotations",
    "ToolContext",
    "ToolHandler",
    "ToolRegistry",
    "build_registry",
    "typed_tool",
    "validate_tool_name",
]


def build_registry(
    *,
    knowledge: KnowledgeQuery,
    conversations: ConversationService | None,
    registry: ToolRegistry | None = None,
    default_timeout: float | None = 30.0,
) -> ToolRegistry:
    """The registry with kai-bridge's own tools: coffee knowledge and (with a service) conversations.

    The conversation service runs requires_action tools through a registry, which must be
    this one: by default the service's own registry is filled; passing a different
    ``registry`` together with a service is refused. Without a service, a new registry
    (``default_timeout`` per call) is made unless one is given.
    """
    # Imported here: kai_bridge.conversations itself imports the registry module.
    from kai_bridge.tools.coffee import coffee_knowledge_tool
    from kai_bridge.tools.conversations import conversation_tools

    if conversations is not None:
        if registry is not None and registry is not conversations.registry:
            raise ValueError("the conversation service must use the registry its tools are added to")
        registry = conversations.registry
    elif registry is None:
        registry = ToolRegistry(default_timeout=default_timeout)
    registry.add(coffee_knowledge_tool(knowledge))
    if conversations is not None:
        for tool in conversation_tools(conversations):
            registry.add(tool)
    return registry
