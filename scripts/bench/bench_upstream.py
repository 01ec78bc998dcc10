#!/usr/bin/env python3
"""Benchmark upstream KAI tool proxying: registry -> UpstreamManager -> real MCP server.

    .venv/bin/python scripts/bench/bench_upstream.py [--n 1000]

Runs the test fixture server (tests/upstream/kai_fixture_server.py) over stdio and over
Streamable HTTP (JSON responses, bearer key) and reports calls per second through
``ToolRegistry.call``: sequential, and with 32 calls in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from pydantic import SecretStr  # noqa: E402

from kai_bridge.config import UpstreamConfig  # noqa: E402
from kai_bridge.tools import ToolRegistry  # noqa: E402
from kai_bridge.upstream import UpstreamManager  # noqa: E402

SERVER = REPO / "tests" / "upstream" / "kai_fixture_server.py"


async def bench(label: str, config: UpstreamConfig, n: int) -> list[str]:
    registry = ToolRegistry()
    rows = []
    async with UpstreamManager(configs=[config], registry=registry) as manager:
        if not await manager.wait_ready(30):
            return [f"| {label} | not connected: {manager.diagnostics()[0]['last_error']} | |"]
        for _ in range(50):
            await registry.call("kai.echo", {"text": "warm"})
        for tool, args in (("kai.echo", {"text": "x"}), ("kai.add", {"a": 1, "b": 2})):
            start = time.perf_counter()
            for _ in range(n):
                await registry.call(tool, args)
            elapsed = time.perf_counter() - start
            rows.append(f"| {label} | {tool} sequential | {n / elapsed:,.0f} /s ({elapsed / n * 1000:.2f} ms) |")
        gate = asyncio.Semaphore(32)

        async def one() -> None:
            async with gate:
                await registry.call("kai.echo", {"text": "x"})

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n * 2)))
        rows.append(f"| {label} | kai.echo, 32 in flight | {n * 2 / (time.perf_counter() - start):,.0f} /s |")
    return rows


async def run(n: int) -> None:
    print("| transport | calls | rate |\n|---|---|---|")
    stdio = UpstreamConfig(name="kai", command=[sys.executable, str(SERVER), "stdio"])
    for row in await bench("stdio", stdio, n):
        print(row)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SERVER), "http", "--port", "0", "--token", "bench-key", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        port = int((await proc.stdout.readline()).split()[1])
        http = UpstreamConfig(name="kai", url=f"http://127.0.0.1:{port}/mcp", api_key=SecretStr("bench-key"))
        for row in await bench("http", http, n):
            print(row)
    finally:
        proc.kill()
        await proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    asyncio.run(run(parser.parse_args().n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
