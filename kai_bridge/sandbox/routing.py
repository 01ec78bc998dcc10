"""Shared plumbing for the sandbox's route modules: auth wrapper, body/param parsing, SSE replies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from kai_bridge.sandbox.auth import Principal
from kai_bridge.sandbox.context import SandboxContext
from kai_bridge.sandbox.wire import LOGID_SCOPE_KEY, ApiError, envelope, error_response, new_logid

__all__ = [
    "BAD_JSON_MSG",
    "Handler",
    "RouteSpec",
    "int_param",
    "logid_of",
    "ok",
    "opt_str",
    "read_json",
    "req_str",
    "sse_response",
    "wrap",
]

BAD_JSON_MSG = "The field http body provided is not a valid json or chat request. Please check the request body format."

Handler = Callable[[Request, Principal | None], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class RouteSpec:
    name: str
    path: str
    methods: Sequence[str]
    handler: Handler
    auth: bool = True


def logid_of(request: Request) -> str:
    value = request.scope.get(LOGID_SCOPE_KEY)
    return value if isinstance(value, str) else new_logid()


def ok(request: Request, data: Any, **extra: Any) -> Response:
    return envelope(data, logid=logid_of(request), extra=extra or None)


def wrap(ctx: SandboxContext, spec: RouteSpec) -> Callable[[Request], Awaitable[Response]]:
    """Turn a handler into a Starlette endpoint: Bearer check first, ApiError -> Coze error body."""

    async def endpoint(request: Request) -> Response:
        try:
            principal = ctx.auth.authenticate(request.headers.get("authorization")) if spec.auth else None
            return await spec.handler(request, principal)
        except ApiError as exc:
            if exc.code in (4100, 4101):
                ctx.state.auth_failures += 1
            ctx.state.api_errors[str(exc.code)] += 1
            return error_response(exc.code, exc.msg, logid=logid_of(request), status=exc.status, headers=exc.headers)

    endpoint.__name__ = spec.name.replace(".", "_")
    return endpoint


async def read_json(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The JSON object body; an empty body is ``{}`` unless ``required``; anything else is 4000."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ApiError(4000, BAD_JSON_MSG)
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ApiError(4000, BAD_JSON_MSG) from exc
    if not isinstance(data, dict):
        raise ApiError(4000, BAD_JSON_MSG)
    return data


def _as_id(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def req_str(source: Any, name: str) -> str:
    """A required id-like string (ints accepted, as some clients send numeric ids)."""
    value = _as_id(source.get(name))
    if value is None:
        raise ApiError(4000, f"Invalid parameter: {name} is required")
    return value


def opt_str(source: Any, name: str) -> str | None:
    raw = source.get(name)
    if raw is None or raw == "":
        return None
    value = _as_id(raw)
    if value is None:
        raise ApiError(4000, f"Invalid parameter: {name} must be a string")
    return value


def int_param(source: Any, name: str, *, default: int, low: int, high: int) -> int:
    raw = source.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        raise ApiError(4000, f"Invalid parameter: {name} must be an integer")
    try:
        value = int(raw)
    except (TypeError, ValueError) as exc:
        raise ApiError(4000, f"Invalid parameter: {name} must be an integer") from exc
    if not low <= value <= high:
        raise ApiError(4000, f"Invalid parameter: {name} must be between {low} and {high}")
    return value


async def _frames(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    # Whatever is already queued goes out in one write; with a chunk delay every event is its own write.
    while True:
        item = await queue.get()
        if item is None:
            return
        parts = [item]
        done = False
        while not queue.empty():
            nxt = queue.get_nowait()
            if nxt is None:
                done = True
                break
            parts.append(nxt)
        yield b"".join(parts)
        if done:
            return


def sse_response(queue: asyncio.Queue[bytes | None]) -> Response:
    return StreamingResponse(
        _frames(queue),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )
