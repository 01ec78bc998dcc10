"""What the HTTP security tests share: a real runtime (the root, embedded sandbox) and a real socket."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import anyio
from starlette.types import ASGIApp

from kai_bridge.config import Settings, load_settings
from kai_bridge.http.server import AppServer, bind_socket, url_of
from kai_bridge.runtime import Runtime, open_runtime

MCP_TOKEN = "mcp-token-" + "0123456789abcdef"
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
POST_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
OPERATOR_ROUTES = ("/health", "/ready", "/diagnostics/coze", "/diagnostics/kai")


def settings_for(tmp_path: Path, overrides: Mapping[str, object] | None = None) -> Settings:
    """Defaults (embedded sandbox) with state and logs in ``tmp_path``, plus ``overrides``."""
    values: dict[str, object] = {"data_dir": tmp_path / "data", "log_dir": tmp_path / "logs"}
    values.update(overrides or {})
    return load_settings(environ={}, overrides=values, check_files=False)


@contextlib.asynccontextmanager
async def runtime_for(tmp_path: Path, overrides: Mapping[str, object] | None = None) -> AsyncIterator[Runtime]:
    """The real composition root over the embedded sandbox."""
    async with open_runtime(settings_for(tmp_path, overrides), announce=lambda _: None) as runtime:
        yield runtime


@contextlib.asynccontextmanager
async def serving_app(app: ASGIApp) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (any free port); yield ``http://127.0.0.1:PORT``."""
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
