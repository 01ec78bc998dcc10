"""The webhook door: Coze's signed callbacks (and Bearer senders) into a durable inbox, then handlers.

``POST /webhook/coze`` (:mod:`~kai_bridge.webhooks.http`) verifies the sender
(:mod:`~kai_bridge.webhooks.verify`), answers URL verification, commits the event to the
store's inbox, deduplicated, before it says 2xx (:mod:`~kai_bridge.webhooks.inbox`). The
dispatcher (:mod:`~kai_bridge.webhooks.dispatch`) then runs the handlers at least once per
event, with retries, back-off and a dead letter (:mod:`~kai_bridge.webhooks.handlers`: a log
line, bot states, conversation events, and the configured event routes of
:mod:`~kai_bridge.webhooks.event_routes`). :func:`open_webhooks` assembles it all. The route
module is imported by the HTTP app only (``kai_bridge.webhooks.http``), so a one-shot command
that opens the runtime does not load the HTTP server stack.
"""

from kai_bridge.webhooks.bots import BotStates
from kai_bridge.webhooks.dispatch import Dispatcher, EventHandler, HandlerError, StoredEvent
from kai_bridge.webhooks.events import BadEvent, ParsedEvent, dedup_key, parse_event
from kai_bridge.webhooks.feed import EventFeed
from kai_bridge.webhooks.inbox import Inbox, event_json, summary_json
from kai_bridge.webhooks.receive import MAX_BODY_BYTES, Receiver
from kai_bridge.webhooks.service import WebhookService, open_webhooks
from kai_bridge.webhooks.verify import Verifier, coze_signature

__all__ = [
    "MAX_BODY_BYTES",
    "BadEvent",
    "BotStates",
    "Dispatcher",
    "EventFeed",
    "EventHandler",
    "HandlerError",
    "Inbox",
    "ParsedEvent",
    "Receiver",
    "StoredEvent",
    "Verifier",
    "WebhookService",
    "coze_signature",
    "dedup_key",
    "event_json",
    "open_webhooks",
    "parse_event",
    "summary_json",
]
