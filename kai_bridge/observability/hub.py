"""The runtime's observability: its metrics, its tracing and what they read, plus the webhook door's hooks.

The composition root builds one :class:`Observability` and puts it on the runtime
(``runtime.observability``). Other doors record through it:

- the webhook door: :meth:`Observability.webhook_event` per received event
  (``result="accepted" | "duplicate" | "rejected"``, ``reason="signature"`` etc. for a
  rejection), :meth:`Observability.watch_inbox` once with a cheap callable returning the inbox
  depth by status, and :meth:`Observability.webhook_dispatch` around each dispatch (a span);
  tools it runs go through the registry with ``door=Door.EVENT_ROUTE`` and are counted there;
- the plugin door: nothing but ``NullToolContext(door=Door.PLUGIN)`` on its registry calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from kai_bridge.observability.metrics import InboxDepth, Metrics
from kai_bridge.observability.sources import Sources
from kai_bridge.observability.tracing import Tracing

__all__ = ["Observability", "webhook_dispatch_span"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Observability:
    metrics: Metrics
    tracing: Tracing
    sources: Sources

    def webhook_event(self, *, result: str, reason: str = "") -> None:
        """Count one webhook event (``kai_bridge_webhook_events_total{result, reason}``)."""
        self.metrics.webhook_event(result=result, reason=reason)

    def watch_inbox(self, depth: InboxDepth) -> None:
        """``depth()`` -> ``{"pending": 3, "done": 120, ...}``, read at each scrape (``kai_bridge_webhook_inbox_events``)."""
        self.metrics.watch_inbox(depth)

    def webhook_dispatch(self, *, event_type: str, event_id: str | None = None,
                         logid: str | None = None) -> contextlib.AbstractContextManager[None]:
        """A ``webhook dispatch`` span around the block (when tracing is on), failed by its exception."""
        return webhook_dispatch_span(self.tracing, event_type=event_type, event_id=event_id, logid=logid)


@contextlib.contextmanager
def webhook_dispatch_span(tracing: Tracing, *, event_type: str, event_id: str | None = None,
                          logid: str | None = None) -> Iterator[None]:
    """A ``webhook dispatch`` span (the root hands this to the dispatcher, built before the hub)."""
    attributes: dict[str, str | int | float | bool] = {"kai_bridge.webhook.event_type": event_type}
    if event_id:
        attributes["kai_bridge.webhook.event_id"] = event_id
    if logid:
        attributes["coze.logid"] = logid
    with tracing.span("webhook dispatch", attributes):
        yield
