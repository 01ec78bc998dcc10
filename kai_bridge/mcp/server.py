"""The MCP server, generated from the tool registry.

Built on the SDK's low-level ``mcp.server.Server`` rather than ``MCPServer``: the tools are
dynamic (upstream KAI servers come and go) and already carry their JSON Schemas, so there is
nothing for ``MCPServer``'s decorator/type-hint machinery to infer, and the low-level
handlers let ``tools/list`` and ``tools/call`` read the registry on every request. The same
server object runs over stdio, Streamable HTTP (both protocol eras) and in-process.

``tools/list_changed`` follows the registry: handshake-era connections that listed tools get
the notification on their standalone stream; 2026-07-28 clients get it through
``subscriptions/listen``.

``extensions`` are callables that receive the built :class:`KaiMcpServer` and may add
MCP-only tools (:meth:`KaiMcpServer.add_mcp_tool`, for content blocks, sampling or
elicitation that the door-agnostic registry does not model), resources, prompts or request
handlers. The conformance fixture pack uses this hook; nothing in production does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import mcp.types as types
from anyio.streams.memory import MemoryObjectSendStream
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions
from mcp.server.models import InitializationOptions
from mcp.server.streamable_http import EventStore
from mcp.server.subscriptions import ListenHandler, ServerEvent, ToolsListChanged
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from kai_bridge import __version__
from kai_bridge.errors import ToolError
from kai_bridge.limits import bearer_identity
from kai_bridge.mcp.context import LOG_LEVEL_STATE_KEY, McpToolContext, connection_of
from kai_bridge.tools.registry import Door, Tool, ToolRegistry

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "KaiMcpServer",
    "McpExtension",
    "McpToolHandler",
    "build_mcp_server",
    "tool_result",
]

logger = logging.getLogger(__name__)

DEFAULT_INSTRUCTIONS = (
    "kai-bridge gives you coffee knowledge (coffee_knowledge_query: origins, varieties, processing, "
    "roasting, brewing, espresso, storage, tasting, health, CQI statistics; Chinese or English) and "
    "conversations with a Coze bot (create_conversation, send_message, get_conversation_messages, "
    "cancel_chat, get_chat_result). send_message continues your previous conversation unless you pass "
    "conversation_id; if a reply is interrupted, fetch it later with get_chat_result(chat_id). Tools "
    "named '<upstream>.<tool>' are proxied from other KAI servers."
)

McpToolHandler = Callable[
    [ServerRequestContext[Any, Any], types.CallToolRequestParams], Awaitable[types.CallToolResult]
]
McpExtension = Callable[["KaiMcpServer"], None]


def tool_result(result: dict[str, Any]) -> types.CallToolResult:
    """A successful call: the structured result plus its JSON text copy (for clients without structure)."""
    text = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=result)


def tool_error(message: str) -> types.CallToolResult:
    """A failed call the model can read and act on (``isError: true``)."""
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def _wire_tool(tool: Tool) -> types.Tool:
    ann = tool.annotations
    return types.Tool(
        name=tool.name,
        title=tool.title,
        description=tool.description,
        input_schema=tool.input_schema,
        output_schema=tool.output_schema,
        annotations=types.ToolAnnotations(
            title=ann.title or tool.title,
            read_only_hint=ann.read_only,
            destructive_hint=ann.destructive,
            idempotent_hint=ann.idempotent,
            open_world_hint=ann.open_world,
        ),
    )


class _ChangeBus:
    """A ``SubscriptionBus`` whose fan-out can also be triggered synchronously (registry callbacks)."""

    def __init__(self) -> None:
        self._listeners: dict[object, Callable[[ServerEvent], None]] = {}

    def emit(self, event: ServerEvent) -> None:
        for listener in list(self._listeners.values()):
            try:
                listener(event)
            except Exception:
                logger.exception("subscription listener failed")

    async def publish(self, event: ServerEvent) -> None:
        self.emit(event)
        await anyio.lowlevel.checkpoint()

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        token = object()
        self._listeners[token] = listener

        def unsubscribe() -> None:
            self._listeners.pop(token, None)

        return unsubscribe


@dataclass(eq=False)
class _LifespanState:
    """Per-run state: the handshake-era connections to tell about tool-list changes."""

    connections: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)
    wake: MemoryObjectSendStream[None] | None = None


class KaiMcpServer(Server[_LifespanState]):
    """The low-level SDK server plus the registry it serves and a few HTTP options extensions may set."""

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        name: str,
        version: str,
        instructions: str | None,
        door: Door = Door.MCP_HTTP,
    ) -> None:
        self.registry = registry
        #: What the tool metrics and log lines call this server's transport.
        self.door = door
        self._mcp_tools: dict[str, tuple[types.Tool, McpToolHandler]] = {}
        self._wire_tools: list[types.Tool] | None = None
        self._bus = _ChangeBus()
        self._running: set[MemoryObjectSendStream[None]] = set()
        #: Streamable HTTP resumability (SSE event ids, ``Last-Event-ID`` replay); off by default.
        self.event_store: EventStore | None = None
        self.retry_interval: int | None = None
        super().__init__(
            name,
            version=version,
            title="kai-bridge",
            instructions=instructions,
            lifespan=self._lifespan,
            get_tool_input_schema=self._input_schema_of,
            on_list_tools=self._on_list_tools,
            on_call_tool=self._on_call_tool,
            on_subscriptions_listen=ListenHandler(self._bus),
        )
        # Registered here (not as on_set_logging_level) so building the server does not warn;
        # the handler's presence is what advertises the ``logging`` capability.
        self.add_request_handler("logging/setLevel", types.SetLevelRequestParams, self._on_set_level)
        registry.subscribe(self._registry_changed)

    # ---- capabilities ------------------------------------------------------------------------
    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        # Every transport (stdio, the HTTP session manager, in-process) builds its options
        # here, so this is where ``tools.listChanged`` is switched on for all of them.
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True),
            experimental_capabilities,
            extensions,
        )

    # ---- subscription events (extensions) ----------------------------------------------------
    def publish_event(self, event: ServerEvent) -> None:
        """Deliver ``event`` (e.g. ``ResourceUpdated``) to the 2026-07-28 ``subscriptions/listen`` streams."""
        self._bus.emit(event)

    # ---- MCP-only tools (extensions) ---------------------------------------------------------
    def add_mcp_tool(self, tool: types.Tool, handler: McpToolHandler) -> None:
        """Serve a tool that exists only on the MCP door (content blocks, sampling, elicitation)."""
        if tool.name in self.registry or tool.name in self._mcp_tools:
            raise ValueError(f"a tool named {tool.name!r} is already served")
        self._mcp_tools[tool.name] = (tool, handler)
        self._registry_changed()

    # ---- handlers ----------------------------------------------------------------------------
    def _tool_list(self) -> list[types.Tool]:
        if self._wire_tools is None:
            wire = [_wire_tool(tool) for tool in self.registry.list()]
            wire.extend(tool for tool, _ in self._mcp_tools.values())
            wire.sort(key=lambda tool: tool.name)
            self._wire_tools = wire
        return self._wire_tools

    def _input_schema_of(self, name: str) -> dict[str, Any] | None:
        if name in self._mcp_tools:
            return self._mcp_tools[name][0].input_schema
        return self.registry.get(name).input_schema if name in self.registry else None

    async def _on_list_tools(
        self, ctx: ServerRequestContext[_LifespanState, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        self._track(ctx)
        return types.ListToolsResult(tools=self._tool_list())

    async def _on_call_tool(
        self, ctx: ServerRequestContext[_LifespanState, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        name = params.name
        if name not in self.registry:
            extra = self._mcp_tools.get(name)
            if extra is not None:
                return await extra[1](ctx, params)
            # An unknown tool is a protocol error (spec: -32602), not a tool execution error.
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {name}")
        tool_ctx = McpToolContext(ctx, caller_id=_caller_id(ctx, self.door), door=self.door)
        try:
            result = await self.registry.call(name, params.arguments, ctx=tool_ctx)
        except ToolError as exc:
            return tool_error(str(exc))
        return tool_result(result)

    async def _on_set_level(
        self, ctx: ServerRequestContext[_LifespanState, Any], params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        conn = connection_of(ctx)
        if conn is not None:
            conn.state[LOG_LEVEL_STATE_KEY] = params.level
        return types.EmptyResult()

    # ---- tools/list_changed ------------------------------------------------------------------
    def _track(self, ctx: ServerRequestContext[_LifespanState, Any]) -> None:
        state = ctx.lifespan_context
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS or not isinstance(state, _LifespanState):
            return
        conn = connection_of(ctx)
        if conn is not None:
            state.connections.add(conn)

    def _registry_changed(self) -> None:
        self._wire_tools = None
        self._bus.emit(ToolsListChanged())
        for wake in list(self._running):
            with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                wake.send_nowait(None)

    @contextlib.asynccontextmanager
    async def _lifespan(self, _server: Server[_LifespanState]) -> AsyncIterator[_LifespanState]:
        state = _LifespanState()
        # Capacity 1: changes that arrive while a broadcast is pending collapse into one.
        send, receive = anyio.create_memory_object_stream[None](1)
        state.wake = send

        async def broadcast() -> None:
            async with receive:
                async for _ in receive:
                    for conn in list(state.connections):
                        await conn.send_tool_list_changed()  # best effort, never raises

        self._running.add(send)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(broadcast)
                try:
                    yield state
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self._running.discard(send)
            send.close()


def _caller_id(ctx: ServerRequestContext[Any, Any], door: Door) -> str:
    """Who is calling, for their own conversations: the Streamable HTTP session where there is
    one (2025-era clients); else the bearer credential they were let in with (a secret-free
    hash: each of ``mcp_client_tokens`` is a client of its own); else the door itself (a stdio
    process serves one client; loopback HTTP without a token is one local principal)."""
    conn = connection_of(ctx)
    session_id = getattr(conn, "session_id", None)
    if session_id:
        return f"mcp-session-{session_id}"
    headers = getattr(ctx.request, "headers", None)
    authorization = headers.get("authorization", "") if headers is not None else ""
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return bearer_identity(credential.strip())
    return door.value


def build_mcp_server(
    registry: ToolRegistry,
    *,
    name: str = "kai-bridge",
    version: str = __version__,
    instructions: str | None = DEFAULT_INSTRUCTIONS,
    extensions: Sequence[McpExtension] = (),
    door: Door = Door.MCP_HTTP,
) -> KaiMcpServer:
    """Build the MCP server for ``registry``; ``extensions`` may add MCP-only features (tests).

    ``door`` labels its tool calls (``kai-bridge stdio`` passes :attr:`Door.MCP_STDIO`).
    """
    server = KaiMcpServer(registry, name=name, version=version, instructions=instructions, door=door)
    for extension in extensions:
        extension(server)
    return server
