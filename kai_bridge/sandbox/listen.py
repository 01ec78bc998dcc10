"""The sandbox's listening socket and URL, without the HTTP stack (so it can be bound before serving)."""

from __future__ import annotations

import socket

__all__ = ["listen_socket", "sandbox_url"]


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def listen_socket(host: str, port: int) -> socket.socket:
    """A non-blocking TCP socket listening on ``host:port`` (0 = ephemeral), for :func:`start_sandbox`.

    Connections made before the sandbox serves wait in the backlog: the URL is usable at once.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio only turns Nagle off (TCP_NODELAY) on sockets whose proto is
    # IPPROTO_TCP, and with Nagle on every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def sandbox_url(host: str, port: int) -> str:
    """``http://host:port``, as clients (and so the JWT ``aud``) name the sandbox."""
    return f"http://{_format_host(host)}:{port}"
