"""The webhook door assembled from the settings: verifier, inbox, receiver, handlers, dispatcher, feed.

:func:`open_webhooks` is called once by the composition root (``kai_bridge.runtime``) and,
with ``dispatch=True`` (``serve`` and ``stdio``), runs the dispatcher for as long as the
runtime lives. Short-lived commands (``call``, ``doctor``) open it without dispatching: they
never pick up events, so a one-off CLI call does not run event routes as a side effect.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio
from pydantic import JsonValue

from kai_bridge.config import Settings
from kai_bridge.store import Store
from kai_bridge.tools.registry import ToolRegistry
from kai_bridge.webhooks.bots import BotStates
from kai_bridge.webhooks.dispatch import Dispatcher, DispatchSpan, EventHandler
from kai_bridge.webhooks.event_routes import compile_routes
from kai_bridge.webhooks.feed import EventFeed
from kai_bridge.webhooks.handlers import BotStateHandler, ConversationHandler, LogHandler, RouteHandler
from kai_bridge.webhooks.inbox import Inbox
from kai_bridge.webhooks.receive import Receiver
from kai_bridge.webhooks.verify import Verifier

__all__ = ["WebhookService", "open_webhooks"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WebhookService:
    """The webhook door's parts, for the HTTP route, the MCP resource, the tools and diagnostics."""

    inbox: Inbox
    receiver: Receiver
    dispatcher: Dispatcher
    bots: BotStates
    feed: EventFeed
    route_names: tuple[str, ...]
    dispatching: bool

    async def diagnostics(self) -> dict[str, JsonValue]:
        """A secret-free summary: ways in, routes, whether events are dispatched here, counts."""
        counts: dict[str, JsonValue] = dict(await self.inbox.counts())
        return {
            "path": "/webhook/coze",
            "modes": list(self.receiver.verifier.modes),
            "routes": list(self.route_names),
            "dispatching": self.dispatching,
            "events": counts,
        }


async def _supervise(dispatcher: Dispatcher) -> None:
    """Run the dispatcher; a bug that escapes it is logged and the dispatcher started again."""
    while True:
        try:
            await dispatcher.run()
        except Exception:
            logger.exception("webhook dispatcher stopped unexpectedly; starting it again in 1 s")
            await anyio.sleep(1)


@contextlib.asynccontextmanager
async def open_webhooks(
    *,
    settings: Settings,
    store: Store,
    registry: ToolRegistry,
    bots: BotStates | None = None,
    dispatch: bool = False,
    clock: Callable[[], float] = time.time,
    poll_interval: float = 1.0,
    dispatch_span: DispatchSpan | None = None,
) -> AsyncIterator[WebhookService]:
    """Build the webhook door; with ``dispatch`` run its dispatcher until the block exits.

    ``poll_interval``: how often the dispatcher looks for retries that fell due and events
    other processes stored (new events of this process wake it at once).

    Raises ConfigError when an event route cannot be compiled.
    """
    routes = compile_routes(settings.webhook_routes)
    inbox = Inbox(store=store, clock=clock)
    verifier = Verifier(
        verify_token=settings.webhook_verify_token.get_secret_value() if settings.webhook_verify_token else None,
        bearer_token=settings.webhook_token.get_secret_value() if settings.webhook_token else None,
        tolerance=settings.webhook_timestamp_tolerance,
        clock=clock,
    )
    receiver = Receiver(
        verifier=verifier,
        inbox=inbox,
        audit_status=settings.webhook_audit_status,
        audit_reason=settings.webhook_audit_reason,
    )
    feed = EventFeed(inbox=inbox)
    handlers: list[EventHandler] = [LogHandler(), BotStateHandler(store=store), ConversationHandler(store=store)]
    handlers += [RouteHandler(route=route, registry=registry) for route in routes]
    dispatcher = Dispatcher(
        store=store,
        handlers=handlers,
        max_attempts=settings.webhook_max_attempts,
        backoff_base=settings.webhook_backoff_base,
        backoff_max=settings.webhook_backoff_max,
        lease=settings.webhook_lease,
        poll_interval=poll_interval,
        clock=clock,
        on_finished=feed.changed,
        busy=inbox.busy,
        span=dispatch_span,
    )
    inbox.on_new(lambda _event_id: dispatcher.wake())
    inbox.on_new(feed.changed)
    service = WebhookService(
        inbox=inbox,
        receiver=receiver,
        dispatcher=dispatcher,
        bots=bots or BotStates(store=store),
        feed=feed,
        route_names=tuple(route.name for route in routes),
        dispatching=dispatch,
    )
    if verifier.configured:
        logger.info(
            "webhook door /webhook/coze: %s; %d event route(s)%s", " + ".join(verifier.modes), len(routes),
            "" if dispatch else " (events are stored, not dispatched, by this command)",
        )
    try:
        if not dispatch:
            yield service
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(_supervise, dispatcher)
            try:
                yield service
            finally:
                tg.cancel_scope.cancel()
    finally:
        await feed.aclose()
