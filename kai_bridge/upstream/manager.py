"""Upstream KAI MCP servers, proxied into the tool registry under ``<upstream>.<tool>``.

The seed guide's ``KAIManager`` (an MCP server URL plus an API key, and a "tool invocation
timeout") grown up: each configured upstream gets a supervisor task that connects with the
official SDK client (stdio subprocess or Streamable HTTP with a bearer key), lists the tools,
registers them, and keeps the link alive (heartbeat pings, ``tools/list_changed``). When the
link dies it reconnects with capped, jittered exponential backoff and reconciles the tool list.

Startup never blocks on an upstream: connecting happens in the background; ``wait_ready()``
exists for tests and for callers that want to wait (``kai-bridge call``).

The MCP SDK is imported by the supervisors, not by this module: a process with no upstream
configured never loads it. ``clock``/``wall_clock`` and ``sleep`` (backoff and heartbeat waits)
are injectable, so tests decide when a heartbeat fires or a retry happens.

Tools of a disconnected upstream stay registered but fail fast with an
:class:`~kai_bridge.errors.UpstreamToolError` saying which upstream is down, since when, why,
and when the next attempt is. Removing them at once would turn every flap into a
``tools/list_changed`` storm for downstream clients and hand a model that already listed them a
bare "unknown tool". Only after ``tool_grace`` seconds without a connection are they removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePath
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import anyio

from kai_bridge.config import UpstreamConfig
from kai_bridge.errors import ConfigError, ToolNotFoundError, UpstreamToolError
from kai_bridge.tools.registry import Tool, ToolContext, ToolHandler, ToolRegistry

if TYPE_CHECKING:
    import mcp_types as mt
    from mcp import ClientSession
    from mcp.client._transport import TransportStreams
    from mcp.shared.dispatcher import ProgressFnT

__all__ = ["UpstreamManager", "UpstreamState"]

logger = logging.getLogger(__name__)

# The registry's own timeout for an upstream tool: a backstop behind the per-upstream timeout,
# which fires first and gives the better message.
_REGISTRY_MARGIN = 5.0
_MAX_ERROR = 500
_MAX_LIST_PAGES = 100
_API_KEY_ENV = "KAI_API_KEY"


class UpstreamState(StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"


@dataclass(eq=False)
class _Link:
    """One connection attempt: its session once initialised, and the events that end or refresh it."""

    lost: anyio.Event = field(default_factory=anyio.Event)
    relist: anyio.Event = field(default_factory=anyio.Event)
    reason: str | None = None


@dataclass(eq=False)
class _Upstream:
    config: UpstreamConfig
    state: UpstreamState = UpstreamState.CONNECTING
    session: ClientSession | None = None
    link: _Link | None = None
    tools: dict[str, Tool] = field(default_factory=dict)  # registry name -> tool we registered
    handlers: dict[str, ToolHandler] = field(default_factory=dict)  # upstream tool name -> handler
    skipped: list[str] = field(default_factory=list)
    last_error: str | None = None
    last_http_status: int | None = None
    connected_since: float | None = None  # wall clock
    disconnected_at: float | None = None  # monotonic
    next_attempt_at: float | None = None  # monotonic
    connects: int = 0
    calls: int = 0
    failures: int = 0
    timeouts: int = 0
    last_latency_ms: float | None = None
    server_name: str | None = None
    server_version: str | None = None
    protocol_version: str | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def secret(self) -> str | None:
        return self.config.api_key.get_secret_value() if self.config.api_key is not None else None


def _transport_kind(config: UpstreamConfig) -> str:
    return "stdio" if config.command is not None else "http"


def _safe_target(config: UpstreamConfig) -> str:
    """Where the upstream is, with nothing that could be a secret (no userinfo, query or args)."""
    if config.command is not None:
        return PurePath(config.command[0]).name
    parts = urlsplit(config.url or "")
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        found: list[BaseException] = []
        for inner in exc.exceptions:
            found.extend(_leaves(inner))
        return found
    return [exc]


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR else text[:_MAX_ERROR] + " [truncated]"


class UpstreamManager:
    """Connects to every configured upstream in the background and proxies its tools.

    Use as ``async with UpstreamManager(configs=..., registry=...) as manager:`` (or
    ``await start()`` / ``await close()``). Closing stops the supervisors, ends the sessions
    (stdio servers are shut down) and removes the proxied tools from the registry.
    """

    def __init__(
        self,
        *,
        configs: Sequence[UpstreamConfig],
        registry: ToolRegistry,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        connect_timeout: float = 10.0,
        heartbeat_interval: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        tool_grace: float = 300.0,
        errlog: TextIO | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        names = [c.name for c in configs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"upstreams: names must be unique, repeated: {', '.join(duplicates)}")
        self._registry = registry
        self._upstreams = {c.name: _Upstream(config=c) for c in configs}
        self._clock = clock
        self._wall_clock = wall_clock
        self._connect_timeout = connect_timeout
        self._heartbeat_interval = heartbeat_interval
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._tool_grace = tool_grace
        self._errlog = errlog
        self._sleep = sleep
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self._closing = False

    # ---- lifecycle -----------------------------------------------------------------------------
    async def __aenter__(self) -> UpstreamManager:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start one supervisor per upstream and return at once (connections happen in the background)."""
        if self._tasks:
            return
        for upstream in self._upstreams.values():
            task = asyncio.create_task(self._supervise(upstream), name=f"kai-bridge upstream {upstream.name}")
            self._tasks.append(task)

    async def close(self) -> None:
        """Stop the supervisors, end the sessions and remove the proxied tools. Idempotent."""
        self._closing = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for upstream in self._upstreams.values():
            self._unregister_all(upstream)
            upstream.session = None
            upstream.link = None

    # A plain ``timeout`` (not a cancel scope): waiting is optional here and the answer is a bool.
    async def wait_ready(self, timeout: float, *, names: Iterable[str] | None = None) -> bool:  # noqa: ASYNC109
        """Wait until the named upstreams (default: all) are connected; False if ``timeout`` passes first."""
        wanted = [self._get(n) for n in names] if names is not None else list(self._upstreams.values())
        return await self._wait(lambda: all(u.state is UpstreamState.CONNECTED for u in wanted), timeout)

    async def wait_state(self, name: str, *states: UpstreamState, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until upstream ``name`` is in one of ``states``; False if ``timeout`` passes first."""
        upstream = self._get(name)
        return await self._wait(lambda: upstream.state in states, timeout)

    def state(self, name: str) -> UpstreamState:
        return self._get(name).state

    def _get(self, name: str) -> _Upstream:
        try:
            return self._upstreams[name]
        except KeyError:
            raise KeyError(f"no upstream named {name!r}") from None

    async def _wait(self, condition: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109
        with anyio.move_on_after(timeout):
            while True:
                changed = self._changed
                if condition():
                    return True
                await changed.wait()
        return False

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ---- diagnostics ---------------------------------------------------------------------------
    def diagnostics(self) -> list[dict[str, Any]]:
        """Per upstream: where, state, tools, counters, last error. Never contains an API key."""
        now = self._clock()
        out: list[dict[str, Any]] = []
        for u in self._upstreams.values():
            retry_in = None
            if u.state is not UpstreamState.CONNECTED and u.next_attempt_at is not None:
                retry_in = round(max(0.0, u.next_attempt_at - now), 3)
            out.append(
                {
                    "name": u.name,
                    "transport": _transport_kind(u.config),
                    "target": _safe_target(u.config),
                    "state": u.state.value,
                    "tool_count": len(u.tools),
                    "tool_names": sorted(u.tools),
                    "skipped_tools": list(u.skipped),
                    "last_error": u.last_error,
                    "connected_since": u.connected_since if u.state is UpstreamState.CONNECTED else None,
                    "connects": u.connects,
                    "next_attempt_in": retry_in,
                    "server": None if u.server_name is None else {"name": u.server_name, "version": u.server_version},
                    "protocol_version": u.protocol_version,
                    "timeout": u.config.timeout,
                    "calls": u.calls,
                    "failures": u.failures,
                    "timeouts": u.timeouts,
                    "last_latency_ms": u.last_latency_ms,
                }
            )
        return out

    async def ping(self, name: str) -> str:
        """A live check of upstream ``name``: an MCP ping over its session (UpstreamToolError when down)."""
        upstream = self._get(name)
        session = upstream.session
        if upstream.state is not UpstreamState.CONNECTED or session is None:
            why = f": {upstream.last_error}" if upstream.last_error else ""
            raise UpstreamToolError(f"upstream {name!r} is {upstream.state.value}{why}")
        try:
            with anyio.fail_after(self._connect_timeout):
                await session.send_ping()
        except Exception as exc:
            raise UpstreamToolError(
                f"upstream {name!r} did not answer a ping: {self._describe(upstream, exc)}"
            ) from None
        return f"connected ({len(upstream.tools)} tools)"

    # ---- supervision ---------------------------------------------------------------------------
    async def _supervise(self, upstream: _Upstream) -> None:
        delay = self._backoff_initial
        while not self._closing:
            self._set_state(upstream, UpstreamState.CONNECTING)
            connects_before = upstream.connects
            try:
                reason = await self._connect_and_serve(upstream)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = self._describe(upstream, exc)
            if self._closing:
                return
            if upstream.connects > connects_before:
                delay = self._backoff_initial  # it worked for a while: start the backoff over
            self._mark_failed(upstream, reason)
            logger.warning("upstream %r is down: %s", upstream.name, reason)
            wait = min(delay, self._backoff_max) * random.uniform(0.8, 1.2)
            upstream.next_attempt_at = self._clock() + wait
            self._expire_tools(upstream)
            await self._sleep(wait)
            delay = min(delay * 2, self._backoff_max)

    async def _connect_and_serve(self, upstream: _Upstream) -> str:
        """Connect, register the tools and serve until the link is lost; returns why it ended."""
        import mcp_types as mt
        from mcp import ClientSession

        from kai_bridge.upstream.streams import WatchedReadStream

        link = _Link()
        upstream.link = link
        upstream.last_http_status = None
        async with contextlib.AsyncExitStack() as stack:
            read, write = await stack.enter_async_context(self._transport(upstream))
            watched = WatchedReadStream(
                read, on_end=lambda: self._lose(upstream, link, "the upstream closed the connection")
            )

            async def on_message(message: Any) -> None:
                if isinstance(message, mt.ToolListChangedNotification):
                    link.relist.set()
                elif isinstance(message, Exception):
                    logger.debug("upstream %r transport error: %r", upstream.name, message)

            session = await stack.enter_async_context(
                ClientSession(
                    watched,
                    write,
                    message_handler=on_message,
                    client_info=mt.Implementation(name="kai-bridge", version=_version()),
                )
            )
            with anyio.fail_after(self._connect_timeout):
                init = await session.initialize()
                tools = await _list_all(session)
            upstream.server_name = init.server_info.name
            upstream.server_version = init.server_info.version
            upstream.protocol_version = init.protocol_version
            self._sync_tools(upstream, tools)
            if link.lost.is_set():
                return link.reason or "the connection ended during start-up"
            upstream.session = session
            upstream.connects += 1
            upstream.connected_since = self._wall_clock()
            upstream.disconnected_at = None
            upstream.next_attempt_at = None
            self._set_state(upstream, UpstreamState.CONNECTED)
            logger.info(
                "upstream %r connected (%s %s, %d tools)",
                upstream.name,
                _transport_kind(upstream.config),
                _safe_target(upstream.config),
                len(upstream.tools),
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeat, upstream, link, session)
                tg.start_soon(self._follow_list_changes, upstream, link, session)
                await link.lost.wait()
                tg.cancel_scope.cancel()
            return link.reason or "the connection ended"

    @contextlib.asynccontextmanager
    async def _transport(self, upstream: _Upstream) -> AsyncIterator[TransportStreams]:
        import httpx2
        from mcp import StdioServerParameters, stdio_client
        from mcp.client.streamable_http import streamable_http_client

        config = upstream.config
        secret = upstream.secret
        if config.command is not None:
            env = dict(config.env)
            if secret is not None:
                env.setdefault(_API_KEY_ENV, secret)
            params = StdioServerParameters(command=config.command[0], args=list(config.command[1:]), env=env)
            async with stdio_client(params, errlog=self._errlog or sys.stderr) as streams:
                yield streams
            return

        async def remember_status(response: httpx2.Response) -> None:
            if response.status_code >= 400:
                upstream.last_http_status = response.status_code

        headers = {"Authorization": f"Bearer {secret}"} if secret is not None else {}
        client = httpx2.AsyncClient(
            headers=headers,
            timeout=httpx2.Timeout(max(config.timeout, self._connect_timeout) + _REGISTRY_MARGIN, read=300.0),
            event_hooks={"response": [remember_status]},
        )
        async with client, streamable_http_client(config.url or "", http_client=client) as streams:
            yield streams

    async def _heartbeat(self, upstream: _Upstream, link: _Link, session: ClientSession) -> None:
        if self._heartbeat_interval <= 0:
            return
        while True:
            await self._sleep(self._heartbeat_interval)
            try:
                with anyio.fail_after(min(self._heartbeat_interval, self._connect_timeout)):
                    await session.send_ping()
            except Exception as exc:
                self._lose(upstream, link, f"the upstream did not answer a ping: {self._describe(upstream, exc)}")
                return

    async def _follow_list_changes(self, upstream: _Upstream, link: _Link, session: ClientSession) -> None:
        while True:
            await link.relist.wait()
            link.relist = anyio.Event()
            try:
                with anyio.fail_after(self._connect_timeout):
                    tools = await _list_all(session)
            except Exception as exc:
                self._lose(upstream, link, f"listing tools after a change failed: {self._describe(upstream, exc)}")
                return
            self._sync_tools(upstream, tools)
            logger.info("upstream %r changed its tools (%d now)", upstream.name, len(upstream.tools))

    # ---- state -----------------------------------------------------------------------------------
    def _set_state(self, upstream: _Upstream, state: UpstreamState) -> None:
        if upstream.state is not state:
            upstream.state = state
            self._notify()

    def _lose(self, upstream: _Upstream, link: _Link, reason: str) -> None:
        """The link is dead (found by a call, the stream, or a ping): fail calls now, reconnect soon."""
        if link.lost.is_set() or self._closing:
            return
        link.reason = reason
        link.lost.set()
        # While still connecting, the supervisor reports the failure itself (with the real cause).
        if upstream.link is link and upstream.state is UpstreamState.CONNECTED:
            self._mark_failed(upstream, reason)

    def _mark_failed(self, upstream: _Upstream, reason: str) -> None:
        upstream.session = None
        upstream.last_error = _shorten(reason)
        if upstream.disconnected_at is None:
            upstream.disconnected_at = self._clock()
        self._set_state(upstream, UpstreamState.FAILED)

    def _describe(self, upstream: _Upstream, exc: BaseException) -> str:
        """A safe, actionable sentence for why connecting or a request failed."""
        import httpx2
        from mcp import MCPError

        leaves = [e for e in _leaves(exc) if not isinstance(e, asyncio.CancelledError)] or [exc]
        leaf = leaves[0]
        status = upstream.last_http_status
        if status in (401, 403):
            text = (
                f"the upstream refused the credentials (HTTP {status}): check the api_key "
                f"configured for upstream '{upstream.name}'"
            )
        elif isinstance(leaf, TimeoutError):
            text = f"no answer within {self._connect_timeout:g} s"
        elif isinstance(leaf, FileNotFoundError) and upstream.config.command is not None:
            text = f"cannot start '{_safe_target(upstream.config)}': command not found"
        elif isinstance(leaf, OSError) and upstream.config.command is not None:
            text = f"cannot start '{_safe_target(upstream.config)}': {leaf.strerror or leaf}"
        elif isinstance(leaf, httpx2.ConnectError | httpx2.TimeoutException):
            text = f"cannot reach {_safe_target(upstream.config)} ({leaf or type(leaf).__name__})"
        elif isinstance(leaf, MCPError):
            extra = f" (HTTP {status})" if status else ""
            text = f"{leaf.error.message} (JSON-RPC error {leaf.error.code}){extra}"
        else:
            text = f"{type(leaf).__name__}: {leaf}"
        secret = upstream.secret
        if secret:
            text = text.replace(secret, "***")
        return _shorten(text)

    # ---- tools -------------------------------------------------------------------------------------
    def _handler_for(self, upstream: _Upstream, tool_name: str) -> ToolHandler:
        handler = upstream.handlers.get(tool_name)
        if handler is None:

            async def handler(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
                return await self._call(upstream, tool_name, arguments, ctx)

            upstream.handlers[tool_name] = handler
        return handler

    def _sync_tools(self, upstream: _Upstream, listed: list[mt.Tool]) -> None:
        """Make the registry hold exactly the upstream's current tools (unchanged ones untouched)."""
        from kai_bridge.upstream.proxy import make_tool

        wanted: dict[str, Tool] = {}
        skipped: list[str] = []
        for spec in listed:
            try:
                tool = make_tool(
                    upstream=upstream.name,
                    tool=spec,
                    handler=self._handler_for(upstream, spec.name),
                    timeout=upstream.config.timeout + _REGISTRY_MARGIN,
                )
            except ValueError as exc:
                skipped.append(f"{spec.name}: {exc}")
                continue
            wanted[tool.name] = tool
        for name in [n for n in upstream.tools if n not in wanted]:
            self._remove(upstream, name)
        for name, tool in wanted.items():
            if upstream.tools.get(name) == tool:
                continue
            try:
                self._registry.add(tool, replace=name in upstream.tools)
            except ValueError as exc:
                skipped.append(f"{name}: {exc}")
                continue
            upstream.tools[name] = tool
        if skipped:
            logger.warning("upstream %r: tools not registered: %s", upstream.name, "; ".join(skipped))
        upstream.skipped = skipped

    def _remove(self, upstream: _Upstream, name: str) -> None:
        upstream.tools.pop(name, None)
        with contextlib.suppress(ToolNotFoundError):
            self._registry.remove(name)

    def _unregister_all(self, upstream: _Upstream) -> None:
        for name in list(upstream.tools):
            self._remove(upstream, name)

    def _expire_tools(self, upstream: _Upstream) -> None:
        if not upstream.tools or upstream.disconnected_at is None:
            return
        if self._clock() - upstream.disconnected_at >= self._tool_grace:
            logger.warning(
                "upstream %r down for over %g s: removing its %d tools",
                upstream.name,
                self._tool_grace,
                len(upstream.tools),
            )
            self._unregister_all(upstream)

    # ---- calls ---------------------------------------------------------------------------------------
    async def _call(
        self, upstream: _Upstream, tool_name: str, arguments: dict[str, Any], ctx: ToolContext
    ) -> dict[str, Any]:
        # Already loaded by the supervisor that connected this upstream: these are lookups.
        import httpx2
        import mcp_types as mt
        from mcp import MCPError
        from pydantic import ValidationError

        from kai_bridge.upstream.proxy import error_text, to_result

        upstream.calls += 1
        session, link = upstream.session, upstream.link
        if session is None or link is None or upstream.state is not UpstreamState.CONNECTED:
            upstream.failures += 1
            raise UpstreamToolError(self._unavailable(upstream, tool_name))
        timeout = upstream.config.timeout
        started = self._clock()
        try:
            result = await session.call_tool(
                tool_name, arguments, read_timeout_seconds=timeout, progress_callback=_progress_forwarder(ctx)
            )
        except MCPError as exc:
            upstream.failures += 1
            if exc.error.code == mt.REQUEST_TIMEOUT:
                upstream.timeouts += 1
                raise UpstreamToolError(
                    f"upstream KAI server '{upstream.name}' did not finish tool '{tool_name}' within "
                    f"{timeout:g} s (its tool invocation timeout) and the call was abandoned; retry later, "
                    "ask for less work in one call, or raise that upstream's timeout setting"
                ) from None
            if exc.error.code == mt.CONNECTION_CLOSED:
                self._lose(upstream, link, "the connection closed")
                raise UpstreamToolError(self._dropped(upstream, tool_name)) from None
            raise UpstreamToolError(
                f"upstream KAI server '{upstream.name}' refused the call to '{tool_name}': "
                f"{_shorten(exc.error.message)} (JSON-RPC error {exc.error.code})"
            ) from None
        except (RuntimeError, ValidationError) as exc:
            upstream.failures += 1
            raise UpstreamToolError(
                f"upstream KAI server '{upstream.name}' returned a result for '{tool_name}' that the bridge "
                f"cannot use ({_shorten(str(exc))})"
            ) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError, httpx2.HTTPError) as exc:
            upstream.failures += 1
            self._lose(upstream, link, self._describe(upstream, exc))
            raise UpstreamToolError(self._dropped(upstream, tool_name)) from None
        finally:
            upstream.last_latency_ms = round((self._clock() - started) * 1000, 3)
        if result.is_error:
            upstream.failures += 1
            raise UpstreamToolError(
                f"upstream KAI server '{upstream.name}' tool '{tool_name}' failed: {error_text(result)}"
            )
        return to_result(result)

    def _unavailable(self, upstream: _Upstream, tool_name: str) -> str:
        parts = [f"upstream KAI server '{upstream.name}' is not connected ({upstream.state.value}"]
        if upstream.disconnected_at is not None:
            parts.append(f", down for {max(0.0, self._clock() - upstream.disconnected_at):.0f} s")
        parts.append(")")
        if upstream.last_error:
            parts.append(f"; last error: {upstream.last_error}")
        if upstream.next_attempt_at is not None:
            parts.append(
                f"; reconnecting in the background, next attempt in "
                f"{max(0.0, upstream.next_attempt_at - self._clock()):.1f} s"
            )
        else:
            parts.append("; reconnecting in the background")
        parts.append(f". Tool '{tool_name}' was not called: try again later or use another tool")
        return "".join(parts)

    def _dropped(self, upstream: _Upstream, tool_name: str) -> str:
        return (
            f"upstream KAI server '{upstream.name}' disconnected during the call to '{tool_name}' "
            "(it may or may not have run); the bridge is reconnecting in the background, try again shortly"
        )


async def _list_all(session: ClientSession) -> list[mt.Tool]:
    import mcp_types as mt

    tools: list[mt.Tool] = []
    cursor: str | None = None
    for _ in range(_MAX_LIST_PAGES):
        page = await session.list_tools(params=mt.PaginatedRequestParams(cursor=cursor) if cursor else None)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _progress_forwarder(ctx: ToolContext) -> ProgressFnT | None:
    """A progress callback relaying upstream progress to the caller, if the caller's door can show it."""
    if type(ctx).report_progress is ToolContext.report_progress:
        return None  # the door drops progress anyway: do not ask the upstream for it

    async def forward(progress: float, total: float | None, message: str | None) -> None:
        await ctx.report_progress(progress, total, message)

    return forward


def _version() -> str:
    from kai_bridge import __version__

    return __version__
