"""Serve a bridge's HTTP app with uvicorn on a real socket inside the test's event loop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from kai_bridge.http.app import build_app
from kai_bridge.mcp.server import McpExtension
from kai_bridge.runtime import Runtime
from tests.http.support import serving_app


@contextlib.asynccontextmanager
async def serving(runtime: Runtime, *, extensions: Sequence[McpExtension] = ()) -> AsyncIterator[str]:
    """Yield the base URL (``http://127.0.0.1:PORT``) while ``runtime``'s ``serve`` app is served."""
    async with serving_app(build_app(runtime, extensions=extensions)) as base:
        yield base
