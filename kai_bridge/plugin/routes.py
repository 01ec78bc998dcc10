"""The Coze plugin face: ``POST /plugin/tools/{name}`` over the tool registry, plus its OpenAPI file.

A thin door: it checks the Service token, reads who is calling (Coze's plugin headers), applies
the per-client rate limit, and calls the same ``ToolRegistry.call`` every door calls. Contract:

- **Auth** (Coze "Service" token): ``Authorization: Bearer <plugin_token>`` by default, or the
  bare token in the header named ``plugin_token_header``, or ``?<plugin_token_query>=<token>``
  when that is set; compared in constant time. With no token configured the face answers only
  loopback peers, and only when kai-bridge itself listens on loopback (a request that came
  through a proxy, ``X-Forwarded-For``/``Forwarded``/``X-Real-IP``, counts as not loopback).
- **Tool errors are HTTP 200** with ``error`` (what went wrong, in words the model can act on)
  and ``error_code`` (``invalid_arguments``, ``tool_failed``, ``timeout``, ``unknown_tool``), the
  same for Coze and any other caller: Coze counts only a 200 as a plugin answer and shows the
  model only declared fields, so anything else would reach the model as an opaque failure.
  Requests the face refuses before any tool runs get a 4xx with the same two fields: 401
  ``unauthorized``, 403 ``plugin_face_off``, 429 ``rate_limited`` (with ``Retry-After``), 400
  ``invalid_json``, 413 ``body_too_large``; an unknown tool is 404 ``unknown_tool``.
- **Bounded**: no call keeps its request open longer than ``wait`` seconds. A long tool (one with
  ``poll_with``, e.g. ``send_message``) goes on in the background after that and the answer is
  ``pending``: the tool and arguments that fetch its result (``get_chat_result`` + ``chat_id``).
  Other tools are stopped at ``wait`` with a ``timeout`` error.
- Null values are left out of answers (the OpenAPI file declares no nulls); the outputs of tools
  without a pydantic model (upstream KAI tools) are checked against their output schema.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import anyio.abc
import jsonschema  # type: ignore[import-untyped]  # no stubs installed; used through Any
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from kai_bridge.config import Settings
from kai_bridge.errors import ToolError, ToolInputError, ToolNotFoundError
from kai_bridge.limits import RateLimit, TokenBuckets, client_address, retry_after_header
from kai_bridge.plugin.identity import caller_from_headers
from kai_bridge.plugin.openapi import (
    PENDING_FIELD,
    TOOLS_PATH,
    build_openapi,
    check_server_url,
    drop_nulls,
    dump_json,
    dump_yaml,
    error_field,
    select_tools,
)
from kai_bridge.tools.registry import Caller, Tool, ToolContext, ToolRegistry

__all__ = ["PluginFace", "PluginOptions", "PluginToolContext", "plugin_routes"]

logger = logging.getLogger("kai_bridge.plugin")

MAX_BODY_BYTES: Final = 1024 * 1024
DOOR: Final = "Coze plugin face"
_PROXY_HEADERS: Final = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})
_JSON: Final = "application/json"
_TOOL_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,128}")


@dataclass(frozen=True, slots=True)
class PluginOptions:
    """What the face needs to know (see :meth:`from_settings`)."""

    token: str | None = field(default=None, repr=False)
    token_header: str = "Authorization"  # noqa: S105  # a header name, not a secret
    token_query: str = ""
    open_without_token: bool = True  # kai-bridge listens on loopback only
    public_url: str = ""
    tools: tuple[str, ...] = ()
    wait: float = 15.0
    rate_limit: RateLimit = field(default_factory=lambda: RateLimit(door=DOOR, per_minute=60.0, burst=10))
    max_body_bytes: int = MAX_BODY_BYTES

    @classmethod
    def from_settings(cls, settings: Settings, *, loopback: bool) -> PluginOptions:
        """The options ``settings`` describe; ``loopback``: the server listens on loopback only."""
        token = settings.plugin_token.get_secret_value() if settings.plugin_token else None
        return cls(
            token=token or None,
            token_header=settings.plugin_token_header,
            token_query=settings.plugin_token_query,
            open_without_token=loopback,
            public_url=settings.plugin_public_url,
            tools=tuple(settings.plugin_tools),
            wait=settings.plugin_wait,
            rate_limit=RateLimit(
                door=DOOR,
                per_minute=settings.plugin_rate_limit_per_minute,
                burst=settings.plugin_rate_limit_burst,
            ),
        )


class PluginToolContext(ToolContext):
    """A plugin call's context: who called (Coze's headers), no back-channel, and the poll handle."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.caller_id = caller.id
        self.poll_arguments: dict[str, Any] | None = None

    @property
    def can_report(self) -> bool:
        return False

    def offer_poll(self, arguments: dict[str, Any]) -> None:
        self.poll_arguments = dict(arguments)


class _Refused(Exception):
    """A request refused before any tool ran: becomes a 4xx with ``error`` and ``error_code``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _json_response(body: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(raw, status_code=status, media_type=_JSON, headers=headers)


def _is_loopback_peer(scope_client: tuple[str, int] | None) -> bool:
    if not scope_client:
        return False
    try:
        return ipaddress.ip_address(scope_client[0]).is_loopback
    except ValueError:
        return False


@dataclass
class _Outcome:
    result: dict[str, Any] | None = None
    error: ToolError | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)


class PluginFace:
    """The face over one registry; :meth:`routes` are its Starlette routes, :meth:`running` its lifespan."""

    def __init__(
        self,
        *,
        registry: ToolRegistry,
        options: PluginOptions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.options = options
        self.buckets = TokenBuckets(options.rate_limit, clock=clock)
        self._served = frozenset(options.tools)
        self._token = options.token.encode() if options.token else None
        self._header = options.token_header.lower().encode("latin-1")
        self._bearer = self._header == b"authorization"
        self._tasks: anyio.abc.TaskGroup | None = None
        self._running = 0
        self._idle = anyio.Event()
        self._idle.set()
        self._validators: dict[str, Any] = {}
        self._error_fields: dict[str, str] = {}
        self._documents: dict[tuple[str, tuple[str, ...]], tuple[str, str]] = {}
        registry.subscribe(self._registry_changed)

    # ---- lifecycle ---------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Where long calls go on after their request answered ``pending``; cancelled on exit."""
        async with anyio.create_task_group() as tg:
            self._tasks = tg
            try:
                yield
            finally:
                self._tasks = None
                tg.cancel_scope.cancel()

    async def drain(self) -> None:
        """Wait until no long call runs in the background (tests, benchmarks, shutdown)."""
        await self._idle.wait()

    def _registry_changed(self) -> None:
        self._validators.clear()
        self._error_fields.clear()
        self._documents.clear()

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{TOOLS_PATH}/{{name}}", self._call, methods=["POST"]),
            Route("/plugin/openapi.yaml", self._openapi_yaml, methods=["GET"]),
            Route("/plugin/openapi.json", self._openapi_json, methods=["GET"]),
        ]

    # ---- checks ------------------------------------------------------------------------------
    def _check_open(self, request: Request) -> None:
        if self._token is not None:
            return
        if not self.options.open_without_token:
            raise _Refused(
                403, "plugin_face_off",
                "the Coze plugin face is off: kai-bridge listens beyond loopback and no plugin_token is set "
                "(set KAI_BRIDGE_PLUGIN_TOKEN, e.g. `openssl rand -hex 32`)",
            )
        proxied = any(name in _PROXY_HEADERS for name, _ in request.scope["headers"])
        if proxied or not _is_loopback_peer(request.scope.get("client")):
            raise _Refused(
                403, "plugin_face_off",
                "the Coze plugin face answers only local callers while no plugin_token is set "
                "(set KAI_BRIDGE_PLUGIN_TOKEN before exposing it through a tunnel or proxy)",
            )

    def _check_token(self, request: Request) -> None:
        expected = self._token
        if expected is None:
            return
        presented: bytes | None = None
        for name, value in request.scope["headers"]:
            if name == self._header:
                presented = value
                break
        if presented is not None and self._bearer:
            scheme, _, credential = presented.partition(b" ")
            presented = credential.strip() if scheme.lower() == b"bearer" else b""
        if presented is None and self.options.token_query:
            query = request.query_params.get(self.options.token_query)
            presented = query.encode() if query is not None else None
        # compare_digest: the time taken does not reveal how much of the token matched.
        if presented is not None and hmac.compare_digest(presented, expected):
            return
        where = f"{self.options.token_header} header" + (
            f" or the {self.options.token_query} query parameter" if self.options.token_query else ""
        )
        reason = "missing" if presented is None else "invalid"
        headers = {"WWW-Authenticate": 'Bearer realm="kai-bridge plugin"'} if self._bearer else None
        raise _Refused(401, "unauthorized", f"{reason} plugin token (send it in the {where})", headers)

    def _check_rate(self, request: Request, caller: Caller) -> None:
        key = caller.id or client_address(request.scope)
        wait = self.buckets.take(key)
        if wait > 0:
            raise _Refused(
                429, "rate_limited", self.options.rate_limit.message(retry_after=wait),
                {"Retry-After": retry_after_header(wait)},
            )

    def _is_served(self, name: str) -> bool:
        """Every tool when ``tools`` is empty; else those named and the tools they poll with."""
        if not self._served or name in self._served:
            return True
        return any(s in self.registry and self.registry.get(s).poll_with == name for s in self._served)

    def _tool(self, name: str) -> Tool:
        if name in self.registry and self._is_served(name):
            return self.registry.get(name)
        names = [t.name for t in self.registry.list() if self._is_served(t.name)]
        listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise _Refused(404, "unknown_tool", f"unknown tool '{name}'; available tools: {listed or 'none'}")

    async def _arguments(self, request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.options.max_body_bytes:
            raise _Refused(413, "body_too_large", f"the request body is larger than {self.options.max_body_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.options.max_body_bytes:
                raise _Refused(413, "body_too_large", f"the request body is larger than {self.options.max_body_bytes} bytes")
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise _Refused(400, "invalid_json", "the request body is not JSON: send the tool's arguments as a JSON object") from None

    # ---- the call ----------------------------------------------------------------------------
    async def _call(self, request: Request) -> Response:
        began = time.perf_counter()
        name = request.path_params["name"]
        caller = caller_from_headers(request.scope["headers"])
        try:
            self._check_open(request)
            self._check_token(request)
            self._check_rate(request, caller)
            tool = self._tool(name)
            arguments = await self._arguments(request)
        except _Refused as refused:
            self._log(name, caller, refused.code, began, level=logging.WARNING)
            return _json_response(
                {"error": refused.message, "error_code": refused.code}, status=refused.status, headers=refused.headers
            )
        ctx = PluginToolContext(caller)
        if tool.poll_with:
            body, outcome = await self._call_long(tool, arguments, ctx)
        else:
            body, outcome = await self._call_bounded(tool, arguments, ctx)
        self._log(name, caller, outcome, began)
        return _json_response(body)

    async def _call_bounded(self, tool: Tool, arguments: Any, ctx: PluginToolContext) -> tuple[dict[str, Any], str]:
        with anyio.move_on_after(self.options.wait) as scope:
            try:
                result = await self.registry.call(tool.name, arguments, ctx=ctx)
            except ToolError as exc:
                return self._error(tool, exc), self._code(exc)
        if scope.cancelled_caught:
            return self._timeout(tool), "timeout"
        return self._success(tool, result)

    async def _call_long(self, tool: Tool, arguments: Any, ctx: PluginToolContext) -> tuple[dict[str, Any], str]:
        tasks = self._tasks
        if tasks is None:
            raise RuntimeError("the plugin face is not running: enter PluginFace.running() in the app's lifespan")
        outcome = _Outcome()

        async def run() -> None:
            self._running += 1
            self._idle = anyio.Event() if self._running == 1 else self._idle
            try:
                with outcome.scope:
                    outcome.result = await self.registry.call(tool.name, arguments, ctx=ctx)
            except ToolError as exc:
                outcome.error = exc
            finally:
                outcome.done.set()
                self._running -= 1
                if self._running == 0:
                    self._idle.set()

        tasks.start_soon(run)
        with anyio.move_on_after(self.options.wait):
            await outcome.done.wait()
        if outcome.done.is_set():
            if outcome.error is not None:
                return self._error(tool, outcome.error), self._code(outcome.error)
            assert outcome.result is not None
            return self._success(tool, outcome.result)
        if ctx.poll_arguments is None:
            # Not even started (e.g. waiting for the Coze quota): nothing to hand out, so nothing goes on.
            outcome.scope.cancel()
            return self._timeout(tool), "timeout"
        poll = tool.poll_with or ""
        shown = ", ".join(f"{k}={v}" for k, v in ctx.poll_arguments.items())
        pending = {
            "status": "in_progress",
            "tool": poll,
            "arguments": ctx.poll_arguments,
            "message": f"{tool.name} is still running after {self.options.wait:g} s; call {poll} with {shown} "
            "in a few seconds to get the result",
        }
        return {PENDING_FIELD: pending}, "pending"

    # ---- answers -----------------------------------------------------------------------------
    def _error_field(self, tool: Tool) -> str:
        found = self._error_fields.get(tool.name)
        if found is None:
            props = (tool.output_schema or {}).get("properties", {})
            found = self._error_fields[tool.name] = error_field(props, tool.output_schema)
        return found

    @staticmethod
    def _code(exc: ToolError) -> str:
        if isinstance(exc, ToolInputError):
            return "invalid_arguments"
        if isinstance(exc, ToolNotFoundError):
            return "unknown_tool"
        if "timed out" in str(exc):
            return "timeout"
        return "tool_failed"

    def _error(self, tool: Tool, exc: ToolError) -> dict[str, Any]:
        return {self._error_field(tool): str(exc), "error_code": self._code(exc)}

    def _timeout(self, tool: Tool) -> dict[str, Any]:
        message = f"tool '{tool.name}' did not finish within {self.options.wait:g} s (the plugin call limit) and was stopped"
        return {self._error_field(tool): message, "error_code": "timeout"}

    def _success(self, tool: Tool, result: dict[str, Any]) -> tuple[dict[str, Any], str]:
        if tool.input_model is None and tool.output_schema is not None:
            validator = self._validators.get(tool.name)
            if validator is None:
                cls = jsonschema.validators.validator_for(tool.output_schema, default=jsonschema.Draft202012Validator)
                validator = self._validators[tool.name] = cls(tool.output_schema)
            problem = next(iter(validator.iter_errors(result)), None)
            if problem is not None:
                message = f"tool '{tool.name}' returned a result that does not match its output schema: {problem.message}"
                return {self._error_field(tool): message[:2000], "error_code": "tool_failed"}, "tool_failed"
        return drop_nulls(result), "ok"

    def _log(self, name: str, caller: Caller, outcome: str, began: float, *, level: int = logging.INFO) -> None:
        if logger.isEnabledFor(level):
            ms = (time.perf_counter() - began) * 1000
            shown = name if _TOOL_NAME.fullmatch(name) else repr(name[:80])  # a path can carry %0A: no forged lines
            logger.log(level, "plugin call %s by %s: %s in %.1f ms", shown, caller.describe(), outcome, ms)

    # ---- the OpenAPI file --------------------------------------------------------------------
    def _document(self, request: Request) -> tuple[str, str]:
        self._check_open(request)
        params = request.query_params
        requested = [n.strip() for n in params.get("tools", "").split(",") if n.strip()]
        hidden = [n for n in requested if n in self.registry and not self._is_served(n)]
        if hidden:
            raise _Refused(400, "invalid_arguments", f"tool(s) {', '.join(hidden)} are not served by this plugin face "
                           "(plugin_tools)")
        names = tuple(requested or self.options.tools)
        url = params.get("server_url") or self.options.public_url or f"{request.url.scheme}://{request.url.netloc}"
        key = (url, names)
        cached = self._documents.get(key)
        if cached is not None:
            return cached
        try:
            check_server_url(url)
            tools = select_tools(self.registry, list(names))
        except ValueError as exc:
            hint = "" if params.get("server_url") or self.options.public_url else (
                " (set plugin_public_url, KAI_BRIDGE_PLUGIN_PUBLIC_URL, or pass ?server_url=https://your.domain)"
            )
            raise _Refused(400, "invalid_arguments", f"{exc}{hint}") from None
        doc, skipped = build_openapi(tools, server_url=url, wait=self.options.wait, registry=self.registry)
        for line in skipped:
            logger.warning("plugin OpenAPI: tool left out: %s", line)
        texts = (dump_yaml(doc), dump_json(doc))
        self._documents[key] = texts
        return texts

    async def _openapi_yaml(self, request: Request) -> Response:
        return self._openapi(request, index=0, media_type="application/yaml")

    async def _openapi_json(self, request: Request) -> Response:
        return self._openapi(request, index=1, media_type=_JSON)

    def _openapi(self, request: Request, *, index: int, media_type: str) -> Response:
        try:
            wait = self.buckets.take(client_address(request.scope))
            if wait > 0:
                raise _Refused(
                    429, "rate_limited", self.options.rate_limit.message(retry_after=wait),
                    {"Retry-After": retry_after_header(wait)},
                )
            text = self._document(request)[index]
        except _Refused as refused:
            return _json_response(
                {"error": refused.message, "error_code": refused.code}, status=refused.status, headers=refused.headers
            )
        return Response(text, media_type=media_type)


def plugin_routes(*, registry: ToolRegistry, options: PluginOptions) -> tuple[PluginFace, Sequence[BaseRoute]]:
    """The face over ``registry`` and its routes; enter ``face.running()`` in the app's lifespan."""
    face = PluginFace(registry=registry, options=options)
    return face, face.routes()
