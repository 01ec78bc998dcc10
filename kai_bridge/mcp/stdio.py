"""MCP over this process's stdin/stdout on the event loop, without worker threads.

The SDK's ``stdio_server`` reads each line and writes (then flushes) each message through
``anyio.wrap_file``: three thread hand-offs per request/response, and two per progress
notification. Each hand-off wakes a thread and then the loop, which costs 0.1-0.5 ms on a
busy 2-core machine: more than the rest of a cheap tool call. Here stdin and stdout are
asyncio pipe transports instead (the same framing: one JSON-RPC message per line, UTF-8).

Like the SDK, it keeps the wire clean while serving: the wire moves to private duplicates of
fds 0 and 1, fd 0 reads the null device and fd 1 points at stderr, so a stray ``print`` or a
child process cannot corrupt the protocol; both are restored on exit. When stdin or stdout is
not a pipe, socket or terminal (e.g. a regular file), asyncio cannot watch it: the SDK's
threaded ``stdio_server`` is used then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator
from typing import Any, Final

import anyio
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

__all__ = ["MAX_LINE_BYTES", "pipe_transport", "stdio_transport"]

logger = logging.getLogger(__name__)

#: The longest message line accepted (the Streamable HTTP door refuses bodies over 4 MiB).
MAX_LINE_BYTES: Final = 64 * 1024 * 1024

ReadStream = MemoryObjectReceiveStream[SessionMessage | Exception]
WriteStream = MemoryObjectSendStream[SessionMessage]


def _watchable(fd: int) -> bool:
    """Whether asyncio can watch ``fd`` (pipes, sockets and character devices only)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


@contextlib.asynccontextmanager
async def stdio_transport() -> AsyncIterator[tuple[Any, Any]]:
    """``async with stdio_transport() as (read_stream, write_stream):`` for ``Server.run``."""
    if sys.platform == "win32" or not (_watchable(0) and _watchable(1)):
        async with stdio_server() as streams:
            yield streams
        return
    wire_in, wire_out = _claim(0, os.O_RDONLY), _claim(1, os.O_WRONLY)
    try:
        async with pipe_transport(wire_in, wire_out) as streams:
            yield streams
    finally:
        _restore(0, wire_in)
        _restore(1, wire_out)


def _claim(fd: int, flags: int) -> int:
    """Move the wire off ``fd`` onto a private duplicate; ``fd`` then reads null / writes stderr."""
    private = os.dup(fd)
    os.set_inheritable(private, False)
    if fd == 0:
        null = os.open(os.devnull, flags)
        try:
            os.dup2(null, 0)
        finally:
            os.close(null)
    else:
        os.dup2(2, fd)
    return private


def _restore(fd: int, private: int) -> None:
    with contextlib.suppress(OSError):
        os.set_blocking(private, True)  # asyncio made the shared description non-blocking
        os.dup2(private, fd)
    with contextlib.suppress(OSError):
        os.close(private)


class _Writer(asyncio.Protocol):
    """Write-side flow control: :meth:`drain` waits while the pipe's buffer is full."""

    def __init__(self) -> None:
        self._resumed: asyncio.Future[None] | None = None
        self.lost: BaseException | None = None
        self.closed = False

    def pause_writing(self) -> None:
        if self._resumed is None:
            self._resumed = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        waiter, self._resumed = self._resumed, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc or BrokenPipeError("stdout closed")
        self.resume_writing()

    async def drain(self) -> None:
        if self.closed:
            raise self.lost or BrokenPipeError("stdout closed")
        if self._resumed is not None:
            await self._resumed
            if self.closed:
                raise self.lost or BrokenPipeError("stdout closed")


@contextlib.asynccontextmanager
async def pipe_transport(
    wire_in: int, wire_out: int, *, max_line_bytes: int = MAX_LINE_BYTES
) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
    """JSON-RPC lines read from fd ``wire_in`` and written to fd ``wire_out`` (pipes or sockets).

    Either side of a connection can use it (the tests drive a server with a client on it). When
    the block ends, reading stops and messages already handed to the write stream are written.
    The fds are not closed; they are left non-blocking. A line longer than ``max_line_bytes`` is
    dropped (the session sees a ValueError, as it sees any malformed line) and reading goes on.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=max_line_bytes)
    in_file = os.fdopen(wire_in, "rb", buffering=0, closefd=False)
    out_file = os.fdopen(wire_out, "wb", buffering=0, closefd=False)
    in_transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), in_file)
    out_transport, writer = await loop.connect_write_pipe(_Writer, out_file)

    read_send, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_stream, write_receive = anyio.create_memory_object_stream[SessionMessage](0)

    async def read_lines() -> None:
        async with read_send:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as end:
                    line = end.partial  # EOF: a last line without its newline still counts
                    if not line.strip():
                        return
                except asyncio.LimitOverrunError as exc:
                    await _skip_long_line(reader, exc.consumed)
                    await read_send.send(ValueError(f"a message line longer than {max_line_bytes} bytes was dropped"))
                    continue
                if not line.strip():
                    continue
                try:
                    message = types.jsonrpc_message_adapter.validate_json(
                        line.decode("utf-8", errors="replace"), by_name=False
                    )
                except Exception as exc:  # the session answers malformed input, as with the SDK's stdio
                    await read_send.send(exc)
                    continue
                await read_send.send(SessionMessage(message))

    async def write_messages() -> None:
        async with write_receive:
            async for session_message in write_receive:
                data = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                try:
                    out_transport.write(data.encode("utf-8") + b"\n")
                    await writer.drain()
                except (OSError, RuntimeError) as exc:
                    logger.info("stdout is closed (%s): the client went away", exc)
                    return

    reading = anyio.CancelScope()

    async def read_until_done() -> None:
        with reading:
            await read_lines()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_until_done)
            tg.start_soon(write_messages)
            try:
                yield read_stream, write_stream
            finally:
                # The session is over: stop reading, let the writer finish what it was given.
                reading.cancel()
                read_stream.close()
                write_stream.close()
    finally:
        in_transport.close()
        out_transport.close()


async def _skip_long_line(reader: asyncio.StreamReader, consumed: int) -> None:
    """Discard the rest of an over-long line (up to and including its newline)."""
    await reader.readexactly(consumed)
    while True:
        try:
            await reader.readuntil(b"\n")
            return
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)
        except asyncio.IncompleteReadError:
            return
