"""TEST-ONLY fixture pack for the official MCP conformance suite.

The suite expects an "everything" server with exact fixture names (``test_*`` tools,
``test://`` resources, ``test_*`` prompts). These are added to kai-bridge's real server
through the same factory (``build_mcp_server(..., extensions=[install])``, or
``kai-bridge serve --extension tests.conformance.fixtures:install``), so the suite exercises
our transport, auth, logging, progress and tool paths rather than a separate server.
Existing (production) resources and prompts stay served: list results are merged and
unknown names fall through to the previous handler.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import mcp.types as types
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.shared.exceptions import MCPError

from kai_bridge.mcp.context import McpToolContext
from kai_bridge.mcp.server import KaiMcpServer

__all__ = ["InMemoryEventStore", "install"]

IMAGE_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
AUDIO_WAV = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="
NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}

Ctx = ServerRequestContext[Any, Any]
Handler = Callable[[Ctx, types.CallToolRequestParams], Awaitable[types.CallToolResult]]


class InMemoryEventStore(EventStore):
    """SSE event ids and ``Last-Event-ID`` replay (the server-sse-polling scenario)."""

    def __init__(self) -> None:
        self._events: list[tuple[StreamId, EventId, types.JSONRPCMessage | None]] = []

    async def store_event(self, stream_id: StreamId, message: types.JSONRPCMessage | None) -> EventId:
        event_id = str(len(self._events) + 1)
        self._events.append((stream_id, event_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        stream = next((s for s, e, _ in self._events if e == last_event_id), None)
        if stream is None:
            return None
        for stream_id, event_id, message in self._events:
            if stream_id == stream and int(event_id) > int(last_event_id) and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _result(*content: types.ContentBlock, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=list(content), is_error=is_error)


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required}


# ---- tools -------------------------------------------------------------------------------------
async def simple_text(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return _result(_text("This is a simple text response for testing."))


async def image(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return _result(types.ImageContent(type="image", data=IMAGE_PNG, mime_type="image/png"))


async def audio(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return _result(types.AudioContent(type="audio", data=AUDIO_WAV, mime_type="audio/wav"))


def _embedded(uri: str, mime: str, text: str) -> types.EmbeddedResource:
    return types.EmbeddedResource(
        type="resource", resource=types.TextResourceContents(uri=uri, mime_type=mime, text=text)
    )


async def embedded(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return _result(_embedded("test://embedded-resource", "text/plain", "This is an embedded resource content."))


async def mixed(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return _result(
        _text("Multiple content types test:"),
        types.ImageContent(type="image", data=IMAGE_PNG, mime_type="image/png"),
        _embedded("test://mixed-content-resource", "application/json", '{"test": "data", "value": 123}'),
    )


async def with_logging(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    # Through kai-bridge's own MCP tool context: honours logging/setLevel like the real tools.
    tool_ctx = McpToolContext(ctx, caller_id=None)
    for line in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await tool_ctx.log("info", line)
        await anyio.sleep(0.02)
    return _result(_text("Tool with logging executed successfully"))


async def with_progress(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    tool_ctx = McpToolContext(ctx, caller_id=None)
    for step in (0, 50, 100):
        await tool_ctx.report_progress(step, 100, f"Completed step {step} of 100")
        await anyio.sleep(0.02)
    token = ctx.meta.get("progress_token") if ctx.meta else None
    return _result(_text(str(token)))


async def error_handling(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return _result(_text("This tool intentionally returns an error for testing"), is_error=True)


async def sampling(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    prompt = str((params.arguments or {}).get("prompt", ""))
    result = await ctx.session.create_message(
        messages=[types.SamplingMessage(role="user", content=_text(prompt))],
        max_tokens=100,
        related_request_id=ctx.request_id,
    )
    content = result.content
    text = content.text if isinstance(content, types.TextContent) else "No response"
    return _result(_text(f"LLM response: {text}"))


async def _elicit(ctx: Ctx, message: str, schema: dict[str, Any], label: str) -> types.CallToolResult:
    result = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
    content = json.dumps(result.content or {}) if result.action == "accept" else "{}"
    return _result(_text(f"{label}: action={result.action}, content={content}"))


async def elicitation(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    message = str((params.arguments or {}).get("message", "Please respond"))
    schema = _schema({"response": {"type": "string", "description": "User's response"}}, ["response"])
    return await _elicit(ctx, message, schema, "User response")


SEP1034 = _schema(
    {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"],
                   "default": "active"},
        "verified": {"type": "boolean", "description": "Verification status", "default": True},
    },
    [],
)

SEP1330 = _schema(
    {
        "untitledSingle": {"type": "string", "description": "Simple enum without titles",
                           "enum": ["active", "inactive", "pending"]},
        "titledSingle": {"type": "string", "description": "Enum with titled options (oneOf)",
                         "oneOf": [{"const": "low", "title": "Low Priority"},
                                   {"const": "medium", "title": "Medium Priority"},
                                   {"const": "high", "title": "High Priority"}]},
        "untitledMulti": {"type": "array", "description": "Multi-select without titles",
                          "items": {"type": "string", "enum": ["read", "write", "execute"]}},
        "titledMulti": {"type": "array", "description": "Multi-select with titled options",
                        "items": {"anyOf": [{"const": "feature", "title": "New Feature"},
                                            {"const": "bug", "title": "Bug Fix"},
                                            {"const": "docs", "title": "Documentation"}]}},
        "legacyEnum": {"type": "string", "description": "Legacy enum with enumNames",
                       "enum": ["small", "medium", "large"],
                       "enumNames": ["Small Size", "Medium Size", "Large Size"]},
    },
    ["untitledSingle", "titledSingle", "untitledMulti", "titledMulti", "legacyEnum"],
)


async def sep1034(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return await _elicit(ctx, "Please provide user information", SEP1034, "Elicitation result")


async def sep1330(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return await _elicit(ctx, "Please select values using different enum schema types", SEP1330,
                         "Elicitation completed")


async def json_schema_tool(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return _result(_text(json.dumps(params.arguments or {})))


JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}},
    },
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}


async def reconnection(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    tool_ctx = McpToolContext(ctx, caller_id=None)
    await tool_ctx.log("info", "Before disconnect")
    if ctx.close_sse_stream is not None:
        await ctx.close_sse_stream()
    await anyio.sleep(0.2)  # the client reconnects with Last-Event-ID meanwhile (part of the scenario)
    await tool_ctx.log("info", "After reconnect")
    return _result(_text("Reconnection test completed"))


TOOLS: list[tuple[str, str, dict[str, Any], Handler]] = [
    ("test_simple_text", "Tests simple text content response", NO_ARGS, simple_text),
    ("test_image_content", "Tests image content response", NO_ARGS, image),
    ("test_audio_content", "Tests audio content response", NO_ARGS, audio),
    ("test_embedded_resource", "Tests embedded resource content response", NO_ARGS, embedded),
    ("test_multiple_content_types", "Tests response with multiple content types", NO_ARGS, mixed),
    ("test_tool_with_logging", "Tests tool that emits log messages during execution", NO_ARGS, with_logging),
    ("test_tool_with_progress", "Tests tool that reports progress notifications", NO_ARGS, with_progress),
    ("test_error_handling", "Tests error response handling", NO_ARGS, error_handling),
    ("test_sampling", "Tests server-initiated sampling",
     _schema({"prompt": {"type": "string"}}, ["prompt"]), sampling),
    ("test_elicitation", "Tests server-initiated elicitation",
     _schema({"message": {"type": "string"}}, ["message"]), elicitation),
    ("test_elicitation_sep1034_defaults", "Tests elicitation with default values (SEP-1034)", NO_ARGS, sep1034),
    ("test_elicitation_sep1330_enums", "Tests elicitation with enum schema variations (SEP-1330)", NO_ARGS, sep1330),
    ("json_schema_2020_12_tool", "Tool whose input schema uses JSON Schema 2020-12 features", JSON_SCHEMA_2020_12,
     json_schema_tool),
    ("test_reconnection", "Tests SSE polling by closing the stream mid-call (SEP-1699)", NO_ARGS, reconnection),
]


# ---- resources, prompts, completion ------------------------------------------------------------
STATIC_RESOURCES = [
    types.Resource(uri="test://static-text", name="static-text", description="A static text resource",
                   mime_type="text/plain"),
    types.Resource(uri="test://static-binary", name="static-binary", description="A static binary resource",
                   mime_type="image/png"),
    types.Resource(uri="test://watched-resource", name="watched-resource", description="A subscribable resource",
                   mime_type="text/plain"),
]
TEMPLATE = types.ResourceTemplate(uri_template="test://template/{id}/data", name="template",
                                  description="A resource template", mime_type="application/json")

PROMPTS = [
    types.Prompt(name="test_simple_prompt", description="A simple prompt without arguments"),
    types.Prompt(name="test_prompt_with_arguments", description="A prompt with required arguments",
                 arguments=[types.PromptArgument(name="arg1", required=True),
                            types.PromptArgument(name="arg2", required=True)]),
    types.Prompt(name="test_prompt_with_embedded_resource", description="A prompt with an embedded resource",
                 arguments=[types.PromptArgument(name="resourceUri", required=True)]),
    types.Prompt(name="test_prompt_with_image", description="A prompt with image content"),
]


def _previous(server: KaiMcpServer, method: str) -> Callable[[Ctx, Any], Awaitable[Any]] | None:
    entry = server.get_request_handler(method)
    return entry.handler if entry is not None else None


def install(server: KaiMcpServer) -> None:
    """Add the conformance fixtures to ``server`` (keeps what it already serves)."""
    for name, description, schema, handler in TOOLS:
        server.add_mcp_tool(types.Tool(name=name, description=description, input_schema=schema), handler)
    server.event_store = InMemoryEventStore()
    server.retry_interval = 100
    subscriptions: set[str] = set()

    prev_list_resources = _previous(server, "resources/list")
    prev_templates = _previous(server, "resources/templates/list")
    prev_read = _previous(server, "resources/read")
    prev_prompts = _previous(server, "prompts/list")
    prev_get_prompt = _previous(server, "prompts/get")
    prev_complete = _previous(server, "completion/complete")

    async def list_resources(ctx: Ctx, params: types.PaginatedRequestParams) -> types.ListResourcesResult:
        theirs = (await prev_list_resources(ctx, params)).resources if prev_list_resources else []
        return types.ListResourcesResult(resources=[*STATIC_RESOURCES, *theirs])

    async def list_templates(ctx: Ctx, params: types.PaginatedRequestParams) -> types.ListResourceTemplatesResult:
        theirs = (await prev_templates(ctx, params)).resource_templates if prev_templates else []
        return types.ListResourceTemplatesResult(resource_templates=[TEMPLATE, *theirs])

    async def read(ctx: Ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        uri = params.uri
        if uri == "test://static-text":
            contents: list[types.TextResourceContents | types.BlobResourceContents] = [
                types.TextResourceContents(uri=uri, mime_type="text/plain",
                                           text="This is the content of the static text resource.")
            ]
        elif uri == "test://static-binary":
            contents = [types.BlobResourceContents(uri=uri, mime_type="image/png", blob=IMAGE_PNG)]
        elif uri == "test://watched-resource":
            contents = [types.TextResourceContents(uri=uri, mime_type="text/plain", text="Watched resource content")]
        elif uri.startswith("test://template/") and uri.endswith("/data"):
            ident = uri.removeprefix("test://template/").removesuffix("/data")
            body = json.dumps({"id": ident, "templateTest": True, "data": f"Data for ID: {ident}"})
            contents = [types.TextResourceContents(uri=uri, mime_type="application/json", text=body)]
        elif prev_read is not None:
            return await prev_read(ctx, params)  # type: ignore[no-any-return]
        else:
            raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {uri}")
        return types.ReadResourceResult(contents=contents)

    async def subscribe(ctx: Ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
        subscriptions.add(params.uri)
        return types.EmptyResult()

    async def unsubscribe(ctx: Ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        subscriptions.discard(params.uri)
        return types.EmptyResult()

    async def list_prompts(ctx: Ctx, params: types.PaginatedRequestParams) -> types.ListPromptsResult:
        theirs = (await prev_prompts(ctx, params)).prompts if prev_prompts else []
        return types.ListPromptsResult(prompts=[*PROMPTS, *theirs])

    async def get_prompt(ctx: Ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        args = params.arguments or {}
        user = "user"
        if params.name == "test_simple_prompt":
            messages = [types.PromptMessage(role=user, content=_text("This is a simple prompt for testing."))]
        elif params.name == "test_prompt_with_arguments":
            text = f"Prompt with arguments: arg1='{args.get('arg1')}', arg2='{args.get('arg2')}'"
            messages = [types.PromptMessage(role=user, content=_text(text))]
        elif params.name == "test_prompt_with_embedded_resource":
            uri = str(args.get("resourceUri", "test://example-resource"))
            messages = [
                types.PromptMessage(role=user, content=_embedded(uri, "text/plain",
                                                                 "Embedded resource content for testing.")),
                types.PromptMessage(role=user, content=_text("Please process the embedded resource above.")),
            ]
        elif params.name == "test_prompt_with_image":
            messages = [
                types.PromptMessage(role=user, content=types.ImageContent(type="image", data=IMAGE_PNG,
                                                                          mime_type="image/png")),
                types.PromptMessage(role=user, content=_text("Please analyze the image above.")),
            ]
        elif prev_get_prompt is not None:
            return await prev_get_prompt(ctx, params)  # type: ignore[no-any-return]
        else:
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {params.name}")
        return types.GetPromptResult(messages=messages)

    async def complete(ctx: Ctx, params: types.CompleteRequestParams) -> types.CompleteResult:
        ref = params.ref
        if isinstance(ref, types.PromptReference) and ref.name.startswith("test_"):
            values = [v for v in ("alpha", "beta", "gamma") if v.startswith(params.argument.value)]
            return types.CompleteResult(completion=types.Completion(values=values, total=len(values), has_more=False))
        if prev_complete is not None:
            return await prev_complete(ctx, params)  # type: ignore[no-any-return]
        return types.CompleteResult(completion=types.Completion(values=[], total=0, has_more=False))

    server.add_request_handler("resources/list", types.PaginatedRequestParams, list_resources)
    server.add_request_handler("resources/templates/list", types.PaginatedRequestParams, list_templates)
    server.add_request_handler("resources/read", types.ReadResourceRequestParams, read)
    server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
    server.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
    server.add_request_handler("prompts/list", types.PaginatedRequestParams, list_prompts)
    server.add_request_handler("prompts/get", types.GetPromptRequestParams, get_prompt)
    server.add_request_handler("completion/complete", types.CompleteRequestParams, complete)
