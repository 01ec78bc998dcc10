"""The webhook door's HTTP route: ``POST /webhook/coze``, a thin layer over :class:`Receiver`.

It reads the body with a hard limit (a ``Content-Length`` over 1 MiB is refused before a
byte is read; a longer streamed body is refused as soon as it passes the limit, the rest is
never read) and turns the receiver's :class:`~kai_bridge.webhooks.receive.Answer` into JSON.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from kai_bridge.webhooks.receive import MAX_BODY_BYTES, Answer, Receiver, bad_length, too_large

__all__ = ["WEBHOOK_PATH", "read_limited", "webhook_routes"]

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


def webhook_routes(*, receiver: Receiver, path: str = WEBHOOK_PATH) -> list[BaseRoute]:
    """The webhook route(s) for ``receiver``."""

    async def webhook(request: Request) -> Response:
        if not receiver.configured:
            answer = receiver.not_configured()
        else:
            raw = await read_limited(request)
            answer = raw if isinstance(raw, Answer) else await receiver.receive(request.headers, raw)
        return JSONResponse(answer.body, status_code=answer.status)

    return [Route(path, webhook, methods=["POST"], name="webhook.coze")]
