"""Behaviour of the tool registry every door calls through."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from pydantic import BaseModel, Field

from kai_bridge.errors import ChatFailedError, ToolError, ToolInputError, ToolNotFoundError
from kai_bridge.tools import NullToolContext, Tool, ToolAnnotations, ToolContext, ToolRegistry, typed_tool
from kai_bridge.tools.registry import inline_refs

READ_ONLY = ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=False)


class EchoIn(BaseModel):
    text: str = Field(min_length=1, max_length=10)
    times: int = Field(default=1, ge=1, le=3)


class EchoOut(BaseModel):
    echoed: str
    caller: str | None


async def _echo(params: EchoIn, ctx: ToolContext) -> EchoOut:
    return EchoOut(echoed=params.text * params.times, caller=ctx.caller_id)


def _echo_tool(name: str = "echo", timeout: float | None = None) -> Tool:
    return typed_tool(
        name=name,
        title="Echo",
        description="Echo the text.",
        input_model=EchoIn,
        output_model=EchoOut,
        annotations=READ_ONLY,
        func=_echo,
        timeout=timeout,
    )


def _raw_tool(name: str, handler: Any, schema: dict[str, Any] | None = None, timeout: float | None = None) -> Tool:
    return Tool(
        name=name,
        title=name,
        description=f"raw tool {name}",
        input_schema=schema or {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
        output_schema=None,
        annotations=READ_ONLY,
        handler=handler,
        timeout=timeout,
    )


async def test_typed_tool_validates_input_and_returns_the_output_model_as_a_dict() -> None:
    registry = ToolRegistry()
    registry.add(_echo_tool())
    result = await registry.call("echo", {"text": "ab", "times": 2}, ctx=NullToolContext(caller_id="u1"))
    assert result == {"echoed": "abab", "caller": "u1"}


async def test_typed_tool_schema_comes_from_the_models() -> None:
    tool = _echo_tool()
    assert tool.input_schema["type"] == "object"
    assert tool.input_schema["required"] == ["text"]
    assert tool.input_schema["properties"]["text"]["maxLength"] == 10
    assert tool.output_schema is not None
    assert set(tool.output_schema["properties"]) == {"echoed", "caller"}


@pytest.mark.parametrize(
    ("arguments", "field", "fragment"),
    [
        pytest.param({"text": ""}, "'text'", "at least 1 character", id="too-short"),
        pytest.param({"text": "x", "times": 9}, "'times'", "less than or equal to 3", id="too-big"),
        pytest.param({}, "'text'", "Field required", id="missing"),
    ],
)
async def test_bad_typed_arguments_name_the_field_and_the_problem(
    arguments: dict[str, Any], field: str, fragment: str
) -> None:
    registry = ToolRegistry()
    registry.add(_echo_tool())
    with pytest.raises(ToolInputError) as info:
        await registry.call("echo", arguments)
    assert field in str(info.value)
    assert fragment in str(info.value)
    assert "echo" in str(info.value)


async def test_raw_schema_tools_are_validated_with_jsonschema() -> None:
    async def double(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"n": args["n"] * 2}

    registry = ToolRegistry()
    registry.add(_raw_tool("up.double", double))
    assert await registry.call("up.double", {"n": 4}) == {"n": 8}
    with pytest.raises(ToolInputError, match="'n': 'x' is not of type 'integer'"):
        await registry.call("up.double", {"n": "x"})
    with pytest.raises(ToolInputError, match="'n' is a required property"):
        await registry.call("up.double", None)


def test_a_raw_tool_with_an_invalid_schema_is_refused() -> None:
    async def noop(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {}

    registry = ToolRegistry()
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        registry.add(_raw_tool("bad", noop, schema={"type": "object", "properties": {"a": {"type": 5}}}))


async def test_unknown_tool_names_the_available_tools() -> None:
    registry = ToolRegistry()
    registry.add(_echo_tool())
    with pytest.raises(ToolNotFoundError, match="unknown tool 'nope'; available tools: echo"):
        await registry.call("nope", {})


@pytest.mark.parametrize("name", ["", "a" * 129, "has space", "slash/name", "ünï"])
def test_invalid_tool_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="invalid tool name"):
        _echo_tool(name)


def test_names_up_to_128_of_the_allowed_characters_are_accepted() -> None:
    assert _echo_tool("a" * 128).name == "a" * 128
    assert _echo_tool("up-stream.tool_1").name == "up-stream.tool_1"


def test_list_is_sorted_and_subscribers_hear_every_change() -> None:
    registry = ToolRegistry()
    changes: list[int] = []
    registry.subscribe(lambda: changes.append(len(registry)))
    registry.add(_echo_tool("zeta"))
    registry.add(_echo_tool("alpha"))
    registry.add(_echo_tool("mid"))
    assert [tool.name for tool in registry.list()] == ["alpha", "mid", "zeta"]
    registry.remove("mid")
    assert [tool.name for tool in registry.list()] == ["alpha", "zeta"]
    assert changes == [1, 2, 3, 2]


def test_adding_a_duplicate_name_is_refused_unless_replacing() -> None:
    registry = ToolRegistry()
    registry.add(_echo_tool())
    with pytest.raises(ValueError, match="already registered"):
        registry.add(_echo_tool())
    replacement = _echo_tool(timeout=5)
    registry.add(replacement, replace=True)
    assert registry.get("echo") is replacement


def test_removing_an_unknown_tool_raises_not_found() -> None:
    with pytest.raises(ToolNotFoundError):
        ToolRegistry().remove("ghost")


def test_a_failing_subscriber_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    registry = ToolRegistry()
    heard: list[str] = []

    def broken() -> None:
        raise RuntimeError("subscriber bug")

    registry.subscribe(broken)
    registry.subscribe(lambda: heard.append("ok"))
    registry.add(_echo_tool())
    assert heard == ["ok"]
    assert "subscriber" in caplog.text


async def test_a_slow_tool_times_out_with_a_tool_error() -> None:
    async def slow(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        await anyio.sleep_forever()
        return {}

    registry = ToolRegistry()
    registry.add(_raw_tool("slow", slow, schema={"type": "object"}, timeout=0.05))
    with anyio.fail_after(5), pytest.raises(ToolError, match=r"timed out after 0\.05 s"):
        await registry.call("slow", {})


async def test_unexpected_exceptions_become_a_safe_tool_error_and_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def boom(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise RuntimeError("secret internals: token=abc")

    registry = ToolRegistry()
    registry.add(_raw_tool("boom", boom, schema={"type": "object"}))
    with caplog.at_level(logging.ERROR), pytest.raises(ToolError) as info:
        await registry.call("boom", {})
    assert "internal error" in str(info.value)
    assert "secret" not in str(info.value)
    assert "secret internals" in caplog.text  # the traceback went to the log, not to the caller
    assert caplog.records[-1].exc_info is not None


async def test_kai_bridge_errors_keep_their_safe_message_and_logid() -> None:
    async def failing_chat(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise ChatFailedError("the chat failed: model overloaded (logid=L123)", logid="L123")

    registry = ToolRegistry()
    registry.add(_raw_tool("chat", failing_chat, schema={"type": "object"}))
    with pytest.raises(ToolError, match="model overloaded") as info:
        await registry.call("chat", {})
    assert "L123" in str(info.value)
    assert isinstance(info.value.__cause__, ChatFailedError)


async def test_cancellation_propagates_instead_of_becoming_a_tool_error() -> None:
    started = anyio.Event()

    async def waits(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        started.set()
        await anyio.sleep_forever()
        return {}

    registry = ToolRegistry(default_timeout=None)
    registry.add(_raw_tool("waits", waits, schema={"type": "object"}))
    outcome: list[str] = []

    async def run() -> None:
        try:
            await registry.call("waits", {})
        except ToolError:
            outcome.append("tool-error")
        finally:
            outcome.append("finished")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await started.wait()
            tg.cancel_scope.cancel()
    assert outcome == ["finished"]


async def test_a_handler_returning_a_non_dict_is_a_tool_error() -> None:
    async def wrong(args: dict[str, Any], ctx: ToolContext) -> Any:
        return ["not", "a", "dict"]

    registry = ToolRegistry()
    registry.add(_raw_tool("wrong", wrong, schema={"type": "object"}))
    with pytest.raises(ToolError, match="malformed result"):
        await registry.call("wrong", {})


async def test_non_object_arguments_are_an_input_error() -> None:
    registry = ToolRegistry()
    registry.add(_echo_tool())
    with pytest.raises(ToolInputError, match="must be a JSON object"):
        await registry.call("echo", ["text"])  # type: ignore[arg-type]


class Leaf(BaseModel):
    value: int


class Branch(BaseModel):
    leaf: Leaf = Field(description="the leaf")
    leaves: list[Leaf] = []


class Node(BaseModel):
    children: list[Node] = []


def test_typed_tool_schemas_have_no_refs_when_the_models_are_not_recursive() -> None:
    tool = typed_tool(name="tree", title="t", description="d", input_model=Branch, output_model=Branch,
                      annotations=READ_ONLY, func=_never)
    text = repr(tool.input_schema) + repr(tool.output_schema)
    assert "$ref" not in text
    assert "$defs" not in text
    assert tool.input_schema["properties"]["leaf"]["description"] == "the leaf"
    assert tool.input_schema["properties"]["leaves"]["items"]["properties"]["value"]["type"] == "integer"


def test_recursive_models_keep_their_refs() -> None:
    schema = inline_refs(Node.model_json_schema())
    assert "$defs" in schema
    assert schema == Node.model_json_schema()


async def _never(params: Any, ctx: ToolContext) -> Any:  # pragma: no cover - schema-only tools
    raise AssertionError
