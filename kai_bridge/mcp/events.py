"""Webhook events as MCP resources, with ``notifications/resources/updated`` when they change.

``kai-bridge://events/recent`` is the newest inbox events (JSON: summaries and the count per
status); ``kai-bridge://events/{id}`` one event in full (body, handlers' outcome). A client
that subscribed to either is told when it changes: handshake-era clients through
``resources/subscribe`` and a ``notifications/resources/updated`` on their connection,
2026-07-28 clients through ``subscriptions/listen``. Installed next to the knowledge
resources (this extension keeps theirs: it answers its own URIs and hands the rest on).
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import mcp.types as types
from mcp.server.context import ServerRequestContext
from mcp.server.subscriptions import ResourceUpdated
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, JsonValue

from kai_bridge.mcp.context import connection_of
from kai_bridge.mcp.server import KaiMcpServer, McpExtension

__all__ = ["EVENT_URI_PREFIX", "RECENT_EVENTS_URI", "EventSource", "events_extension"]

logger = logging.getLogger(__name__)

RECENT_EVENTS_URI: Final = "kai-bridge://events/recent"
EVENT_URI_PREFIX: Final = "kai-bridge://events/"
_MIME: Final = "application/json"
_SUBSCRIPTIONS_KEY: Final = "kai_bridge.resource_subscriptions"

Ctx = ServerRequestContext[Any, Any]


class EventSource(Protocol):
    """What the resources read (the webhook door's ``EventFeed``)."""

    async def recent(self) -> dict[str, JsonValue]: ...

    async def event(self, event_id: str) -> dict[str, JsonValue] | None: ...

    def subscribe(self, listener: Callable[[list[str]], Awaitable[None]]) -> Callable[[], None]: ...


def _text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _previous(server: KaiMcpServer, method: str) -> Callable[[Ctx, Any], Awaitable[Any]] | None:
    entry = server.get_request_handler(method)
    return None if entry is None else entry.handler


def events_extension(source: EventSource) -> McpExtension:
    """An extension serving ``source``'s events as resources, with update notifications."""
    recent = types.Resource(
        uri=RECENT_EVENTS_URI,
        name="recent-webhook-events",
        title="Recent webhook events",
        description="The newest Coze callbacks and webhook events the bridge received, with their dispatch status",
        mime_type=_MIME,
    )
    template = types.ResourceTemplate(
        uri_template=f"{EVENT_URI_PREFIX}{{id}}",
        name="webhook-event",
        title="Webhook event",
        description="One webhook event by inbox id: its body, status, attempts and handlers' results",
        mime_type=_MIME,
    )

    def install(server: KaiMcpServer) -> None:
        list_before = _previous(server, "resources/list")
        templates_before = _previous(server, "resources/templates/list")
        read_before = _previous(server, "resources/read")
        subscribed: weakref.WeakSet[Any] = weakref.WeakSet()
        server_ref = weakref.ref(server)

        async def list_resources(ctx: Ctx, params: types.PaginatedRequestParams) -> types.ListResourcesResult:
            others = await list_before(ctx, params) if list_before is not None else None
            resources = [*(others.resources if isinstance(others, types.ListResourcesResult) else []), recent]
            return types.ListResourcesResult(resources=resources)

        async def list_templates(ctx: Ctx, params: types.PaginatedRequestParams) -> types.ListResourceTemplatesResult:
            others = await templates_before(ctx, params) if templates_before is not None else None
            found = others.resource_templates if isinstance(others, types.ListResourceTemplatesResult) else []
            return types.ListResourceTemplatesResult(resource_templates=[*found, template])

        async def read(ctx: Ctx, params: types.ReadResourceRequestParams) -> BaseModel:
            uri = params.uri
            if uri == RECENT_EVENTS_URI:
                content: object = await source.recent()
            elif uri.startswith(EVENT_URI_PREFIX) and uri != EVENT_URI_PREFIX:
                found = await source.event(uri.removeprefix(EVENT_URI_PREFIX))
                if found is None:
                    raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {uri} (no such event)", {"uri": uri})
                content = found
            elif read_before is not None:
                result: BaseModel = await read_before(ctx, params)
                return result
            else:
                raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {uri}", {"uri": uri})
            return types.ReadResourceResult(
                contents=[types.TextResourceContents(uri=uri, mime_type=_MIME, text=_text(content))]
            )

        async def subscribe(ctx: Ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
            await _check_subscribable(ctx, params.uri)
            conn = connection_of(ctx)
            if conn is not None:
                conn.state.setdefault(_SUBSCRIPTIONS_KEY, set()).add(params.uri)
                subscribed.add(conn)
            return types.EmptyResult()

        async def _readable(ctx: Ctx, uri: str) -> bool:
            # Whether the extensions installed before this one know ``uri``.
            if read_before is None:
                return False
            try:
                await read_before(ctx, types.ReadResourceRequestParams(uri=uri))
            except MCPError:
                return False
            return True

        async def _check_subscribable(ctx: Ctx, uri: str) -> None:
            # Only the events change; a subscription to anything else would never hear a thing,
            # so it is refused (an unknown URI as unknown, an article as never changing).
            if uri == RECENT_EVENTS_URI:
                return
            if uri.startswith(EVENT_URI_PREFIX) and uri != EVENT_URI_PREFIX:
                if await source.event(uri.removeprefix(EVENT_URI_PREFIX)) is None:
                    raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {uri} (no such event)", {"uri": uri})
                return
            if not await _readable(ctx, uri):
                raise MCPError(
                    types.INVALID_PARAMS,
                    f"Unknown resource: {uri}; subscribe to {RECENT_EVENTS_URI} or {EVENT_URI_PREFIX}<id>",
                    {"uri": uri},
                )
            raise MCPError(
                types.INVALID_PARAMS,
                f"{uri} never changes, so there is nothing to subscribe to; only {RECENT_EVENTS_URI} and "
                f"{EVENT_URI_PREFIX}<id> send updates",
                {"uri": uri},
            )

        async def unsubscribe(ctx: Ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
            conn = connection_of(ctx)
            if conn is not None:
                conn.state.get(_SUBSCRIPTIONS_KEY, set()).discard(params.uri)
            return types.EmptyResult()

        async def changed(event_ids: list[str]) -> None:
            target = server_ref()
            if target is None:  # the server is gone: stop listening
                unsubscribe_feed()
                return
            uris = [RECENT_EVENTS_URI, *(f"{EVENT_URI_PREFIX}{event_id}" for event_id in event_ids)]
            for uri in uris:
                target.publish_event(ResourceUpdated(uri=uri))
            for conn in list(subscribed):
                wanted = conn.state.get(_SUBSCRIPTIONS_KEY, set())
                for uri in uris:
                    if uri in wanted:
                        try:
                            await conn.send_resource_updated(uri)
                        except Exception:
                            logger.debug("resources/updated for %s not delivered (client gone?)", uri, exc_info=True)

        server.add_request_handler("resources/list", types.PaginatedRequestParams, list_resources)
        server.add_request_handler("resources/templates/list", types.PaginatedRequestParams, list_templates)
        server.add_request_handler("resources/read", types.ReadResourceRequestParams, read)
        server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe)
        server.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe)
        unsubscribe_feed = source.subscribe(changed)

    return install
