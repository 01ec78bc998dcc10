"""The tool registry as the conversation service's :class:`~kai_bridge.conversations.PluginRunner`.

A Coze chat paused on ``requires_action`` asks for local plugins by name; they run here
through the same registry every door uses. Whatever goes wrong becomes an output the bot can
read (``{"error": "..."}``), because Coze waits for an output for every call. Tools that
would start chats from inside a chat (the conversation tools) are not offered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from kai_bridge.errors import ToolError
from kai_bridge.tools.conversations import CONVERSATION_TOOL_NAMES
from kai_bridge.tools.registry import NullToolContext, ToolRegistry

__all__ = ["RegistryPluginRunner"]

logger = logging.getLogger(__name__)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class RegistryPluginRunner:
    """Runs local plugin calls through ``registry``; ``excluded`` names are refused like unknown ones."""

    def __init__(self, registry: ToolRegistry, *, excluded: Iterable[str] = CONVERSATION_TOOL_NAMES) -> None:
        self._registry = registry
        self._excluded = frozenset(excluded)

    async def run_plugin(self, *, name: str, arguments: str, user_id: str, chat_id: str | None) -> str:
        if name not in self._registry or name in self._excluded:
            logger.warning("chat %s asked for local tool %r, which this bridge does not run", chat_id, name)
            return _json({"error": f"unknown tool {name}"})
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            return _json({"error": f"the arguments for {name} are not JSON: {exc}"})
        if not isinstance(parsed, dict):
            return _json({"error": f"the arguments for {name} are not a JSON object"})
        try:
            result = await self._registry.call(name, parsed, ctx=NullToolContext(caller_id=user_id))
        except ToolError as exc:
            return _json({"error": str(exc)})
        return _json(result)
