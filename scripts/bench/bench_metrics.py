#!/usr/bin/env python3
"""Benchmark the observability: a /metrics scrape idle and under load, and what recording costs a request.

    .venv/bin/python scripts/bench/bench_metrics.py [--reps N] [--load TASKS]

One runtime (the embedded sandbox as Coze, SQLite in a temporary directory) serves the real
app on a local socket. Its registry is filled first with a realistic spread of series (tools x
doors x outcomes, Coze endpoints, HTTP routes). Measured, each against its baseline in the same
run, interleaved round by round (the machine is shared and noisy):

- scrape latency: ``GET /metrics`` over HTTP with nothing else running vs while ``--load`` tasks
  keep calling a tool over MCP (Streamable HTTP) and polling ``/health`` on the same process;
  and the in-process cost of formatting the registry and of the monitoring snapshot;
- middleware overhead: the same operator app (``/health``) with and without the HTTP metrics
  middleware, called in-process through ASGI (no socket noise), per request;
- tool-call overhead: ``ToolRegistry.call`` of a trivial tool with the metrics observer vs none.

Prints a Markdown table of medians (and p90 for the scrapes) with ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from mcp.client import Client  # noqa: E402
from prometheus_client.exposition import generate_latest  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.types import Message  # noqa: E402

from kai_bridge.config import load_settings  # noqa: E402
from kai_bridge.coze import CozeOutcome  # noqa: E402
from kai_bridge.http.app import build_app, operator_routes  # noqa: E402
from kai_bridge.http.server import AppServer, bind_socket, url_of  # noqa: E402
from kai_bridge.knowledge import KnowledgeBase  # noqa: E402
from kai_bridge.observability import HttpMetricsMiddleware, Metrics, build_snapshot  # noqa: E402
from kai_bridge.runtime import Runtime, RuntimeParts, open_runtime  # noqa: E402
from kai_bridge.tools import Door, NullToolContext, Tool, ToolAnnotations, ToolOutcome, ToolRegistry  # noqa: E402


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.2f} ms"


def us(value: float) -> str:
    return f"{value * 1e6:.1f} µs"


def p90(values: list[float]) -> float:
    return sorted(values)[int(0.9 * (len(values) - 1))]


def fill_series(metrics: Metrics) -> None:
    """A realistic spread: 8 tools x 4 doors x 3 outcomes, 10 Coze endpoints x 3 codes, 12 routes x 3 statuses."""
    for t in range(8):
        for door in (Door.MCP_HTTP, Door.MCP_STDIO, Door.CLI, Door.REQUIRES_ACTION):
            for outcome in (ToolOutcome.OK, ToolOutcome.INPUT_ERROR, ToolOutcome.ERROR):
                for _ in range(5):
                    metrics.call_started(tool=f"tool_{t}", door=door)(outcome, None)
    for e in range(10):
        for code in ("0", "5000", "transport"):
            metrics.request_started(endpoint=f"endpoint_{e}")(CozeOutcome(code=code, logid=None, error=None))
    for r in range(12):
        for status in (200, 404, 500):
            metrics.http_request(route=f"/route/{r}", method="GET", status=status, seconds=0.001)


async def asgi_get(app: Any, path: str) -> int:
    """One in-process GET through the ASGI app; returns the status."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def interleaved(rounds: int, per_round: int, a: Callable[[], Awaitable[Any]],
                      b: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """Median per-call seconds of ``a`` and ``b``, alternating blocks of ``per_round`` calls."""
    times_a: list[float] = []
    times_b: list[float] = []
    for _ in range(rounds):
        for target, times in ((a, times_a), (b, times_b)):
            start = time.perf_counter()
            for _ in range(per_round):
                await target()
            times.append((time.perf_counter() - start) / per_round)
    return statistics.median(times_a), statistics.median(times_b)


async def scrape_latency(runtime: Runtime, base: str, *, reps: int, load: int) -> list[str]:
    rows = []
    idle: list[float] = []
    loaded: list[float] = []
    stop = asyncio.Event()
    load_calls = 0

    async def load_task(http: httpx.AsyncClient) -> None:
        nonlocal load_calls
        async with Client(f"{base}/mcp", mode="legacy") as client:
            while not stop.is_set():
                await client.call_tool("coffee_knowledge_query", {"query": "espresso"})
                await http.get(base + "/health")
                load_calls += 2

    async with httpx.AsyncClient(timeout=30) as http:
        async def scrape() -> float:
            start = time.perf_counter()
            response = await http.get(base + "/metrics")
            response.raise_for_status()
            return time.perf_counter() - start

        for _ in range(5):
            await scrape()  # warm-up
        block = max(1, reps // 5)
        for _ in range(5):
            idle.extend([await scrape() for _ in range(block)])
            stop.clear()
            tasks = [asyncio.create_task(load_task(http)) for _ in range(load)]
            await asyncio.sleep(0.3)  # let the load reach a steady state
            loaded.extend([await scrape() for _ in range(block)])
            stop.set()
            await asyncio.gather(*tasks)
        size = len((await http.get(base + "/metrics")).content)
    rows.append(f"| scrape `GET /metrics`, idle | {ms(idle)} (p90 {p90(idle) * 1000:.2f} ms) | baseline |")
    rows.append(f"| scrape `GET /metrics`, {load} tasks of MCP tool calls + /health | {ms(loaded)} "
                f"(p90 {p90(loaded) * 1000:.2f} ms) | {statistics.median(loaded) / statistics.median(idle):.2f}x |")
    registry = runtime.observability.metrics.registry
    formats = []
    for _ in range(200):
        start = time.perf_counter()
        generate_latest(registry)
        formats.append(time.perf_counter() - start)
    snaps = []
    for _ in range(200):
        start = time.perf_counter()
        build_snapshot(runtime.observability.sources, runtime.observability.metrics)
        snaps.append(time.perf_counter() - start)
    rows.append(f"| format the registry in-process ({size / 1024:.0f} KiB of text) | {ms(formats)} | |")
    rows.append(f"| build the monitoring snapshot in-process | {ms(snaps)} | |")
    rows.append(f"| (load served meanwhile: {load_calls} requests) | | |")
    return rows


async def middleware_overhead(runtime: Runtime, *, rounds: int, per_round: int) -> list[str]:
    routes = operator_routes(runtime)
    bare = Starlette(routes=routes)
    metrics = Metrics(process=False)
    measured = Starlette(routes=routes, middleware=[Middleware(HttpMetricsMiddleware, metrics=metrics, routes=routes)])
    for app in (bare, measured):
        for _ in range(200):
            assert await asgi_get(app, "/health") == 200
    without, with_ = await interleaved(rounds, per_round, lambda: asgi_get(bare, "/health"),
                                       lambda: asgi_get(measured, "/health"))
    unmatched_without, unmatched_with = await interleaved(rounds, per_round, lambda: asgi_get(bare, "/nowhere"),
                                                          lambda: asgi_get(measured, "/nowhere"))
    return [
        f"| `/health` in-process, without middleware | {us(without)} | baseline |",
        f"| `/health` in-process, with the metrics middleware | {us(with_)} | {with_ / without:.3f}x "
        f"(+{us(with_ - without)}) |",
        f"| 404 in-process, without middleware | {us(unmatched_without)} | baseline |",
        f"| 404 in-process, with the metrics middleware (matches the routes) | {us(unmatched_with)} | "
        f"{unmatched_with / unmatched_without:.3f}x (+{us(unmatched_with - unmatched_without)}) |",
    ]


async def tool_overhead(*, rounds: int, per_round: int) -> list[str]:
    async def echo(args: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {"ok": True}

    tool = Tool(name="echo", title="echo", description="echo", input_schema={"type": "object"}, output_schema=None,
                annotations=ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=False),
                handler=echo)
    bare, observed = ToolRegistry(), ToolRegistry(observer=Metrics(process=False))
    bare.add(tool)
    observed.add(tool)
    ctx = NullToolContext(door=Door.CLI)
    without, with_ = await interleaved(rounds, per_round, lambda: bare.call("echo", {}, ctx=ctx),
                                       lambda: observed.call("echo", {}, ctx=ctx))
    return [
        f"| `ToolRegistry.call` (trivial tool), no observer | {us(without)} | baseline |",
        f"| `ToolRegistry.call` (trivial tool), metrics observer | {us(with_)} | {with_ / without:.3f}x "
        f"(+{us(with_ - without)}) |",
    ]


async def main_async(reps: int, load: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(environ={}, overrides={
            "data_dir": tmp, "log_dir": tmp, "store_url": f"sqlite:///{tmp}/bench.db", "health_check_interval": 0,
            "mcp_rate_limit_per_minute": 0,  # the load tasks are one client calling far beyond a person's rate
        })
        parts = RuntimeParts(knowledge_base=KnowledgeBase.load())
        async with open_runtime(settings, announce=lambda _: None, parts=parts) as runtime:
            fill_series(runtime.observability.metrics)
            sock = bind_socket("127.0.0.1", 0)
            started = asyncio.Event()
            server = AppServer(build_app(runtime), handle_signals=False, on_started=started.set)
            serving = asyncio.create_task(server.serve([sock]))
            await asyncio.wait_for(started.wait(), 30)
            try:
                rows = ["| measurement | median | vs baseline |", "|---|---|---|"]
                rows += await scrape_latency(runtime, url_of(sock), reps=reps, load=load)
                rows += await middleware_overhead(runtime, rounds=15, per_round=400)
                rows += await tool_overhead(rounds=15, per_round=2000)
            finally:
                server.should_exit = True
                with contextlib.suppress(asyncio.CancelledError):
                    await serving
                sock.close()
    print("\n".join(rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="scrapes per condition (default 200)")
    parser.add_argument("--load", type=int, default=8, help="concurrent load tasks (default 8)")
    args = parser.parse_args()
    asyncio.run(main_async(args.reps, args.load))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
