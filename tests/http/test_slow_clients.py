"""Slow clients cannot hold the server: every request must arrive whole in time, connections are capped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from kai_bridge.http.server import AppServer, bind_socket


async def _echo(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(f"got {len(body)} bytes")


@contextlib.asynccontextmanager
async def _server(*, request_timeout: float, max_connections: int | None = 1000) -> AsyncIterator[int]:
    app = Starlette(routes=[Route("/", _echo, methods=["GET", "POST"])])
    sock = bind_socket("127.0.0.1", 0)
    started = anyio.Event()
    server = AppServer(app, handle_signals=False, on_started=started.set, graceful_timeout=1,
                       request_timeout=request_timeout, max_connections=max_connections)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(10):
                await started.wait()
            try:
                yield sock.getsockname()[1]
            finally:
                server.should_exit = True
    finally:
        sock.close()


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    with anyio.fail_after(10):
        return await reader.read()  # until the server closes


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"", id="nothing-at-all"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow", id="headers-never-finish"),
        pytest.param(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nonly-a-little",
                     id="body-never-finishes"),
    ],
)
async def test_a_request_that_does_not_arrive_in_time_gets_408_and_the_connection_is_closed(sent: bytes) -> None:
    async with _server(request_timeout=0.2) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(sent)
        await writer.drain()
        answer = await _read_all(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"did not arrive in time" in answer


async def test_a_request_that_arrives_in_pieces_but_in_time_is_answered() -> None:
    async with _server(request_timeout=5.0) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for piece in (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"Content-Length: 5\r\n", b"Connection: close\r\n\r\n",
                      b"he", b"llo"):
            writer.write(piece)
            await writer.drain()
        answer = await _read_all(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"got 5 bytes")


async def test_many_stalled_connections_are_all_dropped_and_the_server_keeps_serving() -> None:
    # Each stalled client writes as soon as it is connected: written after the server's 408 and
    # close, the bytes would meet a closed socket and get a reset instead (a flake under load).
    async def stall() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\n")
        await writer.drain()
        return reader, writer

    async with _server(request_timeout=0.5) as port:
        stalled = [await stall() for _ in range(200)]
        answers = await asyncio.gather(*(_read_all(reader) for reader, _ in stalled))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        fresh = await _read_all(reader)
        for _, stale in [*stalled, (reader, writer)]:
            stale.close()
    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)
    assert fresh.startswith(b"HTTP/1.1 200 ")


async def test_beyond_the_connection_cap_requests_get_503() -> None:
    async with _server(request_timeout=10.0, max_connections=2) as port:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        for _, writer in held:
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # opened, not finished
            await writer.drain()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = await _read_all(reader)
        for _, other in [*held, (reader, writer)]:
            other.close()
    assert answer.startswith(b"HTTP/1.1 503 ")


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    """One keep-alive GET; the whole response (this app's bodies are short and end the read)."""
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    with anyio.fail_after(10):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        return head + await reader.readexactly(length)


async def test_at_the_connection_cap_a_new_client_closes_the_longest_idle_keep_alive_connection() -> None:
    async with _server(request_timeout=10.0, max_connections=3) as port:
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        for reader, writer in idle:  # each served once, then left open and idle
            assert (await _get(reader, writer)).startswith(b"HTTP/1.1 200 ")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        fresh = await _get(reader, writer)
        closed_first = await _read_all(idle[0][0])  # the longest idle: closed by the server (EOF)
        still_open = await _get(*idle[1])
        for _, other in [*idle, (reader, writer)]:
            other.close()
    assert fresh.startswith(b"HTTP/1.1 200 ")  # not a 503: an idle connection made room
    assert closed_first == b""
    assert still_open.startswith(b"HTTP/1.1 200 ")
