"""The sandbox's callback apps and the signed event deliveries Coze would make to them.

A callback app (``/v1/api_apps``) has a server-generated ``verify_token``, an optional
``callback_url`` and a set of subscribed event types. Setting a URL first POSTs Coze's
``url_verification`` challenge to it; the URL is kept only if the answer echoes the challenge.
When a subscribed event happens (a bot published, unpublished or deleted through the API, or
an admin ``POST /_sandbox/events``) each app gets a POST with Coze's body
``{"header": {...}, "event": {...}}`` and headers ``X-Coze-Signature`` (lowercase hex SHA-1 of
timestamp + nonce + verify_token + body), ``X-Coze-Timestamp`` (ms) and ``X-Coze-Nonce``.

A delivery that times out (``callback_timeout``, Coze's 3 s), fails to connect or gets a
non-2xx answer is re-sent after each of ``callback_retry_delays`` with the same body (same
``event_id``: the receiver must deduplicate), freshly timestamped and signed. Every attempt
is kept in :attr:`CallbackHub.deliveries` (``GET /_sandbox/deliveries``).

The signature is computed here independently of ``kai_bridge.webhooks``: the sandbox and the
receiver check each other instead of sharing a mistake.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from kai_bridge.sandbox.state import SandboxState
from kai_bridge.sandbox.wire import ApiError, IdGenerator, dumps

__all__ = ["EVENT_TYPES", "Attempt", "CallbackApp", "CallbackHub", "Delivery", "sign"]

logger = logging.getLogger(__name__)

#: Every event type Coze lets a callback app subscribe to.
EVENT_TYPES: Final = (
    "bot.published",
    "bot.deleted",
    "bot.unpublished",
    "benefit.usage",
    "benefit.plugin.scale.requested",
    "benefit.plugin.scale.expired",
)
API_CONNECTOR: Final = "1024"
_EVENT_DESCRIPTIONS: Final = {
    "bot.published": "Bot published",
    "bot.deleted": "Bot deleted",
    "bot.unpublished": "Bot unpublished",
    "benefit.usage": "Usage billing push",
    "benefit.plugin.scale.requested": "Plugin scale-up requested",
    "benefit.plugin.scale.expired": "Plugin scale-up expired",
}
_MAX_DELIVERIES: Final = 1000
_MAX_ANSWER: Final = 4096


def sign(*, timestamp: str, nonce: str, verify_token: str, body: bytes) -> str:
    """X-Coze-Signature: SHA-1 over timestamp, nonce, verify token and body, in that order; lowercase hex."""
    joined = timestamp.encode("utf-8") + nonce.encode("utf-8") + verify_token.encode("utf-8") + body
    return hashlib.sha1(joined, usedforsecurity=False).hexdigest()


@dataclass(slots=True)
class CallbackApp:
    id: str
    app_type: str
    name: str | None
    connector_id: str | None
    verify_token: str
    callback_url: str | None = None
    event_types: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "app_type": self.app_type, "verify_token": self.verify_token}
        for key in ("name", "connector_id", "callback_url"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def subscriptions_json(self) -> list[dict[str, Any]]:
        return [
            {
                "api_app_id": self.id,
                "name": event_type,
                "description": _EVENT_DESCRIPTIONS.get(event_type, event_type),
                "event_type": event_type,
            }
            for event_type in sorted(self.event_types)
        ]


@dataclass(slots=True)
class Attempt:
    at: float
    status_code: int | None
    error: str | None
    elapsed_ms: float

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "status_code": self.status_code, "error": self.error, "elapsed_ms": self.elapsed_ms}


@dataclass(slots=True)
class Delivery:
    """One event sent (or being sent) to one app: every attempt and the last answer."""

    event_id: str
    event_type: str
    app_id: str
    url: str
    body: bytes = field(repr=False)
    status: str = "pending"  # pending | delivered | failed
    attempts: list[Attempt] = field(default_factory=list)
    answer: Any = None
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "api_app_id": self.app_id,
            "callback_url": self.url,
            "status": self.status,
            "attempts": [a.to_json() for a in self.attempts],
            "answer": self.answer,
        }


class CallbackHub:
    """Callback apps, their subscriptions, and the deliveries of events to them."""

    def __init__(
        self,
        *,
        ids: IdGenerator,
        state: SandboxState,
        account_id: str,
        timeout: float = 3.0,
        retry_delays: Sequence[float] = (1.0, 5.0, 30.0),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ids = ids
        self._state = state
        self._account_id = account_id
        self._timeout = timeout
        self._retry_delays = tuple(retry_delays)
        self._clock = clock
        self.apps: dict[str, CallbackApp] = {}
        self.deliveries: deque[Delivery] = deque(maxlen=_MAX_DELIVERIES)
        self.deleted_bots: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None

    # ---- apps ------------------------------------------------------------------------------------
    def create_app(self, *, app_type: str, name: str | None, connector_id: str | None) -> CallbackApp:
        app = CallbackApp(
            id=self._ids.next(),
            app_type=app_type,
            name=name,
            connector_id=connector_id,
            verify_token=secrets.token_urlsafe(24),
        )
        self.apps[app.id] = app
        return app

    def find_app(self, app_id: str) -> CallbackApp:
        app = self.apps.get(app_id)
        if app is None:
            raise ApiError(4200, f"The callback app {app_id} does not exist")
        return app

    async def set_callback_url(self, app: CallbackApp, url: str) -> None:
        """Verify ``url`` with Coze's challenge, then keep it (ApiError 4000 if it does not answer right)."""
        challenge = secrets.token_urlsafe(16)
        _, body = self._body(app, event_type="url_verification", event={"challenge": challenge})
        try:
            response = await self._post(app, url, body)
        except httpx.TimeoutException:
            raise ApiError(4000, f"callback URL verification failed: {url} did not answer within "
                                 f"{self._timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise ApiError(4000, f"callback URL verification failed: cannot reach {url} ({type(exc).__name__})") from None
        try:
            answered = response.json().get("challenge")
        except (ValueError, AttributeError):
            answered = None
        if response.status_code != 200 or answered != challenge:
            raise ApiError(
                4000,
                f"callback URL verification failed: {url} answered HTTP {response.status_code} without echoing "
                'the challenge (expected {"challenge": "<the challenge>"})',
            )
        app.callback_url = url

    # ---- events ----------------------------------------------------------------------------------
    def emit(
        self,
        *,
        event_type: str,
        event: Mapping[str, Any],
        connector_id: str | None = None,
        only_app: str | None = None,
    ) -> list[Delivery]:
        """Deliver an event to every app subscribed to it (or to ``only_app`` whatever it subscribed).

        A connector app hears about a connector's events only when the connector is its own.
        Deliveries run in the background; the returned records fill in as they go.
        """
        targets: list[CallbackApp] = []
        if only_app is not None:
            targets = [self.find_app(only_app)]
        else:
            for app in self.apps.values():
                if event_type not in app.event_types:
                    continue
                if app.app_type == "connector" and connector_id is not None and app.connector_id != connector_id:
                    continue
                targets.append(app)
        deliveries: list[Delivery] = []
        for app in targets:
            if not app.callback_url:
                continue
            event_id, body = self._body(app, event_type=event_type, event=dict(event), connector_id=connector_id)
            delivery = Delivery(event_id=event_id, event_type=event_type, app_id=app.id, url=app.callback_url, body=body)
            self.deliveries.append(delivery)
            deliveries.append(delivery)
            task = asyncio.get_running_loop().create_task(self._deliver(app, delivery), name="sandbox-callback")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return deliveries

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # ---- plumbing --------------------------------------------------------------------------------
    def _body(
        self, app: CallbackApp, *, event_type: str, event: dict[str, Any], connector_id: str | None = None
    ) -> tuple[str, bytes]:
        event_id = self._ids.next()
        header = {
            "event_type": event_type,
            "event_id": event_id,
            "created_at": int(self._clock() * 1000),
            "coze_account_id": self._account_id,
            "api_app_id": app.id,
            "connector_id": connector_id or app.connector_id or API_CONNECTOR,
        }
        return event_id, dumps({"header": header, "event": event})

    async def _post(self, app: CallbackApp, url: str, body: bytes) -> httpx.Response:
        if self._http is None:
            # trust_env=False: a proxy from the environment must not see (or swallow) local callbacks.
            self._http = httpx.AsyncClient(timeout=self._timeout, trust_env=False, follow_redirects=False)
        timestamp = str(int(self._clock() * 1000))
        nonce = secrets.token_hex(16)
        headers = {
            "Content-Type": "application/json",
            "X-Coze-Timestamp": timestamp,
            "X-Coze-Nonce": nonce,
            "X-Coze-Signature": sign(timestamp=timestamp, nonce=nonce, verify_token=app.verify_token, body=body),
        }
        self._state.callback_attempts += 1
        return await self._http.post(url, content=body, headers=headers)

    async def _deliver(self, app: CallbackApp, delivery: Delivery) -> None:
        try:
            for delay in (0.0, *self._retry_delays):
                if delay:
                    await asyncio.sleep(delay)
                started = time.perf_counter()
                status: int | None = None
                error: str | None = None
                try:
                    response = await self._post(app, delivery.url, delivery.body)
                    status = response.status_code
                    try:
                        delivery.answer = response.json()
                    except ValueError:
                        delivery.answer = response.text[:_MAX_ANSWER]
                except httpx.TimeoutException:
                    error = f"no answer within {self._timeout:g} s"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"[:300]
                elapsed = round((time.perf_counter() - started) * 1000, 1)
                delivery.attempts.append(Attempt(at=self._clock(), status_code=status, error=error, elapsed_ms=elapsed))
                if status is not None and 200 <= status < 300:
                    delivery.status = "delivered"
                    self._state.callbacks_delivered += 1
                    return
            delivery.status = "failed"
            self._state.callbacks_failed += 1
            logger.info("sandbox: callback %s to %s failed after %d attempts", delivery.event_id, delivery.url,
                        len(delivery.attempts))
        finally:
            delivery.done.set()
