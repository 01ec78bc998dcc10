"""Fixtures for the upstream tests: a real KAI fixture MCP server, over stdio or HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from kai_bridge.config import UpstreamConfig
from kai_bridge.tools import ToolRegistry

SERVER = Path(__file__).with_name("kai_fixture_server.py")
API_KEY = "kai-test-key-7f3e9c"  # a throwaway value for the fixture server only


def stdio_config(
    name: str = "kai", *, timeout: float = 10.0, extra: list[str] | None = None, **kw: object
) -> UpstreamConfig:
    return UpstreamConfig(
        name=name,
        command=[sys.executable, str(SERVER), "stdio", *(extra or [])],
        timeout=timeout,
        **kw,
    )


class HeldSleeps:
    """A sleep to inject into UpstreamManager: every wait (backoff or heartbeat) lasts until ``release()``.

    Each ``release()`` ends one wait, now or the next one to start; so a test decides exactly
    when a heartbeat pings or a reconnection is tried, instead of racing real time.
    """

    def __init__(self) -> None:
        self._tickets = anyio.Semaphore(0)
        self.started = 0

    async def __call__(self, seconds: float) -> None:
        self.started += 1
        await self._tickets.acquire()

    def release(self) -> None:
        self._tickets.release()


class HttpServer:
    """One fixture server process on 127.0.0.1; can be killed and started again on the same port."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SERVER),
            "http",
            "--port",
            str(self.port),
            "--token",
            self.token,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(30):
            line = await self.proc.stdout.readline()
        assert line.startswith(b"PORT "), line
        self.port = int(line.split()[1])

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        self.proc = None


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    server = HttpServer(API_KEY)
    await server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            await server.kill()


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry(default_timeout=60.0)
