"""Fixtures for the plugin face tests: a bridge over the sandbox, and the face in front of its registry."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from kai_bridge.plugin import PluginFace, PluginOptions
from kai_bridge.tools.registry import ToolRegistry


class FakeClock:
    """A monotonic clock the test moves by hand (the rate limiter reads it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now



@pytest.fixture
def token() -> str:
    return secrets.token_hex(16)




@contextlib.asynccontextmanager
async def face_client(
    registry: ToolRegistry,
    *,
    client: tuple[str, int] = ("127.0.0.1", 50000),
    clock: FakeClock | None = None,
    **options: Any,
) -> AsyncIterator[tuple[PluginFace, httpx.AsyncClient]]:
    """The face over ``registry`` as an in-process ASGI app (``client`` is the peer address it sees)."""
    face = PluginFace(registry=registry, options=PluginOptions(**options), clock=clock or FakeClock())
    app = Starlette(routes=face.routes())
    transport = httpx.ASGITransport(app=app, client=client)
    async with face.running(), httpx.AsyncClient(transport=transport, base_url="http://kai.example.com") as http:
        yield face, http
