#!/usr/bin/env python3
"""Benchmark the Coze plugin face: what ``POST /plugin/tools/{name}`` adds over a bare Starlette route.

    .venv/bin/python scripts/bench/bench_plugin.py [--n 2000]

One uvicorn server on a real socket serves both, in one app: the plugin face (Service token
checked, Coze's plugin headers read, the per-client token bucket taken, null values dropped,
one INFO log line through the project's redacting log set-up) and a bare route that parses the
body, calls the same ``ToolRegistry.call`` and dumps the result. One keep-alive client calls them
interleaved (the order flips every round, so neither always runs second) with the same
arguments; ``coffee_knowledge_query`` answers from its cache after the warm-up, so the tool costs
the same on both paths and the difference is the face. The budget: at most 1 ms at p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402

from kai_bridge.http.server import AppServer, bind_socket, url_of  # noqa: E402
from kai_bridge.knowledge import KnowledgeBase, KnowledgeService  # noqa: E402
from kai_bridge.limits import RateLimit  # noqa: E402
from kai_bridge.logs import configure_logging  # noqa: E402
from kai_bridge.plugin import PluginFace, PluginOptions  # noqa: E402
from kai_bridge.tools import ToolRegistry  # noqa: E402
from kai_bridge.tools.coffee import coffee_knowledge_tool  # noqa: E402

BUDGET_MS = 1.0
QUERIES = ["埃塞俄比亚咖啡特点", "what is a washed process", "how to dial in espresso", "云南咖啡", "cold brew ratio"]
COZE_HEADERS = {
    "X-Tt-Logid": "20261201093012ABCDEF0123456789",
    "X-Aiplugin-Connector-Identifier": "bench-user",
    "X-AIPlugin-Bot-ID": "7390000000000000777",
    "X-AIPlugin-Conversation-ID": "7390000000000000888",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(n: int, warmup: int) -> None:
    with open(os.devnull, "w", encoding="utf-8") as sink:  # noqa: ASYNC230  # once, before any call is timed
        token = secrets.token_hex(24)
        configure_logging(level="INFO", stream=sink, secrets=[token])  # production-like: one redacted line per call
        registry = ToolRegistry()
        registry.add(coffee_knowledge_tool(KnowledgeService(base=KnowledgeBase.load(), backend="local", asker=None)))
        face = PluginFace(registry=registry, options=PluginOptions(
            token=token, rate_limit=RateLimit(door="bench", per_minute=1e12, burst=10**9)))

        async def bare(request: Request) -> Response:
            arguments = json.loads(await request.body())
            result = await registry.call(request.path_params["name"], arguments)
            return Response(json.dumps(result, ensure_ascii=False, separators=(",", ":")).encode(),
                            media_type="application/json")

        app = Starlette(routes=[*face.routes(), Route("/bare/{name}", bare, methods=["POST"])])
        sock = bind_socket("127.0.0.1", 0)
        started = asyncio.Event()
        server = AppServer(app, handle_signals=False, on_started=started.set)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await asyncio.wait_for(started.wait(), 10)
        base = url_of(sock)
        face_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **COZE_HEADERS}
        bare_headers = {"Content-Type": "application/json", **COZE_HEADERS}
        times: dict[str, list[float]] = {"bare": [], "face": []}
        try:
            async with face.running(), httpx.AsyncClient(timeout=30) as http:

                async def call(kind: str, body: bytes) -> float:
                    url = f"{base}/plugin/tools/coffee_knowledge_query" if kind == "face" else \
                        f"{base}/bare/coffee_knowledge_query"
                    began = time.perf_counter()
                    response = await http.post(url, content=body, headers=face_headers if kind == "face" else bare_headers)
                    elapsed = time.perf_counter() - began
                    if response.status_code != 200 or "answer" not in response.json():
                        raise SystemExit(f"{kind} call failed: {response.status_code} {response.text[:200]}")
                    return elapsed

                for i in range(warmup + n):
                    body = json.dumps({"query": QUERIES[i % len(QUERIES)]}, ensure_ascii=False).encode()
                    order = ("face", "bare") if i % 2 == 0 else ("bare", "face")
                    for kind in order:
                        elapsed = await call(kind, body)
                        if i >= warmup:
                            times[kind].append(elapsed * 1000)
        finally:
            server.should_exit = True
            await task
            sock.close()

    rows = [("bare Starlette route -> ToolRegistry.call", times["bare"]),
            ("plugin face POST /plugin/tools/coffee_knowledge_query", times["face"])]
    print(f"### Plugin face vs a bare route ({n} interleaved pairs, {warmup} warm-up, one keep-alive client)\n")
    print("| path | p50 ms | p90 ms | p99 ms | mean ms |")
    print("|---|---:|---:|---:|---:|")
    for label, values in rows:
        print(f"| {label} | {statistics.median(values):.3f} | {percentile(values, 0.9):.3f} | "
              f"{percentile(values, 0.99):.3f} | {statistics.fmean(values):.3f} |")
    added = statistics.median(times["face"]) - statistics.median(times["bare"])
    ratio = statistics.median(times["face"]) / statistics.median(times["bare"])
    pairwise = statistics.median(f - b for f, b in zip(times["face"], times["bare"], strict=True))
    print(f"| **face adds (p50 difference)** | **{added:+.3f}** | | | ratio {ratio:.2f}x |")
    print(f"\nMedian of the per-pair differences: {pairwise:+.3f} ms. Budget: <= {BUDGET_MS:g} ms at p50 -> "
          f"{'within budget' if added <= BUDGET_MS else 'OVER BUDGET'}. "
          f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="interleaved call pairs measured")
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.n, args.warmup))
    return 0


if __name__ == "__main__":
    sys.exit(main())
