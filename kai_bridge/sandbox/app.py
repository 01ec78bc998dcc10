"""Assembles the sandbox's Starlette app from its parts and route modules.

Outermost, a small ASGI middleware gives every response an ``X-Tt-Logid`` header and turns any
unexpected exception into Coze's ``{code: 5000, msg}`` JSON, so a client never sees a bare 500
page or a traceback. Unknown paths and wrong methods answer Coze-style JSON too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import anyio.to_thread
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kai_bridge.sandbox.answers import Answerer, default_answerer
from kai_bridge.sandbox.api_admin import admin_routes
from kai_bridge.sandbox.api_apps import api_app_routes, callback_admin_routes
from kai_bridge.sandbox.api_bots import bot_routes
from kai_bridge.sandbox.api_chat import chat_routes
from kai_bridge.sandbox.api_conversations import conversation_routes
from kai_bridge.sandbox.api_oauth import oauth_routes
from kai_bridge.sandbox.api_plugins import plugin_admin_routes
from kai_bridge.sandbox.api_publish import publish_routes
from kai_bridge.sandbox.api_users import user_routes
from kai_bridge.sandbox.auth import AuthService
from kai_bridge.sandbox.bots import OWNER_USER_ID
from kai_bridge.sandbox.callbacks import CallbackHub
from kai_bridge.sandbox.config import SandboxConfig
from kai_bridge.sandbox.context import SandboxContext
from kai_bridge.sandbox.engine import ChatEngine
from kai_bridge.sandbox.faults import FaultEngine, RouteFaultMiddleware
from kai_bridge.sandbox.plugins import PluginCatalog
from kai_bridge.sandbox.routing import RouteSpec, logid_of, wrap
from kai_bridge.sandbox.state import SandboxState
from kai_bridge.sandbox.store import Store
from kai_bridge.sandbox.wire import LOGID_SCOPE_KEY, ApiError, IdGenerator, dumps, error_response, new_logid

__all__ = ["create_app", "sandbox_context"]

logger = logging.getLogger(__name__)


TOO_LARGE_MSG = "The request body is too large"


class LogidMiddleware:
    """Adds ``X-Tt-Logid``, caps the request body size (413 with a Coze envelope), and answers
    5000 JSON for any unhandled exception (never re-raised)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = 4 * 1024 * 1024) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        logid = new_logid()
        scope[LOGID_SCOPE_KEY] = logid
        header = (b"x-tt-logid", logid.encode("ascii"))
        started = False
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _send_json(send, 413, {"code": 4000, "msg": TOO_LARGE_MSG, "detail": {"logid": logid}}, header)
            return
        if declared is None:
            receive = _limited(receive, self.max_body_bytes)

        async def send_with_logid(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_logid)
        except httpx.TransportError:
            raise  # an injected in-process "dropped connection" must reach the client as such
        except ClientDisconnect:
            # The client gave up (its timeout) before its request was read: nobody to answer.
            logger.info("sandbox: %s %s: the client went away (logid %s)", scope.get("method"), scope.get("path"),
                        logid)
        except Exception:
            logger.exception(
                "sandbox: unhandled error on %s %s (logid %s)", scope.get("method"), scope.get("path"), logid
            )
            if started:
                return  # mid-stream: the server closes the connection, as a real failure would
            body = {"code": 5000, "msg": "Server internal error, please retry later", "detail": {"logid": logid}}
            await _send_json(send, 500, body, header)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _limited(receive: Receive, limit: int) -> Receive:
    """A ``receive`` that refuses a chunked body once it grows past ``limit`` bytes."""
    total = 0

    async def limited_receive() -> Message:
        nonlocal total
        message = await receive()
        if message["type"] == "http.request":
            total += len(message.get("body", b""))
            if total > limit:
                raise ApiError(4000, TOO_LARGE_MSG, status=413)
        return message

    return limited_receive


async def _send_json(send: Send, status: int, body: dict[str, object], logid_header: tuple[bytes, bytes]) -> None:
    raw = dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                logid_header,
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw, "more_body": False})


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    logid = logid_of(request)
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        return error_response(
            4000,
            f"Method {request.method} is not allowed for {request.url.path}; allowed: {allow}",
            logid=logid,
            status=405,
            headers={"Allow": allow} if allow else None,
        )
    if exc.status_code == 404:
        return error_response(4200, f"No such API: {request.method} {request.url.path}", logid=logid, status=404)
    return error_response(4000, str(exc.detail), logid=logid, status=exc.status_code)


def _build_routes(ctx: SandboxContext) -> list[Route]:
    specs: list[RouteSpec] = [
        *oauth_routes(ctx),
        *bot_routes(ctx),
        *conversation_routes(ctx),
        *chat_routes(ctx),
        *user_routes(ctx),
        *api_app_routes(ctx),
        *publish_routes(ctx),
    ]
    routes = [
        Route(
            spec.path,
            wrap(ctx, spec),
            methods=list(spec.methods),
            name=spec.name,
            middleware=[Middleware(RouteFaultMiddleware, name=spec.name, faults=ctx.faults, state=ctx.state)],
        )
        for spec in specs
    ]
    if ctx.config.admin_enabled:
        # Admin routes are never subject to faults: a 100% error rule must stay removable.
        routes.extend(
            Route(spec.path, wrap(ctx, spec), methods=list(spec.methods), name=spec.name)
            for spec in [*admin_routes(ctx), *callback_admin_routes(ctx), *plugin_admin_routes(ctx)]
        )
    return routes


def create_app(
    config: SandboxConfig,
    *,
    answerer: Answerer | None = None,
    clock: Callable[[], float] | None = None,
) -> Starlette:
    """A Coze-compatible ASGI app; ``answerer`` defaults to :func:`default_answerer`.

    ``clock`` (seconds since the epoch) is injectable so tests can expire tokens without waiting.
    The app's parts are reachable with :func:`sandbox_context`. The plugins of
    ``config.plugins`` are imported here (PluginImportError names the Coze rule a file breaks).
    """
    now = clock or time.time
    state = SandboxState()
    ids = IdGenerator()
    store = Store(ids=ids, clock=now, max_conversations=config.max_conversations)
    chosen = answerer if answerer is not None else default_answerer()
    plugins = PluginCatalog(ids=store.ids, timeout=config.plugin_timeout)
    for source in config.plugins:
        plugins.import_plugin(source.document, auth=source.auth, tool=source.tool)
    ctx = SandboxContext(
        config=config,
        clock=now,
        state=state,
        auth=AuthService(config=config, clock=now),
        store=store,
        engine=ChatEngine(store=store, state=state, answerer=chosen, config=config, plugins=plugins),
        faults=FaultEngine(rules=config.faults, seed=config.seed),
        answerer=chosen,
        callbacks=CallbackHub(
            ids=ids,
            state=state,
            account_id=OWNER_USER_ID,
            timeout=config.callback_timeout,
            retry_delays=config.callback_retry_delays,
            clock=now,
        ),
        plugins=plugins,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        warm_up = getattr(chosen, "warm_up", None)
        warming = (
            asyncio.get_running_loop().create_task(anyio.to_thread.run_sync(warm_up)) if callable(warm_up) else None
        )
        try:
            yield
        finally:
            if warming is not None:
                with contextlib.suppress(Exception):
                    await warming
            await ctx.engine.aclose()
            await ctx.callbacks.aclose()
            await plugins.aclose()

    app = Starlette(
        routes=_build_routes(ctx),
        middleware=[Middleware(LogidMiddleware, max_body_bytes=config.max_body_bytes)],
        exception_handlers={HTTPException: _http_exception},
        lifespan=lifespan,
    )
    app.state.sandbox = ctx
    return app


def sandbox_context(app: Starlette) -> SandboxContext:
    ctx = getattr(app.state, "sandbox", None)
    if not isinstance(ctx, SandboxContext):
        raise TypeError("this Starlette app was not built by kai_bridge.sandbox.create_app")
    return ctx
