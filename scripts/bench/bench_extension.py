"""BENCH-ONLY server extension: a no-op tool in kai-bridge's registry, to measure the door's own cost.

Loaded by bench_mcp.py with ``kai-bridge stdio|serve --extension bench_extension:install``
(scripts/bench on PYTHONPATH). Same signature and result as the bare server's ``noop``.
"""

from __future__ import annotations

from pydantic import BaseModel

from kai_bridge.mcp.server import KaiMcpServer
from kai_bridge.tools import ToolAnnotations, ToolContext, typed_tool


class NoopIn(BaseModel):
    query: str
    top_k: int = 3


class NoopOut(BaseModel):
    result: str


async def _noop(params: NoopIn, ctx: ToolContext) -> NoopOut:
    return NoopOut(result=params.query)


def install(server: KaiMcpServer) -> None:
    server.registry.add(
        typed_tool(
            name="bench_noop",
            title="No-op (benchmark)",
            description="Does nothing; returns the query.",
            input_model=NoopIn,
            output_model=NoopOut,
            annotations=ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=False),
            func=_noop,
        )
    )
