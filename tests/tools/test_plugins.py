"""The registry as the conversation service's plugin runner: every outcome is an output Coze can take."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from kai_bridge.errors import ToolError
from kai_bridge.tools import RegistryPluginRunner, ToolAnnotations, ToolContext, ToolRegistry, typed_tool
from kai_bridge.tools.conversations import SEND_MESSAGE


class _In(BaseModel):
    text: str


class _Out(BaseModel):
    echoed: str
    caller: str | None


def _registry() -> ToolRegistry:
    async def echo(params: _In, ctx: ToolContext) -> _Out:
        if params.text == "boom":
            raise ToolError("echo refuses to say boom")
        return _Out(echoed=params.text, caller=ctx.caller_id)

    registry = ToolRegistry()
    notes = ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=False)
    for name in ("echo", SEND_MESSAGE):
        registry.add(typed_tool(name=name, title=name, description="echo", input_model=_In, output_model=_Out,
                                annotations=notes, func=echo))
    return registry


async def _run(name: str, arguments: str) -> Any:
    runner = RegistryPluginRunner(_registry())
    return json.loads(await runner.run_plugin(name=name, arguments=arguments, user_id="ana", chat_id="c1"))


async def test_a_known_tool_runs_with_the_chat_user_as_caller() -> None:
    assert await _run("echo", '{"text": "hi"}') == {"echoed": "hi", "caller": "ana"}


@pytest.mark.parametrize(
    ("name", "arguments", "fragment"),
    [
        pytest.param("nope", "{}", "unknown tool nope", id="unknown"),
        pytest.param(SEND_MESSAGE, '{"text": "hi"}', "unknown tool send_message", id="conversation-tool"),
        pytest.param("echo", "{not json", "are not JSON", id="bad-json"),
        pytest.param("echo", "[1, 2]", "not a JSON object", id="not-an-object"),
        pytest.param("echo", '{"text": 3}', "invalid arguments for tool 'echo'", id="schema"),
        pytest.param("echo", '{"text": "boom"}', "echo refuses to say boom", id="tool-error"),
    ],
)
async def test_every_failure_is_an_error_output_the_bot_can_read(name: str, arguments: str, fragment: str) -> None:
    output = await _run(name, arguments)
    assert set(output) == {"error"}
    assert fragment in output["error"]

