"""Helpers for the webhook tests: signed requests, settings, a door over a real SQLite store."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette

from kai_bridge.config import Settings, load_settings
from kai_bridge.store import Store, open_store
from kai_bridge.tools.registry import ToolRegistry
from kai_bridge.webhooks import WebhookService, open_webhooks
from kai_bridge.webhooks.http import webhook_routes


def token() -> str:
    """A token generated at test time."""
    return secrets.token_hex(16)


def sign(body: bytes, verify_token: str, *, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
    """Coze's callback headers for ``body``, computed here as Coze's guide describes it."""
    ts = timestamp if timestamp is not None else str(int(time.time() * 1000))
    nc = nonce if nonce is not None else secrets.token_hex(8)
    signature = hashlib.sha1((ts + nc + verify_token).encode() + body, usedforsecurity=False).hexdigest()
    return {"X-Coze-Signature": signature, "X-Coze-Timestamp": ts, "X-Coze-Nonce": nc,
            "Content-Type": "application/json"}


def coze_body(event_type: str = "bot.published", *, event_id: str | None = None, created_at: int | None = None,
              **event: Any) -> bytes:
    header: dict[str, Any] = {
        "event_type": event_type,
        "event_id": event_id or str(7_400_000_000_000_000_000 + secrets.randbelow(10**17)),
        "created_at": created_at if created_at is not None else int(time.time() * 1000),
        "coze_account_id": "7390000000000000300",
        "api_app_id": "7390000000000009999",
        "connector_id": "1024",
    }
    return json.dumps({"header": header, "event": event or {"bot_id": "7390000000000000001"}}).encode()


def seed_body(conversation_id: str = "conv_123", message: str = "Hello from Coze") -> bytes:
    """The seed guide's step 5.2 request body."""
    return json.dumps({"event": "conversation.message",
                       "data": {"conversation_id": conversation_id, "message": message}}).encode()


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "store_url": f"sqlite:///{tmp_path / 'kb.db'}",
        "data_dir": tmp_path,
        "log_dir": tmp_path,
        **overrides,
    }
    return load_settings(environ={}, overrides=values, check_files=False)


@dataclass
class Door:
    """A webhook door over a real store, served in-process (httpx's ASGI transport)."""

    settings: Settings
    store: Store
    registry: ToolRegistry
    service: WebhookService
    client: httpx.AsyncClient
    verify_token: str
    bearer: str

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.client.post("/webhook/coze", content=body, headers=headers or {})

    async def signed(self, body: bytes, **options: Any) -> httpx.Response:
        return await self.post(body, sign(body, self.verify_token, **options))

    async def bearer_post(self, body: bytes) -> httpx.Response:
        return await self.post(body, {"Authorization": f"Bearer {self.bearer}", "Content-Type": "application/json"})


@contextlib.asynccontextmanager
async def open_door(
    tmp_path: Path,
    *,
    registry: ToolRegistry | None = None,
    dispatch: bool = False,
    clock: Callable[[], float] = time.time,
    poll_interval: float = 1.0,
    **overrides: Any,
) -> AsyncIterator[Door]:
    verify_token, bearer = token(), token()
    values: dict[str, Any] = {"webhook_verify_token": verify_token, "webhook_token": bearer, **overrides}
    settings = settings_for(tmp_path, **values)
    tools = registry or ToolRegistry(default_timeout=10)
    async with open_store(settings.effective_store_url(), clock=clock) as store, open_webhooks(
        settings=settings, store=store, registry=tools, dispatch=dispatch, clock=clock, poll_interval=poll_interval
    ) as service:
        app = Starlette(routes=webhook_routes(receiver=service.receiver))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kai-bridge.test") as client:
            yield Door(settings=settings, store=store, registry=tools, service=service, client=client,
                       verify_token=verify_token, bearer=bearer)


async def wait_for(condition: Callable[[], Any], *, service: WebhookService, seconds: float = 10) -> None:
    """Wait until ``await condition()`` is truthy, re-checking whenever the inbox feed reports a change."""
    changed = anyio.Event()

    async def listener(_ids: list[str]) -> None:
        changed.set()

    unsubscribe = service.feed.subscribe(listener)
    try:
        with anyio.fail_after(seconds):
            while not await condition():
                await changed.wait()
                changed = anyio.Event()
    finally:
        unsubscribe()
