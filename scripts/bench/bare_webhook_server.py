"""The baseline for bench_webhook.py: a bare Starlette handler that only parses the JSON body.

    python scripts/bench/bare_webhook_server.py READY_FILE   # any free port; the base URL goes to READY_FILE

Served exactly as ``kai-bridge serve`` serves its app: the same socket set-up (``bind_socket``)
and the same uvicorn settings (``AppServer``: no access log, lifespan on).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kai_bridge.http.server import AppServer, bind_socket, url_of


async def webhook(request: Request) -> Response:
    body = json.loads(await request.body())
    return JSONResponse({"ok": True, "keys": len(body)})


async def serve(ready_file: Path) -> None:
    app = Starlette(routes=[Route("/webhook/coze", webhook, methods=["POST"])])
    sock = bind_socket("127.0.0.1", 0)

    def started() -> None:
        ready_file.write_text(url_of(sock))

    await AppServer(app, handle_signals=True, on_started=started).serve(sockets=[sock])


if __name__ == "__main__":
    anyio.run(serve, Path(sys.argv[1]))
