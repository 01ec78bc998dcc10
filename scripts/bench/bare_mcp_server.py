"""The baseline for bench_mcp.py: a bare MCPServer with one no-op async tool, nothing else.

    python scripts/bench/bare_mcp_server.py stdio
    python scripts/bench/bare_mcp_server.py http PORT_FILE   # any free port; the URL goes to PORT_FILE
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
from mcp.server.mcpserver import MCPServer

from kai_bridge.http.server import AppServer, bind_socket, url_of


def build() -> MCPServer:
    server = MCPServer("bare", version="0")

    @server.tool()
    async def noop(query: str, top_k: int = 3) -> str:
        """Does nothing; returns the query."""
        return query

    return server


async def serve_http(ready_file: Path) -> None:
    app = build().streamable_http_app()
    sock = bind_socket("127.0.0.1", 0)

    def started() -> None:
        ready_file.write_text(url_of(sock, "/mcp"))

    server = AppServer(app, handle_signals=True, on_started=started)
    await server.serve(sockets=[sock])


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "stdio":
        build().run("stdio")
    elif mode == "http":
        anyio.run(serve_http, Path(sys.argv[2]))
    else:
        raise SystemExit("usage: bare_mcp_server.py stdio | http PORT_FILE")


if __name__ == "__main__":
    main()
