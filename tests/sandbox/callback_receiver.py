"""A callback receiver for the sandbox's own tests: records every request, answers as told.

It stands where a developer's server stands (kai-bridge's webhook door is tested against the
sandbox in tests/webhooks); here it lets a test make the receiver slow or failing on purpose.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from kai_bridge.http.server import AppServer, bind_socket, url_of


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """``answer(request_number, received) -> (status, json)``; None means: never answer (hang)."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    answer: Callable[[int, Received], tuple[int, Any] | None] = lambda n, r: (200, {"ok": True})
    arrived: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)

    async def wait_for(self, count: int) -> list[Received]:
        with anyio.fail_after(10):
            while len(self.requests) < count:
                await self.arrived.wait()
                self.arrived = anyio.Event()
        return self.requests


def echo_challenge(n: int, received: Received) -> tuple[int, Any]:
    """Answer as a webhook should: a url_verification challenge is echoed, anything else is 200."""
    body = received.json
    if body.get("header", {}).get("event_type") == "url_verification":
        return 200, {"challenge": body["event"]["challenge"]}
    return 200, {"ok": True}


@contextlib.asynccontextmanager
async def callback_receiver(
    answer: Callable[[int, Received], tuple[int, Any] | None] = echo_challenge,
) -> AsyncIterator[Receiver]:
    receiver = Receiver(answer=answer)

    async def endpoint(request: Request) -> Response:
        received = Received(headers={k.lower(): v for k, v in request.headers.items()}, body=await request.body())
        receiver.requests.append(received)
        receiver.arrived.set()
        outcome = receiver.answer(len(receiver.requests), received)
        if outcome is None:
            await receiver.release.wait()
            return Response(status_code=204)
        status, body = outcome
        return JSONResponse(body, status_code=status)

    app = Starlette(routes=[Route("/hook", endpoint, methods=["POST"])])
    sock = bind_socket("127.0.0.1", 0)
    started = anyio.Event()
    server = AppServer(app, handle_signals=False, on_started=started.set, graceful_timeout=1)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            with anyio.fail_after(10):
                await started.wait()
            receiver.url = url_of(sock, "/hook")
            try:
                yield receiver
            finally:
                receiver.release.set()
                server.should_exit = True
    finally:
        sock.close()
