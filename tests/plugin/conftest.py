"""Fixtures for the plugin face tests: a bridge over the sandbox, and the face in front of its registry."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from kai_bridge.coze import CozeClient
from kai_bridge.plugin import PluginFace, PluginOptions
from kai_bridge.runtime import Runtime
from kai_bridge.sandbox import SandboxHandle
from kai_bridge.tools.registry import ToolRegistry
from tests.bridge import open_bridge, running_sandbox


class FakeClock:
    """A monotonic clock the test moves by hand (the rate limiter reads it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI configures the root logger: put back what pytest had (caplog needs it)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def token() -> str:
    return secrets.token_hex(16)


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[SandboxHandle, CozeClient]]:
    async with running_sandbox() as pair:
        yield pair


@pytest.fixture
async def bridge(upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path) -> AsyncIterator[Runtime]:
    handle, _coze = upstream
    async with open_bridge(sandbox=handle, db_path=tmp_path / "kb.db") as opened:
        yield opened


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
