"""Running a Starlette app with uvicorn inside our own event loop.

We bind the socket ourselves (so ``port=0`` works and the real port is known before any
request), tell uvicorn not to touch logging, and handle SIGINT/SIGTERM by stopping the
server gracefully *without* re-raising the signal afterwards (uvicorn's default), so the
composition root still closes the store, the HTTP client and the sandbox in order.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Generator
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from kai_bridge.errors import ConfigError

__all__ = ["AppServer", "bind_socket", "url_of"]

logger = logging.getLogger(__name__)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port=0``: any free port). ConfigError when taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio only sets TCP_NODELAY on sockets that say TCP; without it every
    # response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another port with --port)"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket, path: str = "") -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


class AppServer(uvicorn.Server):
    """A uvicorn server that calls ``on_started`` once listening and may leave signals alone."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        handle_signals: bool,
        access_log: bool = False,
        on_started: Callable[[], None] | None = None,
        graceful_timeout: float = 5.0,
    ) -> None:
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=access_log,
            lifespan="on",
            timeout_graceful_shutdown=int(graceful_timeout),
            server_header=False,
        )
        super().__init__(config)
        self._handle_signals = handle_signals
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            self._on_started()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if not self._handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return

        def stop(sig: int, frame: FrameType | None) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

        originals = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)
