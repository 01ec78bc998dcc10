"""The Coze upstream: real Coze when credentials are set, else the embedded sandbox.

Without credentials (``settings.uses_sandbox``) the commands still work offline: an
in-process sandbox is started with a key pair generated for this run, and the client uses
JWT OAuth against it, exactly as it would against Coze. That is said on stderr, so nobody
mistakes a sandbox answer for a Coze one.

With ``sandbox_on_demand`` the sandbox's socket is bound at once (so its URL is known and
connections queue) but the sandbox itself, and with it Starlette and uvicorn, starts on the
first request the client sends: a ``kai-bridge call`` of a local tool never pays for it.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import httpx

from kai_bridge.config import Settings
from kai_bridge.coze.auth import JWTAuth, auth_from_settings
from kai_bridge.coze.client import CozeClient, build_http_client
from kai_bridge.keys import generate_key_pair, load_private_key

if TYPE_CHECKING:
    from kai_bridge.sandbox import Answerer, SandboxConfig

__all__ = ["CozeSession", "open_coze_session"]

SANDBOX_APP_ID = "kai-bridge-embedded"


@dataclass(frozen=True, slots=True)
class CozeSession:
    client: CozeClient
    bot_id: str | None
    workspace_id: str | None
    sandbox_url: str | None  # set when the in-process sandbox is the upstream


class _SandboxOnDemand:
    """Starts the sandbox on a bound socket when the first request is about to be sent."""

    def __init__(self, *, config: SandboxConfig, sock: socket.socket, host: str, answerer: Answerer | None) -> None:
        self._config = config
        self._sock = sock
        self._host = host
        self._answerer = answerer
        self._stack = contextlib.AsyncExitStack()
        self._lock = anyio.Lock()
        self.started = False

    async def before_request(self, request: httpx.Request) -> None:
        if self.started:
            return
        async with self._lock:
            if self.started:
                return
            from kai_bridge.sandbox import start_sandbox

            # Shielded: a caller's timeout must not leave the sandbox half started.
            with anyio.CancelScope(shield=True):
                await self._stack.enter_async_context(
                    start_sandbox(self._config, host=self._host, sock=self._sock, answerer=self._answerer)
                )
            self.started = True

    async def aclose(self) -> None:
        await self._stack.aclose()
        self._sock.close()


@contextlib.asynccontextmanager
async def open_coze_session(
    settings: Settings,
    *,
    announce: Callable[[str], None],
    answerer: Answerer | None = None,
    sandbox_on_demand: bool = False,
) -> AsyncIterator[CozeSession]:
    """Open the HTTP client and the Coze client; start the sandbox first when it is the upstream.

    ``answerer`` lets the caller share an already loaded knowledge base with the sandbox's bots;
    ``sandbox_on_demand`` starts the sandbox on the first request instead (see above).
    """
    async with contextlib.AsyncExitStack() as stack:
        http = build_http_client(settings)
        stack.push_async_callback(http.aclose)
        if not settings.uses_sandbox:
            auth = auth_from_settings(settings, http=http)
            client = CozeClient.from_settings(settings, http=http, auth=auth)
            yield CozeSession(
                client=client, bot_id=settings.coze_bot_id, workspace_id=settings.coze_workspace_id, sandbox_url=None
            )
            return
        # The CLI (not kai_bridge.coze) may know the sandbox: it is the offline upstream.
        from kai_bridge.sandbox import COFFEE_BOT_ID, SandboxConfig
        from kai_bridge.sandbox.listen import listen_socket, sandbox_url

        pair = generate_key_pair()
        config = SandboxConfig(
            apps=[(SANDBOX_APP_ID, pair.public_pem)], stream_chunk_delay=settings.sandbox_stream_delay
        )
        if sandbox_on_demand:
            sock = listen_socket(settings.sandbox_host, settings.sandbox_port)
            base_url = sandbox_url(settings.sandbox_host, sock.getsockname()[1])
            on_demand = _SandboxOnDemand(config=config, sock=sock, host=settings.sandbox_host, answerer=answerer)
            stack.push_async_callback(on_demand.aclose)
            hooks = http.event_hooks
            http.event_hooks = {**hooks, "request": [on_demand.before_request, *hooks.get("request", [])]}
            workspace_id = config.workspace_id
            coffee_bot: str | None = COFFEE_BOT_ID
        else:
            from kai_bridge.sandbox import start_sandbox

            handle = await stack.enter_async_context(
                start_sandbox(config, host=settings.sandbox_host, port=settings.sandbox_port, answerer=answerer)
            )
            base_url, workspace_id, coffee_bot = handle.base_url, handle.workspace_id, handle.bot_ids.get("coffee")
        announce(
            f"no Coze credentials configured: using the in-process sandbox at {base_url} "
            "(JWT OAuth with a key pair generated for this run)"
        )
        auth = JWTAuth(
            http=http,
            base_url=base_url,
            app_id=SANDBOX_APP_ID,
            kid=pair.kid,
            private_key=load_private_key(pair.private_pem, source="the generated sandbox key"),
            ttl=settings.coze_token_ttl,
            refresh_margin=settings.coze_token_refresh_margin,
        )
        bot_id = settings.coze_bot_id or coffee_bot
        client = CozeClient.from_settings(
            settings, http=http, base_url=base_url, auth=auth, bot_id=bot_id, workspace_id=workspace_id
        )
        yield CozeSession(client=client, bot_id=bot_id, workspace_id=workspace_id, sandbox_url=base_url)
