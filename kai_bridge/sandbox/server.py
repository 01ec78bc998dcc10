"""Runs the sandbox on a real socket inside the caller's event loop (uvicorn, no signal capture).

``start_sandbox`` binds first (port 0 picks a free port), so the handle's ``base_url`` is
correct before the first request. uvicorn runs with an h11 protocol subclass that exposes each
connection's transport to the app, which is what lets a fault drop a connection without
sending a byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol

from kai_bridge.sandbox.answers import Answerer, answerer_name
from kai_bridge.sandbox.app import create_app, sandbox_context
from kai_bridge.sandbox.config import COFFEE_BOT_ID, PLUGIN_BOT_ID, SandboxConfig
from kai_bridge.sandbox.faults import TRANSPORT_STATE_KEY, FaultEngine
from kai_bridge.sandbox.listen import listen_socket, sandbox_url
from kai_bridge.sandbox.plugins import PluginCatalog
from kai_bridge.sandbox.state import SandboxState

__all__ = ["SandboxHandle", "start_sandbox"]

logger = logging.getLogger(__name__)

_STARTUP_TIMEOUT = 10.0


class _TransportExposingH11(H11Protocol):
    """Puts the connection's transport into the ASGI per-connection ``state`` (for drop faults)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.app_state = {**self.app_state, TRANSPORT_STATE_KEY: transport}
        super().connection_made(transport)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the host process's signal handlers alone and stops promptly."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._wake = asyncio.Event()

    def request_exit(self) -> None:
        self.should_exit = True
        self._wake.set()

    async def main_loop(self) -> None:
        # uvicorn's loop, but woken at once on exit instead of at the next 100 ms tick.
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 0.1)
            should_exit = await self.on_tick(counter)

    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield

    def install_signal_handlers(self) -> None:  # older uvicorn versions
        return None


@dataclass(frozen=True, slots=True)
class SandboxHandle:
    """A running sandbox: where it listens and what it serves."""

    base_url: str
    workspace_id: str
    bot_ids: dict[str, str]
    state: SandboxState
    faults: FaultEngine
    app: Starlette
    kids: dict[str, str] = field(default_factory=dict)  # kid -> app id
    answerer: str = ""
    plugins: PluginCatalog | None = None  # imported cloud plugins and their bots

    @property
    def host_port(self) -> str:
        """``host:port``, the JWT ``aud`` cozepy derives from ``base_url``."""
        return self.base_url.split("://", 1)[1]




@contextlib.asynccontextmanager
async def start_sandbox(
    config: SandboxConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    answerer: Answerer | None = None,
    clock: Callable[[], float] | None = None,
    sock: socket.socket | None = None,
) -> AsyncIterator[SandboxHandle]:
    """Serve a sandbox on ``host:port`` (0 = ephemeral) in this event loop until the block exits.

    ``sock``: a socket already listening on ``host`` (see :func:`listen_socket`) to serve on
    instead of binding one; it is closed when the block exits, like one bound here.
    """
    app = create_app(config, answerer=answerer, clock=clock)
    ctx = sandbox_context(app)
    if sock is None:
        sock = listen_socket(host, port)
    bound_port = sock.getsockname()[1]
    uv_config = uvicorn.Config(
        app,
        http=_TransportExposingH11,
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
        timeout_keep_alive=30,
    )
    server = _EmbeddedServer(uv_config)
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]), name="kai-bridge-sandbox")
    try:
        async with asyncio.timeout(_STARTUP_TIMEOUT):
            while not server.started:
                if task.done():
                    break
                await asyncio.sleep(0.005)
        if not server.started:
            exc = task.exception() if task.done() else None
            raise RuntimeError(f"the sandbox failed to start on {host}:{bound_port}") from exc
        handle = SandboxHandle(
            base_url=sandbox_url(host, bound_port),
            workspace_id=config.workspace_id,
            bot_ids={"coffee": COFFEE_BOT_ID, "plugin": PLUGIN_BOT_ID},
            state=ctx.state,
            faults=ctx.faults,
            app=app,
            kids=ctx.auth.kids,
            answerer=answerer_name(ctx.answerer),
            plugins=ctx.plugins,
        )
        logger.info("sandbox listening on %s (answers: %s)", handle.base_url, handle.answerer)
        yield handle
    finally:
        server.request_exit()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=10)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            sock.close()
