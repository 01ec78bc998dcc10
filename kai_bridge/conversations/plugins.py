"""How a chat paused on ``requires_action`` gets its local plugins run: a protocol of the service's own.

The service knows no tool registry and no tool names: it hands each tool call to a
:class:`PluginRunner` and submits whatever text comes back. The registry's adapter lives in
``kai_bridge.tools.plugins``; anything else that can answer a plugin call may stand in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import anyio

from kai_bridge.coze import ToolCall, ToolOutput

__all__ = ["PluginRunner", "run_tool_calls"]


class PluginRunner(Protocol):
    """Runs one local plugin call and returns the output to submit to Coze.

    Every failure (unknown plugin, arguments that are not a JSON object, the plugin's own
    error) must come back as output text the bot can read, not as an exception: Coze waits
    for an output for every call.
    """

    async def run_plugin(self, *, name: str, arguments: str, user_id: str, chat_id: str | None) -> str: ...


async def run_tool_calls(
    runner: PluginRunner, calls: Sequence[ToolCall], *, user_id: str, chat_id: str | None
) -> list[ToolOutput]:
    """Run ``calls`` concurrently; the outputs come back in the order of the calls."""
    outputs: list[ToolOutput | None] = [None] * len(calls)

    async def one(index: int, call: ToolCall) -> None:
        text = await runner.run_plugin(
            name=call.function.name, arguments=call.function.arguments, user_id=user_id, chat_id=chat_id
        )
        outputs[index] = ToolOutput(tool_call_id=call.id, output=text)

    async with anyio.create_task_group() as tg:
        for index, call in enumerate(calls):
            tg.start_soon(one, index, call)
    return [out for out in outputs if out is not None]
