"""The MCP door's :class:`~kai_bridge.tools.ToolContext`: progress and logs as MCP notifications.

Progress goes out only when the request carried a ``progressToken`` (the SDK checks).
Log lines go out only where the client asked for them: on handshake-era connections after
``logging/setLevel`` (and at or above that level), on 2026-07-28 requests when their
``_meta`` opted in. Both are best effort: a client that went away must not fail the tool.
"""

from __future__ import annotations

import logging
from typing import Any, Final, get_args

import anyio
import mcp.types as types
from mcp.server.connection import allowed_log_levels
from mcp.server.context import ServerRequestContext
from mcp_types import LoggingLevel
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from kai_bridge.tools.registry import Caller, Door, ToolContext

__all__ = ["LOG_LEVEL_STATE_KEY", "McpToolContext", "connection_of", "normalize_level"]

logger = logging.getLogger(__name__)

LOG_LEVEL_STATE_KEY: Final = "kai_bridge.log_level"
LOGGER_NAME: Final = "kai-bridge"
_LEVELS: Final[tuple[LoggingLevel, ...]] = get_args(LoggingLevel)
_ALIASES: Final[dict[str, LoggingLevel]] = {"warn": "warning", "fatal": "critical", "err": "error"}


def normalize_level(level: str) -> LoggingLevel:
    """Map a Python-ish level name (``"INFO"``, ``"warn"``) onto the MCP/RFC 5424 level names."""
    lowered = level.lower()
    for name in _LEVELS:
        if name == lowered:
            return name
    return _ALIASES.get(lowered, "info")


def connection_of(ctx: ServerRequestContext[Any, Any]) -> Any:
    """The SDK ``Connection`` behind a request, or None.

    mcp 2.3.0 hands low-level handlers a per-request ``ServerSession`` that holds the
    connection privately; the connection is where per-client state (the log level set by
    ``logging/setLevel``) and the standalone stream (``tools/list_changed``) live. The
    package pins mcp==2.3.0; this is the one place that reaches in.
    """
    return getattr(ctx.session, "_connection", None)


class McpToolContext(ToolContext):
    """Bridges a tool's progress and log calls onto the MCP request that runs it."""

    __slots__ = ("_allowed", "_rctx")

    def __init__(
        self, rctx: ServerRequestContext[Any, Any], *, caller_id: str | None, door: Door = Door.MCP_HTTP
    ) -> None:
        self._rctx = rctx
        self.caller_id = caller_id
        self.caller = Caller(door=door, id=caller_id)
        self._allowed: frozenset[LoggingLevel] | None = None

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        try:
            await self._rctx.session.report_progress(progress, total, message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("progress dropped: the client's stream is closed")

    @property
    def can_report(self) -> bool:
        if self._allowed_levels():
            return True
        meta = self._rctx.meta
        if meta is not None and meta.get("progress_token") is not None:
            return True
        # A 2026-07-28 client in the same process gets progress through a direct callback
        # that the request does not show: assume it listens.
        return self._rctx.protocol_version in MODERN_PROTOCOL_VERSIONS

    def _allowed_levels(self) -> frozenset[LoggingLevel]:
        if self._allowed is None:
            rctx = self._rctx
            if rctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
                self._allowed = allowed_log_levels(rctx.protocol_version, rctx.meta)
            else:
                conn = connection_of(rctx)
                chosen = conn.state.get(LOG_LEVEL_STATE_KEY) if conn is not None else None
                self._allowed = frozenset(_LEVELS[_LEVELS.index(chosen) :]) if chosen in _LEVELS else frozenset()
        return self._allowed

    async def log(self, level: str, message: str) -> None:
        mcp_level = normalize_level(level)
        if mcp_level not in self._allowed_levels():
            return
        notification = types.LoggingMessageNotification(
            params=types.LoggingMessageNotificationParams(level=mcp_level, data=message, logger=LOGGER_NAME)
        )
        try:
            # Request-scoped: the entry rides the stream that carries this call's response.
            await self._rctx.session.send_notification(notification, related_request_id=self._rctx.request_id)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            logger.debug("log notification dropped: the client's stream is closed")
