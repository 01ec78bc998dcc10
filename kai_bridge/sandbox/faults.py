"""Fault injection: latency, 5xx, 429 with Retry-After, dropped connections, cut streams.

Rules come from the config at start and from ``POST /_sandbox/faults`` at run time. Decisions
use one seedable ``random.Random`` so a test that fixes the seed sees the same faults every run.

A *dropped connection* closes the socket without a single response byte. Under uvicorn (as run
by :func:`kai_bridge.sandbox.start_sandbox`) the connection's transport is reachable through the
per-connection ASGI state and is aborted. In-process (``httpx.ASGITransport``) there is no
socket, so the fault raises ``httpx.RemoteProtocolError`` into the caller instead, which is the
error an httpx client would see for a real drop.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

import httpx
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kai_bridge.sandbox.config import FaultRule
from kai_bridge.sandbox.state import SandboxState
from kai_bridge.sandbox.wire import LOGID_SCOPE_KEY, dumps

__all__ = ["FAIL_CHAT_SCOPE_KEY", "TRANSPORT_STATE_KEY", "FaultDecision", "FaultEngine", "RouteFaultMiddleware"]

TRANSPORT_STATE_KEY = "kai_bridge.sandbox.transport"
FAIL_CHAT_SCOPE_KEY = "kai_bridge.sandbox.fail_chat"


@dataclass(slots=True)
class _Active:
    rule: FaultRule
    remaining: int | None


@dataclass(frozen=True, slots=True)
class FaultDecision:
    latency_s: float = 0.0
    action: str | None = None  # "drop" | "rate_limit" | "error"
    retry_after: int = 1
    error_status: int = 500
    cut_after_events: int | None = None
    fail_chat: bool = False
    after_effect: bool = False


def _matches(pattern: str, name: str, path: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("/"):
        return fnmatchcase(path, pattern)
    return fnmatchcase(name, pattern)


class FaultEngine:
    def __init__(self, *, rules: Iterable[FaultRule], seed: int | None) -> None:
        self._rng = random.Random(seed)
        self._active: list[_Active] = [_Active(r, r.times) for r in rules]

    @property
    def rules(self) -> list[FaultRule]:
        return [a.rule for a in self._active]

    def add(self, rule: FaultRule) -> None:
        self._active.append(_Active(rule, rule.times))

    def clear(self) -> None:
        self._active.clear()

    def reseed(self, seed: int | None) -> None:
        self._rng = random.Random(seed)

    def decide(self, name: str, path: str) -> FaultDecision | None:
        if not self._active:
            return None
        latency = 0.0
        action: str | None = None
        retry_after = 1
        error_status = 500
        cut: int | None = None
        fail_chat = False
        after_effect = False
        matched = False
        for active in list(self._active):
            rule = active.rule
            if not _matches(rule.route, name, path):
                continue
            matched = True
            if active.remaining is not None:
                active.remaining -= 1
                if active.remaining <= 0:
                    self._active.remove(active)
            latency += rule.latency_ms / 1000.0
            if action is None and (rule.drop_rate or rule.rate_limit_rate or rule.error_rate):
                u = self._rng.random()
                if u < rule.drop_rate:
                    action = "drop"
                elif u < rule.drop_rate + rule.rate_limit_rate:
                    action, retry_after = "rate_limit", rule.retry_after
                elif u < rule.drop_rate + rule.rate_limit_rate + rule.error_rate:
                    action, error_status, after_effect = "error", rule.error_status, rule.error_after_effect
            if cut is None and rule.cut_stream_after_events is not None:
                cut = rule.cut_stream_after_events
            if not fail_chat and rule.fail_chat_rate and self._rng.random() < rule.fail_chat_rate:
                fail_chat = True
        if not matched:
            return None
        return FaultDecision(latency, action, retry_after, error_status, cut, fail_chat, after_effect)


async def _abort_connection(scope: Scope) -> bool:
    """Abort the client socket; False when there is none (in-process transport)."""
    state = scope.get("state")
    transport = state.get(TRANSPORT_STATE_KEY) if isinstance(state, dict) else None
    if not isinstance(transport, asyncio.Transport):
        return False
    transport.abort()
    # Let the server notice the loss before the app returns, so it does not answer a 500.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return True


async def _send_json(send: Send, *, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
    raw = dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw, "more_body": False})


class RouteFaultMiddleware:
    """Per-route ASGI middleware: counts the request and applies the matching fault rules."""

    def __init__(self, app: ASGIApp, *, name: str, faults: FaultEngine, state: SandboxState) -> None:
        self.app = app
        self.name = name
        self.faults = faults
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.state.requests[self.name] += 1
        decision = self.faults.decide(self.name, scope["path"])
        if decision is None:
            await self.app(scope, receive, send)
            return
        if decision.latency_s > 0:
            self.state.faults_injected["latency"] += 1
            await asyncio.sleep(decision.latency_s)
        logid = str(scope.get(LOGID_SCOPE_KEY, ""))
        if decision.action == "drop":
            self.state.faults_injected["drop"] += 1
            if not await _abort_connection(scope):
                raise httpx.RemoteProtocolError("sandbox fault: connection dropped without a response")
            return
        if decision.action == "rate_limit":
            self.state.faults_injected["rate_limit"] += 1
            await _send_json(
                send,
                status=429,
                body={
                    "code": 4013,
                    "msg": "Rate limit exceeded, please retry later (injected by the sandbox fault rules)",
                    "detail": {"logid": logid},
                },
                headers=[(b"retry-after", str(decision.retry_after).encode())],
            )
            return
        if decision.action == "error":
            self.state.faults_injected["error"] += 1
            if decision.after_effect:
                # The route runs to its end (a chat is created and answered); its answer is lost.
                await self.app(scope, receive, _discard)
            await _send_json(
                send,
                status=decision.error_status,
                body={
                    "code": 5000,
                    "msg": "Server internal error (injected by the sandbox fault rules)",
                    "detail": {"logid": logid},
                },
                headers=[],
            )
            return
        if decision.fail_chat:
            self.state.faults_injected["fail_chat"] += 1
            scope[FAIL_CHAT_SCOPE_KEY] = True
        if decision.cut_after_events is not None:
            send = _StreamCutter(scope, send, decision.cut_after_events, self.state)
        await self.app(scope, receive, send)


async def _discard(message: Message) -> None:
    return None


class _StreamCutter:
    """Wraps ``send``: lets N SSE events through, then aborts the connection (no ``done``)."""

    def __init__(self, scope: Scope, send: Send, limit: int, state: SandboxState) -> None:
        self._scope = scope
        self._send = send
        self._left = limit
        self._state = state
        self._cut = False
        self._streaming = False

    async def __call__(self, message: Message) -> None:
        if self._cut:
            return
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", []))
            self._streaming = b"event-stream" in headers.get(b"content-type", b"")
            await self._send(message)
            if self._streaming and self._left == 0:
                await self._do_cut()
            return
        if message["type"] != "http.response.body" or not self._streaming:
            await self._send(message)
            return
        body: bytes = message.get("body", b"")
        events = body.count(b"\n\n")
        if events < self._left:
            self._left -= events
            await self._send(message)
            return
        # Send exactly the remaining allowance of whole events, then cut.
        end = 0
        for _ in range(self._left):
            end = body.index(b"\n\n", end) + 2
        if end:
            await self._send({"type": "http.response.body", "body": body[:end], "more_body": True})
        self._left = 0
        await self._do_cut()

    async def _do_cut(self) -> None:
        self._cut = True
        self._state.faults_injected["cut_stream"] += 1
        if not await _abort_connection(self._scope):
            raise httpx.RemoteProtocolError("sandbox fault: stream cut before the done event")
