"""Bounds on stateful /mcp sessions, and a clear answer when they are all taken.

The SDK's session manager enforces both bounds (``max_sessions``, ``session_idle_timeout``);
kai-bridge makes them settings (``mcp_max_sessions``, ``mcp_session_idle_timeout``) with
safe defaults. Past the cap the SDK answers 503 with the JSON-RPC error "Too many open
sessions"; :class:`SessionLimitMiddleware` replaces that message with one that says what the
limit is and what to do, and adds ``Retry-After``.
"""

from __future__ import annotations

import json
import math
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SessionLimitMiddleware", "session_limit_message"]

_SESSION_HEADER: Final = b"mcp-session-id"
_JSONRPC_INTERNAL_ERROR: Final = -32603
_RETRY_AFTER_MAX: Final = 60


def session_limit_message(*, max_sessions: int, idle_timeout: float) -> str:
    return (
        f"kai-bridge already has {max_sessions} open MCP sessions, its limit (mcp_max_sessions): "
        "end sessions you no longer use (HTTP DELETE on the endpoint with their Mcp-Session-Id), "
        f"wait for idle ones to close (after {idle_timeout:g} s, mcp_session_idle_timeout), "
        "or raise KAI_BRIDGE_MCP_MAX_SESSIONS"
    )


class SessionLimitMiddleware:
    """Pure ASGI around the MCP endpoint: a 503 to a request opening a session gets our message."""

    def __init__(self, app: ASGIApp, *, max_sessions: int, idle_timeout: float) -> None:
        self.app = app
        message = session_limit_message(max_sessions=max_sessions, idle_timeout=idle_timeout)
        self._body = json.dumps(
            {"jsonrpc": "2.0", "id": None, "error": {"code": _JSONRPC_INTERNAL_ERROR, "message": message}}
        ).encode()
        self._retry_after = str(max(1, min(_RETRY_AFTER_MAX, math.ceil(idle_timeout)))).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(name == _SESSION_HEADER for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        replaced = False

        async def watch(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 503:
                # The only 503 the session manager gives a request without a session id: the cap.
                replaced = True
                await send(
                    {
                        "type": "http.response.start",
                        "status": 503,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(self._body)).encode()),
                            (b"retry-after", self._retry_after),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": self._body})
                return
            if replaced and message["type"] == "http.response.body":
                return  # the SDK's own body: already answered
            await send(message)

        await self.app(scope, receive, watch)
