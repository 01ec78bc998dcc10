"""The webhook door's HTTP route: ``POST /webhook/coze``, a thin layer over :class:`Receiver`.

It reads the body with a hard limit (a ``Content-Length`` over 1 MiB is refused before a
byte is read; a longer streamed body is refused as soon as it passes the limit, the rest is
never read) and turns the receiver's :class:`~kai_bridge.webhooks.receive.Answer` into JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kai_bridge.webhooks.receive import MAX_BODY_BYTES, Answer, Receiver, bad_length, too_large

__all__ = ["WEBHOOK_PATH", "EventCounter", "outcome_of", "read_limited", "webhook_routes"]

#: ``count(result=..., reason=...)``: told the outcome of every request (metrics).
EventCounter = Callable[..., None]

WEBHOOK_PATH: Final = "/webhook/coze"


async def read_limited(request: Request, *, limit: int = MAX_BODY_BYTES) -> bytes | Answer:
    """The request body, or the answer that refuses it (too large, bad Content-Length, client gone)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            return bad_length()
        if int(declared) > limit:
            return too_large()
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                return too_large()
            chunks.append(chunk)
    except ClientDisconnect:
        return Answer(400, {"ok": False, "error": "bad_request", "message": "the request body was cut off"})
    return b"".join(chunks)


def outcome_of(answer: Answer) -> tuple[str, str]:
    """``(result, reason)`` of an answer: accepted, duplicate, or rejected with the error code."""
    if answer.status == 200:
        if "challenge" in answer.body:
            return "accepted", "url_verification"
        return ("duplicate", "") if answer.body.get("duplicate") is True else ("accepted", "")
    error = answer.body.get("error")
    return "rejected", error if isinstance(error, str) else str(answer.status)


def webhook_routes(*, receiver: Receiver, path: str = WEBHOOK_PATH, count: EventCounter | None = None) -> list[BaseRoute]:
    """The webhook route(s) for ``receiver``; ``count`` (if given) hears every outcome."""

    async def webhook(request: Request) -> Response:
        if not receiver.configured:
            answer = receiver.not_configured()
        else:
            raw = await read_limited(request)
            answer = raw if isinstance(raw, Answer) else await receiver.receive(request.headers, raw)
        if count is not None:
            result, reason = outcome_of(answer)
            count(result=result, reason=reason)
        return JSONResponse(answer.body, status_code=answer.status)

    return [Route(path, webhook, methods=["POST"], name="webhook.coze")]
