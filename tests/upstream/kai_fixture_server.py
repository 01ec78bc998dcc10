"""A small, real KAI-style MCP server for the upstream tests (mcp 2.3.0 ``MCPServer``).

Tools: ``coffee_knowledge_query`` (a KAI-style knowledge tool with a structured answer), ``echo`` (read-only, returns text), ``add`` (structured output model), ``greet`` (text
content only, no output schema), ``pid`` (the server's process id), ``env`` (an environment variable), ``steps``
(reports progress), ``slow`` (sleeps, for
timeouts), ``fail`` (raises, for isError results) and ``grow`` (registers a new tool ``extra``
and sends ``notifications/tools/list_changed``).

    python kai_fixture_server.py stdio [--once MARKER]
    python kai_fixture_server.py http --port 0 [--token SECRET]

``--once`` makes a stdio server that refuses to start a second time (a permanently dead
upstream after the first kill). Over HTTP it binds 127.0.0.1, prints ``PORT <n>`` on stdout once listening, and (with
``--token``) answers 401 to any request without ``Authorization: Bearer SECRET``.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import socket
import sys

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send


class AddResult(BaseModel):
    total: int = Field(description="a + b")


class KnowledgeAnswer(BaseModel):
    answer: str = Field(description="the answer")
    source: str = Field(description="who answered")


def build_server() -> MCPServer:
    mcp = MCPServer("kai-fixture", version="1.0.0")

    @mcp.tool(
        title="Echo",
        description="Return the text unchanged.",
        annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False),
    )
    async def echo(text: str) -> str:
        return text

    @mcp.tool(
        title="Coffee knowledge (KAI)",
        description="Answer a coffee question from the KAI knowledge service.",
        annotations=ToolAnnotations(read_only_hint=True),
    )
    async def coffee_knowledge_query(query: str) -> KnowledgeAnswer:
        return KnowledgeAnswer(answer=f"KAI fixture answer about {query}", source="kai-fixture")

    @mcp.tool(description="Add two integers.")
    async def add(a: int, b: int) -> AddResult:
        return AddResult(total=a + b)

    @mcp.tool(description="Sleep for the given number of seconds, then answer 'done'.")
    async def slow(seconds: float) -> str:
        await anyio.sleep(seconds)
        return "done"

    @mcp.tool(description="Always fails with the given message.")
    async def fail(message: str) -> str:
        raise ToolError(message)

    @mcp.tool(description="Greet someone; plain text content, no structured output.", structured_output=False)
    async def greet(name: str) -> str:
        return f"Hello, {name}!"

    @mcp.tool(description="The server's process id.", annotations=ToolAnnotations(read_only_hint=True))
    async def pid() -> int:
        return os.getpid()

    @mcp.tool(description="Report progress n times, then answer how many steps were done.")
    async def steps(n: int, ctx: Context) -> int:
        for i in range(1, n + 1):
            await ctx.report_progress(i, n, f"step {i} of {n}")
        return n

    @mcp.tool(description="The value of an environment variable of the server process ('' if unset).")
    async def env(name: str) -> str:
        return os.environ.get(name, "")

    @mcp.tool(description="Register the tool 'extra' and tell the client the tool list changed.")
    async def grow(ctx: Context) -> str:
        async def extra() -> str:
            """A tool that appears at run time."""
            return "extra"

        if "extra" not in {t.name for t in await mcp.list_tools()}:
            mcp.add_tool(extra, name="extra", description="A tool that appears at run time.")
        await ctx.session.send_tool_list_changed()
        return "grown"

    return mcp


class BearerCheck:
    """Pure-ASGI middleware: 401 unless ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await send(
                    {"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain")]}
                )
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await self.app(scope, receive, send)


async def serve_http(port: int, token: str | None) -> None:
    mcp = build_server()
    app: ASGIApp = mcp.streamable_http_app(json_response=True)
    if token:
        app = BearerCheck(app, token=token)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # uvicorn does not set TCP_NODELAY on connections accepted from a socket handed to it; Linux
    # copies it from the listener. Without it every reply waits ~40 ms for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)  # listening before PORT is printed: early clients queue instead of being refused
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    await server.serve(sockets=[sock])


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="transport", required=True)
    stdio = sub.add_parser("stdio")
    stdio.add_argument("--once", default=None, help="serve only if this marker file is absent (then create it)")
    http = sub.add_parser("http")
    http.add_argument("--port", type=int, default=0)
    http.add_argument("--token", default=None)
    args = parser.parse_args()
    if args.transport == "stdio":
        if args.once:
            if os.path.exists(args.once):
                print("refusing to start twice", file=sys.stderr)
                return 3
            open(args.once, "w").close()
        build_server().run("stdio")
    else:
        asyncio.run(serve_http(args.port, args.token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
