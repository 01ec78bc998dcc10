"""The sandbox's own wire helpers: JSON encoding, Coze envelopes, errors, SSE frames, ids.

Written independently of ``kai_bridge.coze`` on purpose: the sandbox and the client are two
implementations of the same protocol and must not share a mistake.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

__all__ = [
    "LOGID_SCOPE_KEY",
    "ApiError",
    "IdGenerator",
    "JsonResponse",
    "dumps",
    "envelope",
    "error_response",
    "new_logid",
    "sse_frame",
    "status_for_code",
]

LOGID_SCOPE_KEY = "kai_bridge.sandbox.logid"

# One encoder for the whole sandbox: compact, UTF-8 (Chinese answers stay readable).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

# HTTP statuses paired with Coze codes (coze-js's mapping; cozepy ignores the status).
_STATUS_BY_CODE: dict[int, int] = {
    4000: 400,
    4013: 429,
    4016: 409,  # conflict: the conversation already runs a chat
    4100: 401,
    4101: 403,
    4104: 400,
    4200: 404,
    5000: 500,
}


def dumps(value: Any) -> bytes:
    return _ENCODER.encode(value).encode("utf-8")


def status_for_code(code: int) -> int:
    return _STATUS_BY_CODE.get(code, 400 if code < 5000 else 500)


def new_logid() -> str:
    """A Coze-looking log id: UTC timestamp (ms) followed by 20 upper-case hex digits."""
    now = time.time()
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
    return f"{stamp}{int(now * 1000) % 1000:03d}{os.urandom(10).hex().upper()}"


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


class ApiError(Exception):
    """A Coze business error: rendered as ``{code, msg, detail:{logid}}`` with the paired status."""

    def __init__(
        self,
        code: int,
        msg: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status if status is not None else status_for_code(code)
        self.headers = dict(headers or {})


def envelope(data: Any, *, logid: str, extra: Mapping[str, Any] | None = None) -> JsonResponse:
    body: dict[str, Any] = {"code": 0, "msg": "", "data": data}
    if extra:
        body.update(extra)
    body["detail"] = {"logid": logid}
    return JsonResponse(body)


def error_response(
    code: int,
    msg: str,
    *,
    logid: str,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> JsonResponse:
    return JsonResponse(
        {"code": code, "msg": msg, "detail": {"logid": logid}},
        status_code=status if status is not None else status_for_code(code),
        headers=dict(headers) if headers else None,
    )


def sse_frame(event: str, data: Any) -> bytes:
    """One chat-stream event exactly as Coze frames it: ``event:`` line, ``data:`` line, blank line."""
    return b"event:" + event.encode("ascii") + b"\ndata:" + dumps(data) + b"\n\n"


class IdGenerator:
    """19-digit, strictly increasing numeric string ids (Coze-like snowflakes).

    A millisecond clock in the high part and a counter in the low part keep ids sortable by
    creation order, which the message-list paging relies on.
    """

    _BASE = 7_000_000_000_000_000_000
    _EPOCH_MS = 1_704_067_200_000  # 2024-01-01

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> str:
        candidate = self._BASE + ((int(time.time() * 1000) - self._EPOCH_MS) << 20)
        value = max(candidate, self._last + 1)
        self._last = value
        return str(value)
