"""Running a Starlette app with uvicorn inside our own event loop.

We bind the socket ourselves (so ``port=0`` works and the real port is known before any
request), tell uvicorn not to touch logging, and handle SIGINT/SIGTERM by stopping the
server gracefully *without* re-raising the signal afterwards (uvicorn's default), so the
composition root still closes the store, the HTTP client and the sandbox in order.

Slow clients: uvicorn arms no timer while a request is still arriving, so a client that
opens a connection and never finishes its headers (or its body) holds it forever, and a few
thousand of them hold the server's file descriptors. :class:`GuardedH11Protocol` gives every
request ``request_timeout`` seconds from its first byte (or from the connection's start) to
arrive whole, then closes the connection with a 408. ``limit_concurrency`` caps connections
(uvicorn answers 503 beyond it); a new connection at the cap first closes the longest-idle
keep-alive connection, if there is one (a client that keeps an idle connection open should
not keep a new client out: it reconnects when it needs to). A reverse proxy in front should still bound header and body
times and sizes itself (README, "Deploying").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Generator
from types import FrameType

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from kai_bridge.errors import ConfigError

__all__ = ["AppServer", "GuardedH11Protocol", "bind_socket", "url_of"]

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


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request to arrive whole (see the module docstring)."""

    request_timeout: float = 30.0  # set on a subclass by AppServer

    _request_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._make_room()
        self._arm_request_timer()  # a connection that sends nothing counts too

    def _make_room(self) -> None:
        """At the connection cap, close the longest-idle keep-alive connection (none idle: uvicorn's 503)."""
        limit = self.limit_concurrency
        if limit is None or len(self.connections) < limit:
            return
        idle = [
            (timer.when(), other)
            for other in self.connections
            if isinstance(other, H11Protocol) and other is not self
            and (timer := other.timeout_keep_alive_task) is not None and not other.transport.is_closing()
        ]
        if not idle:
            return
        _, oldest = min(idle, key=lambda pair: pair[0])  # the keep-alive timer armed first: idle the longest
        oldest._unset_keepalive_if_required()
        oldest.timeout_keep_alive_handler()  # closes it as its keep-alive timer would have
        self.connections.discard(oldest)  # its slot is free now, not when the loop reports the loss
        logger.debug("closed an idle keep-alive connection from %s to make room for a new one", _peer(oldest.client))

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        state = self.conn.their_state
        if state is h11.SEND_BODY or (state is h11.IDLE and self.conn.trailing_data[0]):
            self._arm_request_timer()  # a request has begun and is not whole yet
        else:
            self._cancel_request_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_request_timer()
        super().connection_lost(exc)

    def _arm_request_timer(self) -> None:
        if self._request_timer is None:
            self._request_timer = self.loop.call_later(self.request_timeout, self._request_timed_out)

    def _cancel_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _request_timed_out(self) -> None:
        self._request_timer = None
        if self.transport.is_closing():
            return
        logger.info("closing a connection from %s: its request did not arrive within %.0f s",
                    _peer(self.client), self.request_timeout)
        answering = self.cycle is not None and self.cycle.response_started
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE) and not answering:
            # Nothing was answered on this request yet: say why before closing.
            body = b'{"error": "request_timeout", "error_description": "the request did not arrive in time"}'
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
        self.transport.close()


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "an unknown peer"


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
        request_timeout: float = 30.0,
        keep_alive_timeout: float = 5.0,
        max_connections: int | None = 1000,
    ) -> None:
        protocol = type("KaiBridgeH11Protocol", (GuardedH11Protocol,), {"request_timeout": request_timeout})
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=access_log,
            lifespan="on",
            timeout_graceful_shutdown=int(graceful_timeout),
            server_header=False,
            http=protocol,
            timeout_keep_alive=max(1, round(keep_alive_timeout)),
            limit_concurrency=max_connections,
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
