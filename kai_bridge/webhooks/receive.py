"""The webhook door's decisions, without HTTP: credentials, URL verification, parsing, commit, answer.

:meth:`Receiver.receive` takes the request headers and the raw body (already read, at most
1 MiB) and returns the status and JSON to answer. The order matters:

1. Neither way in configured: 503 naming the two settings (the door is never open).
2. Credentials (:mod:`~kai_bridge.webhooks.verify`): wrong or missing is 401, except that a
   ``url_verification`` challenge is echoed whatever its signature (Coze does not say it signs
   it; echoing stores nothing).
3. The body must be an event (400 with the reason); ``url_verification`` is answered
   ``{"challenge": ...}`` at once.
4. The event is committed to the inbox (deduplicated); only then comes the 2xx. A store that
   cannot commit gives 503 (not acknowledged: the sender re-sends).
5. ``bot.published`` is answered with an audit result when ``webhook_audit_status`` asks for
   one (Coze's channel callbacks read it within 10 s); otherwise the answer only acknowledges.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import JsonValue

from kai_bridge.errors import StoreError
from kai_bridge.webhooks.events import URL_VERIFICATION, BadEvent, challenge_of, parse_event
from kai_bridge.webhooks.inbox import Inbox
from kai_bridge.webhooks.verify import Refusal, Verifier

__all__ = ["AUDIT_CODES", "MAX_BODY_BYTES", "Answer", "AuditStatus", "Receiver"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 1024 * 1024
AuditStatus = Literal["none", "reviewing", "approved", "rejected"]
#: Coze's audit_status values for a channel's answer to bot.published.
AUDIT_CODES: Final[dict[str, int]] = {"reviewing": 1, "approved": 2, "rejected": 3}

NOT_CONFIGURED: Final = (
    "the webhook is not configured: set webhook_verify_token (KAI_BRIDGE_WEBHOOK_VERIFY_TOKEN, the verify token "
    "of your Coze callback app) for Coze's signed callbacks, and/or webhook_token (KAI_BRIDGE_WEBHOOK_TOKEN) for "
    "senders that use Authorization: Bearer"
)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, JsonValue]


def _error(status: int, code: str, message: str) -> Answer:
    return Answer(status, {"ok": False, "error": code, "message": message})


def too_large() -> Answer:
    return _error(413, "too_large", f"the body is larger than {MAX_BODY_BYTES // 1024} KiB")


def bad_length() -> Answer:
    return _error(400, "bad_request", "Content-Length is not a number")


class Receiver:
    """Turns one webhook request into an answer, committing the event on the way."""

    def __init__(
        self,
        *,
        verifier: Verifier,
        inbox: Inbox,
        audit_status: AuditStatus = "none",
        audit_reason: str = "",
    ) -> None:
        self.verifier = verifier
        self._inbox = inbox
        self._audit: dict[str, JsonValue] | None = (
            None if audit_status == "none" else {"audit_status": AUDIT_CODES[audit_status], "reason": audit_reason}
        )

    @property
    def configured(self) -> bool:
        return self.verifier.configured

    def not_configured(self) -> Answer:
        return _error(503, "not_configured", NOT_CONFIGURED)

    async def receive(self, headers: Mapping[str, str], raw: bytes) -> Answer:
        if not self.configured:
            return self.not_configured()
        credential = self.verifier.check(headers, raw)
        if isinstance(credential, Refusal):
            challenge = _unverified_challenge(raw)
            if challenge is not None:
                return Answer(200, {"challenge": challenge})
            return _error(401, "unauthorized", credential.reason)
        try:
            event = parse_event(raw)
            if event.event_type == URL_VERIFICATION:
                return Answer(200, {"challenge": challenge_of(event)})
        except BadEvent as exc:
            return _error(400, "bad_event", str(exc))
        try:
            received = await self._inbox.receive(event, raw, source=credential.source)
        except StoreError as exc:
            logger.error("webhook event %s not stored, answered 503 (the sender re-sends): %s", event.event_type, exc)
            return _error(
                503, "store_unavailable", "the event could not be stored and is not acknowledged; send it again later"
            )
        body: dict[str, JsonValue] = {"ok": True, "id": received.id, "duplicate": received.duplicate}
        if self._audit is not None and event.event_type == "bot.published":
            body["audit"] = dict(self._audit)
        return Answer(200, body)


def _unverified_challenge(raw: bytes) -> str | None:
    """The challenge of a url_verification body, else None (any other body needs credentials)."""
    try:
        event = parse_event(raw)
        return challenge_of(event) if event.event_type == URL_VERIFICATION else None
    except BadEvent:
        return None
