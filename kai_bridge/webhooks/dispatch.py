"""The dispatcher: works the inbox after commit, at least once per event, with retries and a dead letter.

It leases due events from the store (:meth:`~kai_bridge.store.base.Store.claim_events`),
runs every handler that applies to each, and records the outcome on the event: ``done``;
``retrying`` with an exponential back-off (jittered) when a handler failed; ``dead`` with the
last error after ``max_attempts`` attempts, or at once when a handler says no retry can help.
A handler that succeeded is not run again on a retry (its result is kept on the event), so a
flaky route does not repeat the log line or the bot state; handlers must still be idempotent,
since a crash between a handler's effect and the outcome's commit repeats it.

Leases make it safe everywhere: while it works the dispatcher renews its leases; if the
process dies they run out and the events are due again (``kill -9`` recovery; another
replica may take them, never two at once). On a clean stop it hands back what it holds
without counting the interrupted attempt. New events wake it at once; a poll picks up
retries that fell due and events other replicas stored.

The door comes first: while events keep arriving (``busy``), the dispatcher works one event
at a time instead of ``concurrency``, so a burst of callbacks is answered at the door's pace
and the dispatcher catches up from the durable backlog afterwards (measured: without this
the dispatcher's store writes halve the door's throughput during a burst). The price is that
a slow route (a Coze chat) delays the others while the door is busy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import anyio
from pydantic import JsonValue

from kai_bridge.errors import KaiBridgeError, StoreError
from kai_bridge.store import Store
from kai_bridge.store.base import InboxEvent, process_owner
from kai_bridge.webhooks.event_routes import EventDocument
from kai_bridge.webhooks.events import ParsedEvent, parse_event

__all__ = ["Dispatcher", "EventHandler", "HandlerError", "StoredEvent"]

logger = logging.getLogger(__name__)

_MAX_ERROR: Final = 2000


class HandlerError(KaiBridgeError):
    """A handler could not do its job. ``permanent``: no retry can help (the event goes dead)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class DispatchSpan(Protocol):
    """Around each dispatch (a trace span, for instance): ``with span(event_type=..., event_id=...)``."""

    def __call__(self, *, event_type: str, event_id: str) -> contextlib.AbstractContextManager[object]: ...


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as handlers see it: the parsed body plus where and when it came in."""

    id: str
    source: str
    received_at: float
    attempts: int
    parsed: ParsedEvent
    document: EventDocument = field(repr=False)

    @property
    def event_type(self) -> str:
        return self.parsed.event_type

    @classmethod
    def from_inbox(cls, event: InboxEvent) -> StoredEvent:
        parsed = parse_event(event.body.encode("utf-8"))
        document = EventDocument(
            body=parsed.body,
            event_type=event.event_type,
            event_id=event.id,
            source=event.source,
            received_at=event.received_at,
        )
        return cls(id=event.id, source=event.source, received_at=event.received_at, attempts=event.attempts,
                   parsed=parsed, document=document)


class EventHandler(Protocol):
    """One thing done with each event. ``handle`` returns a JSON-able result to keep (or None)."""

    @property
    def name(self) -> str: ...

    def applies(self, event: StoredEvent) -> bool: ...

    async def handle(self, event: StoredEvent) -> JsonValue: ...


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


class Dispatcher:
    """Runs ``handlers`` over the inbox of ``store``; :meth:`run` until cancelled, or :meth:`dispatch_due`."""

    def __init__(
        self,
        *,
        store: Store,
        handlers: Sequence[EventHandler],
        max_attempts: int = 5,
        backoff_base: float = 2.0,
        backoff_max: float = 300.0,
        lease: float = 60.0,
        concurrency: int = 8,
        poll_interval: float = 1.0,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        on_finished: Callable[[str], None] | None = None,
        busy: Callable[[], bool] | None = None,
        span: DispatchSpan | None = None,
    ) -> None:
        if max_attempts < 1 or concurrency < 1 or lease <= 0:
            raise ValueError("max_attempts and concurrency must be >= 1 and lease > 0")
        self._store = store
        self._handlers = list(handlers)
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._lease = lease
        self._concurrency = concurrency
        self._poll_interval = poll_interval
        self.owner = owner or process_owner()
        self._clock = clock
        self._rng = rng or random.Random()  # jitter only, not security
        self._on_finished = on_finished
        self._busy = busy
        self._span = span
        self._wake: anyio.Event | None = None
        self._in_flight: set[str] = set()
        self.finished = 0  # outcomes recorded (for diagnostics and tests)

    # ---- driving -------------------------------------------------------------------------------
    def wake(self) -> None:
        """Look for due events now (called when an event was committed). Safe from the loop's thread."""
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Dispatch until cancelled; on the way out, hand back every event still held."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._renew_leases)
                while True:
                    wake = self._wake = anyio.Event()
                    # While the door is busy receiving, work one event at a time: answering
                    # senders in time (Coze waits 3 s) comes first, the backlog is durable.
                    limit = 1 if self._busy is not None and self._busy() else self._concurrency
                    free = limit - len(self._in_flight)
                    claimed = await self._claim(free) if free > 0 else []
                    for event in claimed:
                        self._in_flight.add(event.id)
                        tg.start_soon(self._work, event)
                    if claimed and len(claimed) == free:
                        # Every slot taken: wait for one to free up (then claim again, which also
                        # picks up whatever arrived meanwhile), not for the next new event.
                        wake = self._wake = anyio.Event()
                    with anyio.move_on_after(self._poll_interval):
                        await wake.wait()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                try:
                    released = await self._store.release_events(owner=self.owner)
                except StoreError as exc:
                    logger.warning("webhook dispatcher: could not hand back its events (%s); their leases run out", exc)
                else:
                    if released:
                        logger.info("webhook dispatcher stopped: %d event(s) handed back for later", released)

    async def dispatch_due(self, *, limit: int = 100) -> int:
        """Claim and handle every event due now, up to ``limit``; returns how many were handled."""
        claimed = await self._store.claim_events(owner=self.owner, limit=limit, lease=self._lease)
        async with anyio.create_task_group() as tg:
            limiter = anyio.CapacityLimiter(self._concurrency)
            for event in claimed:

                async def one(event: InboxEvent = event) -> None:
                    async with limiter:
                        await self._handle(event)

                tg.start_soon(one)
        return len(claimed)

    async def _claim(self, limit: int) -> list[InboxEvent]:
        try:
            return await self._store.claim_events(owner=self.owner, limit=limit, lease=self._lease)
        except StoreError as exc:
            logger.warning("webhook dispatcher: claiming events failed (%s); trying again shortly", exc)
            return []

    async def _work(self, event: InboxEvent) -> None:
        try:
            await self._handle(event)
        except Exception:
            # A bug here must not stop the dispatcher (nor the server it runs in): the event's
            # lease runs out and it is tried again.
            logger.exception("webhook dispatcher: handling event %s failed unexpectedly", event.id)
        finally:
            self._in_flight.discard(event.id)
            self.wake()

    async def _renew_leases(self) -> None:
        while True:
            await anyio.sleep(self._lease / 3)
            if self._in_flight:
                try:
                    await self._store.renew_leases(owner=self.owner, lease=self._lease)
                except StoreError as exc:
                    logger.warning("webhook dispatcher: renewing leases failed (%s)", exc)

    # ---- one event -----------------------------------------------------------------------------
    async def _handle(self, event: InboxEvent) -> None:
        scope = self._span(event_type=event.event_type, event_id=event.id) if self._span else contextlib.nullcontext()
        with scope:
            outcomes, failures = await self._run_handlers(event)
        result = json.dumps({"handlers": outcomes}, ensure_ascii=False, separators=(",", ":"))
        if not failures:
            status, error, due = "done", None, None
        else:
            error = _clip("; ".join(f"{name}: {exc}" for name, exc in failures))
            permanent = any(exc.permanent for _, exc in failures)
            if permanent or event.attempts >= self._max_attempts:
                status, due = "dead", None
                why = "no retry can fix it" if permanent else f"after {event.attempts} attempt(s)"
                logger.warning("webhook event %s (%s) is dead %s: %s", event.id, event.event_type, why, error)
            else:
                status, due = "retrying", self._clock() + self._backoff(event.attempts)
                logger.info("webhook event %s (%s) failed attempt %d, retrying: %s", event.id,
                            event.event_type, event.attempts, error)
        try:
            kept = await self._store.finish_event(
                event_id=event.id, owner=self.owner, status=status, result=result, error=error, due_at=due
            )
        except StoreError as exc:
            logger.warning("webhook event %s: recording its outcome failed (%s); it will be tried again", event.id, exc)
            return
        if not kept:
            logger.warning("webhook event %s: the lease ran out while it was handled; another owner has it", event.id)
            return
        self.finished += 1
        if self._on_finished is not None:
            self._on_finished(event.id)

    async def _run_handlers(self, event: InboxEvent) -> tuple[dict[str, JsonValue], list[tuple[str, HandlerError]]]:
        outcomes = _previous_successes(event.result)
        failures: list[tuple[str, HandlerError]] = []
        try:
            stored = StoredEvent.from_inbox(event)
        except ValueError as exc:  # cannot happen for what the door stored; said plainly if it does
            failure = HandlerError(f"the stored body is not an event: {exc}", permanent=True)
            return outcomes, [("inbox", failure)]
        for handler in self._handlers:
            name = handler.name
            if name in outcomes or not handler.applies(stored):
                continue
            try:
                value = await handler.handle(stored)
            except HandlerError as exc:
                outcomes[name] = {"ok": False, "error": _clip(str(exc))}
                failures.append((name, exc))
            except KaiBridgeError as exc:
                outcomes[name] = {"ok": False, "error": _clip(str(exc))}
                failures.append((name, HandlerError(str(exc))))
            except Exception:
                error_id = uuid.uuid4().hex[:12]
                logger.exception("webhook handler %s failed on event %s (error id %s)", name, event.id, error_id)
                message = f"internal error (error id {error_id}); the server log has details"
                outcomes[name] = {"ok": False, "error": message}
                failures.append((name, HandlerError(message)))
            else:
                outcomes[name] = {"ok": True} if value is None else {"ok": True, "result": value}
        return outcomes, failures

    def _backoff(self, attempts: int) -> float:
        delay: float = min(self._backoff_max, self._backoff_base * 2.0 ** max(0, attempts - 1))
        return delay * self._rng.uniform(0.8, 1.2)


def _previous_successes(result: str | None) -> dict[str, JsonValue]:
    """The handlers that already succeeded on an earlier attempt (they are not run again)."""
    if not result:
        return {}
    try:
        handlers = json.loads(result).get("handlers", {})
    except (ValueError, AttributeError):
        return {}
    if not isinstance(handlers, dict):
        return {}
    return {name: outcome for name, outcome in handlers.items() if isinstance(outcome, dict) and outcome.get("ok")}
