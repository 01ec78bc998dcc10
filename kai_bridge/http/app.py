"""The Starlette app of ``kai-bridge serve``: Streamable HTTP MCP plus health, readiness, diagnostics.

One port serves everything. ``/mcp`` (``settings.mcp_path``) is the SDK's Streamable HTTP
transport for both protocol eras, behind the bearer check and the Host/Origin allowlists;
the operator routes are never authenticated and never show a secret. The session manager
runs in this app's lifespan (a mounted sub-app's lifespan would never run).

Under ``kai-bridge stdio`` the same routes minus ``/mcp`` form the sidecar
(:func:`build_sidecar_app`). ``extra_routes`` is how other areas (webhook, metrics)
add theirs. The Coze plugin face (``/plugin/...``, :mod:`kai_bridge.plugin`) is served by
``serve`` only: a stdio process lives and dies with its desktop agent, while Coze needs one
stable public endpoint. ``/mcp`` has a per-client rate limit (:mod:`kai_bridge.limits`).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final, Protocol

import anyio
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from kai_bridge import __version__
from kai_bridge.config import Settings
from kai_bridge.http.security import BearerAuthMiddleware, check_http_security, is_loopback, transport_security
from kai_bridge.limits import RateLimit, RateLimitMiddleware, TokenBuckets
from kai_bridge.mcp.knowledge import extensions_for
from kai_bridge.mcp.server import KaiMcpServer, McpExtension, build_mcp_server
from kai_bridge.plugin import PluginOptions, plugin_routes
from kai_bridge.tools.registry import ToolRegistry

__all__ = ["HttpRuntime", "build_app", "build_sidecar_app", "operator_routes"]

logger = logging.getLogger(__name__)

PING_TIMEOUT: Final = 5.0
SANDBOX_WARNING: Final = (
    "NOT CONNECTED TO COZE: the embedded sandbox answers as the Coze upstream (no Coze credentials are "
    "configured). Set coze_app_id/coze_kid/coze_private_key_path or coze_pat to use real Coze."
)


class HttpRuntime(Protocol):
    """What the HTTP app needs from the composition root (``kai_bridge.runtime.Runtime``)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def registry(self) -> ToolRegistry: ...

    @property
    def coze(self) -> Any: ...

    @property
    def store(self) -> Any: ...

    @property
    def knowledge(self) -> Any: ...

    @property
    def upstreams(self) -> Any: ...

    @property
    def sandbox(self) -> Any: ...


async def _maybe_await(value: object) -> None:
    if inspect.isawaitable(value):
        await value


def _pings(runtime: HttpRuntime) -> dict[str, Callable[[], Awaitable[None]]]:
    async def coze() -> None:
        await runtime.coze.ping()

    async def store() -> None:
        await runtime.store.ping()

    async def knowledge() -> None:
        ping = getattr(runtime.knowledge, "ping", None)
        if ping is not None:
            await _maybe_await(ping())
            return
        # A base without a ping: answering a fixed question proves it is loaded and usable.
        await _maybe_await(runtime.knowledge.query("espresso", top_k=1, language="en"))

    return {"coze": coze, "store": store, "knowledge": knowledge}


def _coze_summary(runtime: HttpRuntime) -> dict[str, Any]:
    settings = runtime.settings
    summary: dict[str, Any] = {"auth_mode": settings.auth_mode}
    sandbox = runtime.sandbox
    if sandbox is not None:
        summary["upstream"] = "embedded sandbox"
        summary["api_base"] = getattr(sandbox, "base_url", None)
    else:
        summary["upstream"] = "coze"
        summary["api_base"] = settings.coze_api_base
    return summary


def operator_routes(runtime: HttpRuntime) -> list[BaseRoute]:
    """/health, /ready, /diagnostics/coze and /diagnostics/kai for ``runtime``."""
    started = time.time()
    pings = _pings(runtime)

    async def health(request: Request) -> JSONResponse:
        body: dict[str, Any] = {
            "status": "ok",
            "service": "kai-bridge",
            "version": __version__,
            "uptime_s": round(time.time() - started, 1),
            "coze": _coze_summary(runtime),
            "tools": len(runtime.registry),
        }
        if runtime.sandbox is not None:
            body["warning"] = SANDBOX_WARNING
        return JSONResponse(body)

    async def ready(request: Request) -> JSONResponse:
        checks: dict[str, dict[str, Any]] = {}

        async def check(name: str, ping: Callable[[], Awaitable[None]]) -> None:
            begun = time.perf_counter()
            try:
                with anyio.fail_after(PING_TIMEOUT):
                    await ping()
            except TimeoutError:
                checks[name] = {"ok": False, "error": f"no answer within {PING_TIMEOUT:g} s"}
            except Exception as exc:
                # Messages of kai-bridge errors are safe to show; others are reduced to their type.
                text = str(exc) if exc.__class__.__module__.startswith("kai_bridge") else type(exc).__name__
                checks[name] = {"ok": False, "error": text}
            else:
                checks[name] = {"ok": True}
            checks[name]["ms"] = round((time.perf_counter() - begun) * 1000, 1)

        async with anyio.create_task_group() as tg:
            for name, ping in pings.items():
                tg.start_soon(check, name, ping)
        ok = all(result["ok"] for result in checks.values())
        return JSONResponse({"ready": ok, "checks": dict(sorted(checks.items()))}, status_code=200 if ok else 503)

    async def diagnostics_coze(request: Request) -> JSONResponse:
        body: dict[str, Any] = {"summary": _coze_summary(runtime)}
        diagnostics = getattr(runtime.coze, "diagnostics", None)
        if diagnostics is not None:
            body["client"] = diagnostics()
        sandbox = runtime.sandbox
        if sandbox is not None:
            body["sandbox"] = {
                "base_url": getattr(sandbox, "base_url", None),
                "workspace_id": getattr(sandbox, "workspace_id", None),
                "bot_id": getattr(sandbox, "bot_id", None),
                "warning": SANDBOX_WARNING,
            }
        return JSONResponse(body)

    async def diagnostics_kai(request: Request) -> JSONResponse:
        upstreams = runtime.upstreams
        states: Any = []
        if upstreams is not None and hasattr(upstreams, "diagnostics"):
            states = upstreams.diagnostics()
        tools = [
            {"name": tool.name, "title": tool.title, "read_only": tool.annotations.read_only}
            for tool in runtime.registry.list()
        ]
        return JSONResponse({"upstreams": states, "tools": tools})

    return [
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/diagnostics/coze", diagnostics_coze, methods=["GET"]),
        Route("/diagnostics/kai", diagnostics_kai, methods=["GET"]),
    ]


def _mcp_endpoint(server: KaiMcpServer, settings: Settings) -> tuple[ASGIApp, StreamableHTTPSessionManager]:
    manager = StreamableHTTPSessionManager(
        app=server,
        event_store=server.event_store,
        retry_interval=server.retry_interval,
        json_response=settings.mcp_json_response,
        stateless=settings.mcp_stateless,
        security_settings=transport_security(settings),
    )
    endpoint: ASGIApp = StreamableHTTPASGIApp(manager)
    limit = RateLimit(door="MCP endpoint", per_minute=settings.mcp_rate_limit_per_minute,
                      burst=settings.mcp_rate_limit_burst)
    if limit.enabled:  # inside the bearer check: only an accepted token names a client
        endpoint = RateLimitMiddleware(endpoint, buckets=TokenBuckets(limit))
    token = settings.mcp_auth_token.get_secret_value() if settings.mcp_auth_token else ""
    if token:
        endpoint = BearerAuthMiddleware(endpoint, token=token)
    return endpoint, manager


def build_app(
    runtime: HttpRuntime,
    *,
    extensions: Sequence[McpExtension] = (),
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The ``serve`` app: MCP at ``settings.mcp_path`` plus the operator routes and ``extra_routes``.

    The MCP server gets the knowledge resources/prompt first, then ``extensions`` (tests).

    Raises ConfigError when the settings would expose /mcp beyond loopback without a token.
    """
    settings = runtime.settings
    check_http_security(settings)
    server = build_mcp_server(runtime.registry, extensions=[*extensions_for(runtime.knowledge), *extensions])
    endpoint, manager = _mcp_endpoint(server, settings)
    loopback = is_loopback(settings.server_host)
    face, plugin = plugin_routes(registry=runtime.registry, options=PluginOptions.from_settings(settings, loopback=loopback))
    if settings.plugin_token is None and not loopback:
        logger.warning("the Coze plugin face (/plugin/...) is off: set KAI_BRIDGE_PLUGIN_TOKEN to serve it beyond loopback")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run(), face.running():
            yield

    routes: list[BaseRoute] = [
        Route(settings.mcp_path, endpoint=endpoint), *operator_routes(runtime), *plugin, *extra_routes
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.mcp_server = server
    app.state.plugin_face = face
    return app


def build_sidecar_app(runtime: HttpRuntime, *, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The ``stdio`` sidecar: the operator routes (and ``extra_routes``) without /mcp."""
    return Starlette(routes=[*operator_routes(runtime), *extra_routes])
