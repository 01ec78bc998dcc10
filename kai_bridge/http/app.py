"""The Starlette app of ``kai-bridge serve``: Streamable HTTP MCP plus health, readiness, diagnostics.

One port serves everything. ``/mcp`` (``settings.mcp_path``) is the SDK's Streamable HTTP
transport for both protocol eras, behind the bearer check, with bounded sessions. Every route
is behind the exact Host/Origin allowlists; ``/diagnostics/*`` (they show configuration) need
the admin token beyond loopback; ``/health`` and ``/ready`` are open and show no configuration
(see :mod:`kai_bridge.http.security`). ``POST /webhook/coze`` (the webhook door) authenticates
each request itself (Coze's signature or the webhook Bearer token). ``/ready`` and the other health readers read the checks
the composition root declared (``runtime.health``). The session manager runs in this app's
lifespan (a mounted sub-app's lifespan would never run).

Under ``kai-bridge stdio`` the same routes minus ``/mcp`` form the sidecar
(:func:`build_sidecar_app`). ``extra_routes`` is how other areas (webhook, metrics,
plugin face) add theirs. The observability routes (``/``, ``/metrics``, ``/monitoring``) and
the HTTP metrics middleware come with both apps; :data:`CONFIGURATION_ROUTES` lists the
operator routes that show configuration (to protect beyond loopback).
The Coze plugin face (``/plugin/...``, :mod:`kai_bridge.plugin`) is served by ``serve`` only: a
stdio process lives and dies with its desktop agent, while Coze needs one stable public endpoint.
``/mcp`` has a per-client rate limit (:mod:`kai_bridge.limits`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from kai_bridge.config import Settings
from kai_bridge.http.security import (
    BearerAuthMiddleware,
    OperatorAccess,
    check_http_security,
    is_loopback,
    mcp_tokens,
    security_middleware,
    transport_security,
)
from kai_bridge.http.sessions import SessionLimitMiddleware
from kai_bridge.limits import RateLimit, RateLimitMiddleware, TokenBuckets
from kai_bridge.mcp.events import events_extension
from kai_bridge.mcp.knowledge import extensions_for
from kai_bridge.mcp.server import KaiMcpServer, McpExtension, build_mcp_server
from kai_bridge.observability import (
    CONFIGURATION_PATHS,
    SANDBOX_WARNING,
    HttpMetricsMiddleware,
    LandingInfo,
    liveness,
    observability_routes,
)
from kai_bridge.plugin import PluginOptions, plugin_routes
from kai_bridge.runtime import Runtime
from kai_bridge.urls import redact_url
from kai_bridge.webhooks.http import webhook_routes

__all__ = ["CONFIGURATION_ROUTES", "build_app", "build_sidecar_app", "operator_routes"]

logger = logging.getLogger(__name__)

PING_TIMEOUT: Final = 5.0
#: Operator routes that show configuration (addresses, names, versions, error texts; never a secret):
#: the ones to put behind an admin token beyond loopback.
CONFIGURATION_ROUTES: Final = ("/diagnostics/coze", "/diagnostics/kai", *CONFIGURATION_PATHS)


def _coze_summary(runtime: Runtime) -> dict[str, Any]:
    summary: dict[str, Any] = {"auth_mode": runtime.settings.auth_mode}
    if runtime.sandbox is not None:
        summary["upstream"] = "embedded sandbox"
        summary["api_base"] = runtime.sandbox.base_url
    else:
        summary["upstream"] = "coze"
        summary["api_base"] = redact_url(runtime.settings.coze_api_base)
    return summary


def operator_routes(runtime: Runtime) -> list[BaseRoute]:
    """/health, /ready, /diagnostics/coze and /diagnostics/kai for ``runtime``."""
    access = OperatorAccess.from_settings(runtime.settings)

    async def health(request: Request) -> JSONResponse:
        # The seed's shape from the last background checks and live state: never pings (liveness).
        body = liveness(runtime.observability.sources, explain=access.decide(request.scope) == "allowed")
        body["tools"] = len(runtime.registry)
        return JSONResponse(body)

    async def ready(request: Request) -> JSONResponse:
        results = await runtime.health.run(timeout=PING_TIMEOUT)
        checks: dict[str, dict[str, Any]] = {}
        # The texts name configuration (targets, modes): only for whoever may see /diagnostics.
        explain = access.decide(request.scope) == "allowed"
        for result in results:
            entry: dict[str, Any] = {"ok": result.ok, "critical": result.critical, "ms": result.ms}
            if explain:
                entry["detail" if result.ok else "error"] = result.detail
            checks[result.name] = entry
        ok = all(result.ok for result in results if result.critical)
        degraded = [result.name for result in results if not result.ok and not result.critical]
        body: dict[str, Any] = {"ready": ok, "checks": dict(sorted(checks.items()))}
        if degraded:
            body["degraded"] = degraded
        return JSONResponse(body, status_code=200 if ok else 503)

    async def diagnostics_coze(request: Request) -> JSONResponse:
        body: dict[str, Any] = {"summary": _coze_summary(runtime), "client": runtime.coze.diagnostics()}
        sandbox = runtime.sandbox
        if sandbox is not None:
            body["sandbox"] = {
                "base_url": sandbox.base_url,
                "workspace_id": sandbox.workspace_id,
                "bot_id": sandbox.bot_id,
                "warning": SANDBOX_WARNING,
            }
        body["webhook"] = await runtime.webhooks.diagnostics()
        body["bots"] = await runtime.webhooks.bots.snapshot()
        return JSONResponse(body)

    async def diagnostics_kai(request: Request) -> JSONResponse:
        tools = [
            {"name": tool.name, "title": tool.title, "read_only": tool.annotations.read_only}
            for tool in runtime.registry.list()
        ]
        return JSONResponse({"upstreams": runtime.upstreams.diagnostics(), "tools": tools})

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
        session_idle_timeout=settings.mcp_session_idle_timeout,
        max_sessions=settings.mcp_max_sessions,
    )
    endpoint: ASGIApp = SessionLimitMiddleware(
        StreamableHTTPASGIApp(manager),
        max_sessions=settings.mcp_max_sessions,
        idle_timeout=settings.mcp_session_idle_timeout,
    )
    limit = RateLimit(door="MCP endpoint", per_minute=settings.mcp_rate_limit_per_minute,
                      burst=settings.mcp_rate_limit_burst)
    if limit.enabled:  # inside the bearer check: only an accepted token names a client
        endpoint = RateLimitMiddleware(endpoint, buckets=TokenBuckets(limit))
    tokens = mcp_tokens(settings)
    if tokens:
        endpoint = BearerAuthMiddleware(endpoint, tokens=tokens)
    return endpoint, manager


def build_app(
    runtime: Runtime,
    *,
    extensions: Sequence[McpExtension] = (),
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    """The ``serve`` app: MCP at ``settings.mcp_path`` plus the operator routes and ``extra_routes``.

    The MCP server gets the knowledge resources/prompt first, then the webhook events resource,
    then ``extensions`` (tests).

    Raises ConfigError when the settings would expose /mcp beyond loopback without a token.
    """
    settings = runtime.settings
    check_http_security(settings)
    server = build_mcp_server(
        runtime.registry,
        extensions=[*extensions_for(runtime.knowledge), events_extension(runtime.webhooks.feed), *extensions],
    )
    endpoint, manager = _mcp_endpoint(server, settings)
    loopback = is_loopback(settings.server_host)
    face, plugin = plugin_routes(registry=runtime.registry, options=PluginOptions.from_settings(settings, loopback=loopback))
    if settings.plugin_token is None and not loopback:
        logger.warning("the Coze plugin face (/plugin/...) is off: set KAI_BRIDGE_PLUGIN_TOKEN to serve it beyond loopback")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run(), face.running():
            yield

    landing = LandingInfo(mcp_path=settings.mcp_path, mcp_token_required=bool(settings.mcp_auth_token))
    routes: list[BaseRoute] = [
        Route(settings.mcp_path, endpoint=endpoint),
        *operator_routes(runtime),
        *observability_routes(runtime.observability, landing=landing),
        *webhook_routes(receiver=runtime.webhooks.receiver, count=runtime.observability.webhook_event),
        *plugin,
        *extra_routes,
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=_middleware(runtime, routes))
    app.state.mcp_server = server
    app.state.plugin_face = face
    return app


def _middleware(runtime: Runtime, routes: Sequence[BaseRoute]) -> list[Middleware]:
    # Metrics outermost, so the requests the security checks refuse (421, 403, 401) are counted too.
    return [
        Middleware(HttpMetricsMiddleware, metrics=runtime.observability.metrics, routes=routes),
        *security_middleware(runtime.settings, protected_paths=CONFIGURATION_PATHS),
    ]


def build_sidecar_app(runtime: Runtime, *, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The ``stdio`` sidecar: the operator, observability and webhook routes (and ``extra_routes``) without /mcp."""
    landing = LandingInfo(mcp_path=None, mcp_token_required=False)
    routes = [*operator_routes(runtime), *observability_routes(runtime.observability, landing=landing),
              *webhook_routes(receiver=runtime.webhooks.receiver, count=runtime.observability.webhook_event), *extra_routes]
    return Starlette(routes=routes, middleware=_middleware(runtime, routes))
