"""What a webhook body is: parsing it (with a reason for every refusal), its event type and dedup key.

Two shapes come in. Coze's callbacks: ``{"header": {"event_type", "event_id", "created_at" (ms),
...}, "event": {...}}``. The seed guide's: ``{"event": "<type>", "data": {...}}``. Anything else
with no event type is refused (400); an unknown event type is accepted and stored like any
other (the inbox never rejects an event for being new).

Dedup key: ``event_id:<header.event_id>`` when Coze's header carries one (its re-sends keep
it), otherwise ``body:<sha256 of the raw body>`` (an identical re-send is the same event).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import JsonValue

__all__ = ["URL_VERIFICATION", "BadEvent", "ParsedEvent", "dedup_key", "parse_event"]

URL_VERIFICATION: Final = "url_verification"
MAX_EVENT_TYPE: Final = 128
_MAX_EVENT_ID: Final = 256

Shape = Literal["coze", "seed"]


class BadEvent(ValueError):
    """The body is not an event; ``str()`` is the reason, safe to send back."""


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    """A webhook body that is an event. ``text`` is the body exactly as received."""

    shape: Shape
    event_type: str
    event_id: str | None
    created_at: float | None  # epoch seconds (Coze's header.created_at is milliseconds)
    body: dict[str, JsonValue]
    text: str

    @property
    def header(self) -> dict[str, JsonValue]:
        header = self.body.get("header")
        return header if isinstance(header, dict) else {}

    @property
    def payload(self) -> dict[str, JsonValue]:
        """The event's own fields: Coze's ``event`` object, or the seed shape's ``data``."""
        value = self.body.get("event") if self.shape == "coze" else self.body.get("data")
        return value if isinstance(value, dict) else {}


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null"


def _check_type(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadEvent(f"{where} must be a non-empty string")
    if len(value) > MAX_EVENT_TYPE or not value.isprintable():
        raise BadEvent(f"{where} must be 1 to {MAX_EVENT_TYPE} printable characters")
    return value


def _id_of(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= _MAX_EVENT_ID:
        return value.strip()
    return None


def parse_event(raw: bytes) -> ParsedEvent:
    """The event in ``raw``, or :class:`BadEvent` saying why it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadEvent(f"the body is not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise BadEvent("the body is empty: send a JSON object")
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadEvent(f"the body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except (ValueError, RecursionError):
        raise BadEvent("the body is not JSON this server can read (nested too deeply or malformed)") from None
    if not isinstance(body, dict):
        raise BadEvent(f"the body is a JSON {_json_type(body)}, not an object")
    header = body.get("header")
    if isinstance(header, dict) and "event_type" in header:
        event_type = _check_type(header.get("event_type"), "header.event_type")
        created = header.get("created_at")
        created_at = (
            float(created) / 1000.0
            if isinstance(created, int | float) and not isinstance(created, bool) and 0 < created < 1e15
            else None
        )
        return ParsedEvent(
            shape="coze",
            event_type=event_type,
            event_id=_id_of(header.get("event_id")),
            created_at=created_at,
            body=body,
            text=text,
        )
    if "event" in body and not isinstance(body["event"], dict):
        return ParsedEvent(
            shape="seed",
            event_type=_check_type(body["event"], "event"),
            event_id=None,
            created_at=None,
            body=body,
            text=text,
        )
    raise BadEvent(
        'no event type: Coze callbacks carry header.event_type; other senders send {"event": "<type>", '
        '"data": {...}}'
    )


def dedup_key(event: ParsedEvent, raw: bytes) -> str:
    """The key two deliveries of the same event share (see the module docstring)."""
    if event.event_id is not None:
        return f"event_id:{event.event_id}"
    return f"body:{hashlib.sha256(raw).hexdigest()}"


def challenge_of(event: ParsedEvent) -> str:
    """The challenge of a url_verification event (BadEvent if it has none)."""
    challenge = event.payload.get("challenge")
    if not isinstance(challenge, str):
        raise BadEvent("a url_verification event needs event.challenge (a string)")
    return challenge
