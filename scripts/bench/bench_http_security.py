"""Benchmark what the HTTP security layer costs: Host/Origin + admin checks per request, URL scrubbing per log line.

    .venv/bin/python scripts/bench/bench_http_security.py [--requests 2000] [--reps 5]

Prints one Markdown table (medians over ``--reps`` interleaved rounds; ratios within this run):

1. ``GET /health`` of the stdio sidecar app, called in-process as ASGI (no socket, so the
   middleware is all that differs): with :func:`kai_bridge.http.security.security_middleware`
   against the same routes without it.
2. The same over a real socket (uvicorn on 127.0.0.1, one keep-alive httpx2 client): what a
   caller sees.
3. The log scrubber (:func:`kai_bridge.logs.redact`) on a line with an upstream URL carrying a
   password, and on a line without a URL, against the patterns it had before URL scrubbing.

The runtime is the real root over the embedded sandbox; state and logs go to a temporary directory.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import anyio
import httpx2
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Scope

from kai_bridge.config import load_settings
from kai_bridge.http.app import build_sidecar_app, operator_routes
from kai_bridge.http.server import AppServer, bind_socket, url_of
from kai_bridge.logs import _MASK, _PATTERNS, redact
from kai_bridge.runtime import open_runtime

URL_LINE = "Connecting to StreamableHTTP endpoint: http://kai-ops:s3cr3t-pw@kai.example.com:8443/mcp?sig=abcdef"
PLAIN_LINE = "upstream 'kai' connected (http https://kai.example.com/mcp, 9 tools) in 12.5 ms"
TEXT_LINE = "knowledge base loaded: 88 articles in 156 ms"


def patterns_only(text: str) -> str:
    """The scrubber as it was before URL scrubbing (the baseline)."""
    for pattern in _PATTERNS:
        if pattern.groups and pattern.pattern.startswith("(?i)("):
            text = pattern.sub(lambda m: m.group(1) + _MASK, text)
        else:
            text = pattern.sub(_MASK, text)
    return text


async def asgi_get(app: ASGIApp, path: str) -> None:
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8081"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8081),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise RuntimeError(f"{path} answered {message['status']}")

    await app(scope, receive, send)


async def per_call_us(fn: Callable[[], Awaitable[object]], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - start) / n * 1e6


def sync_per_call_us(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


@contextlib.asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[str]:
    sock = bind_socket("127.0.0.1", 0)
    started = anyio.Event()
    server = AppServer(app, handle_signals=False, on_started=started.set, graceful_timeout=2)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            await started.wait()
            try:
                yield url_of(sock)
            finally:
                server.should_exit = True
    finally:
        sock.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per round (socket: a quarter)")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    n, reps = args.requests, args.reps
    samples: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            environ={}, overrides={"data_dir": Path(tmp) / "data", "log_dir": Path(tmp) / "logs"}, check_files=False
        )
        async with open_runtime(settings, announce=lambda _: None) as runtime:
            secured = build_sidecar_app(runtime)
            bare = Starlette(routes=operator_routes(runtime))
            async with (
                serving(secured) as secured_url,
                serving(bare) as bare_url,
                httpx2.AsyncClient(timeout=10) as http,
            ):
                for _ in range(reps):  # interleaved: each round measures every variant once
                    add("asgi bare", await per_call_us(lambda: asgi_get(bare, "/health"), n))
                    add("asgi secured", await per_call_us(lambda: asgi_get(secured, "/health"), n))
                    add("socket bare", await per_call_us(lambda: http.get(f"{bare_url}/health"), n // 4))
                    add("socket secured", await per_call_us(lambda: http.get(f"{secured_url}/health"), n // 4))
                    for label, line in (("url line", URL_LINE), ("url-free line", PLAIN_LINE), ("text line", TEXT_LINE)):
                        add(f"{label} before", sync_per_call_us(functools.partial(patterns_only, line), n * 5))
                        add(f"{label} after", sync_per_call_us(functools.partial(redact, line), n * 5))

    def median(name: str) -> float:
        return statistics.median(samples[name])

    print(f"Medians of {reps} interleaved rounds ({n:,} in-process requests, {n // 4:,} over the socket, per round)\n")
    print("| what | baseline µs | with the security layer µs | ratio |")
    print("|---|---|---|---|")
    for label, base, new in (
        ("GET /health, in-process ASGI", "asgi bare", "asgi secured"),
        ("GET /health, over a socket", "socket bare", "socket secured"),
        ("scrub a log line with a password URL", "url line before", "url line after"),
        ("scrub a log line with a plain URL", "url-free line before", "url-free line after"),
        ("scrub a log line without a URL", "text line before", "text line after"),
    ):
        print(f"| {label} | {median(base):.1f} | {median(new):.1f} | {median(new) / median(base):.2f}x |")
    print(f"\nredact(URL line) -> {redact(URL_LINE)}")


if __name__ == "__main__":
    anyio.run(main)
