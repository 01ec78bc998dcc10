"""Serve a bridge's HTTP app with uvicorn on a real socket inside the test's event loop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio

from kai_bridge.http.app import build_app
from kai_bridge.http.server import AppServer, bind_socket, url_of
from kai_bridge.mcp.server import McpExtension


@contextlib.asynccontextmanager
async def serving(runtime: Any, *, extensions: Sequence[McpExtension] = ()) -> AsyncIterator[str]:
    """Yield the base URL (``http://127.0.0.1:PORT``) while the app is being served."""
    app = build_app(runtime, extensions=extensions)
    sock = bind_socket("127.0.0.1", 0)
    started = anyio.Event()
    server = AppServer(app, handle_signals=False, on_started=started.set, graceful_timeout=2)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(10):
                await started.wait()
            try:
                yield url_of(sock)
            finally:
                server.should_exit = True
    finally:
        sock.close()
