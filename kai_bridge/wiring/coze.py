"""The Coze upstream from the settings: real Coze when credentials are set, else the embedded sandbox.

Every Settings -> Coze mapping lives here (pool, credential, retry policy, breaker, client
options), so the real and the sandbox paths build their clients the same way: the sandbox
is "real Coze at another address" with a key pair generated for this run. Without
credentials (``settings.uses_sandbox``) the commands still work offline, and say so on the
``announce`` channel so nobody mistakes a sandbox answer for a Coze one.

With ``sandbox_on_demand`` the sandbox's socket is bound at once (so its URL is known and
connections queue) but the sandbox itself, and with it Starlette and uvicorn, starts on the
first request the client sends: a ``kai-bridge call`` of a local tool never pays for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
import httpx

from kai_bridge.config import Settings
from kai_bridge.coze import CircuitBreaker, CozeClient, JWTAuth, PATAuth, RetryPolicy, TokenProvider, build_http_client
from kai_bridge.coze.quota import RequestQuota
from kai_bridge.errors import ConfigError
from kai_bridge.keys import generate_key_pair, load_private_key

if TYPE_CHECKING:
    from kai_bridge.sandbox import Answerer, SandboxConfig

__all__ = [
    "SANDBOX_APP_ID",
    "CozeSession",
    "auth_from_settings",
    "breaker_from_settings",
    "client_from_settings",
    "http_client_from_settings",
    "open_coze_session",
    "retry_from_settings",
]

SANDBOX_APP_ID = "kai-bridge-embedded"


@dataclass(frozen=True, slots=True)
class CozeSession:
    client: CozeClient
    bot_id: str | None
    workspace_id: str | None
    sandbox_url: str | None  # set when the in-process sandbox is the upstream


def http_client_from_settings(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    return build_http_client(
        timeout=settings.coze_timeout,
        connect_timeout=settings.coze_connect_timeout,
        max_connections=settings.coze_max_connections,
        max_keepalive=settings.coze_max_keepalive,
        transport=transport,
    )


def retry_from_settings(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_retries=settings.coze_max_retries,
        backoff_base=settings.coze_backoff_base,
        backoff_max=settings.coze_backoff_max,
    )


def breaker_from_settings(settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=settings.coze_breaker_failures, reset_timeout=settings.coze_breaker_reset, clock=clock
    )


def auth_from_settings(
    settings: Settings,
    *,
    http: httpx.AsyncClient,
    base_url: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> TokenProvider:
    """The credential the settings describe (JWT when coze_app_id is set, else the PAT)."""
    if settings.coze_app_id:
        source = "coze_private_key" if settings.coze_private_key is not None else str(settings.coze_private_key_path)
        return JWTAuth(
            http=http,
            base_url=base_url or settings.coze_api_base,
            app_id=settings.coze_app_id,
            kid=settings.coze_kid or "",
            private_key=load_private_key(settings.private_key_pem(), source=source),
            aud=settings.coze_jwt_aud,
            ttl=settings.coze_token_ttl,
            refresh_margin=settings.coze_token_refresh_margin,
            session_name=settings.coze_session_name,
            retry=retry_from_settings(settings),
            clock=clock,
            wall_clock=wall_clock,
            sleep=sleep,
        )
    if settings.coze_pat is not None:
        return PATAuth(token=settings.coze_pat.get_secret_value())
    raise ConfigError(
        "no Coze credentials: set coze_app_id + coze_kid + coze_private_key_path (JWT OAuth) or coze_pat"
    )


def client_from_settings(
    settings: Settings,
    *,
    http: httpx.AsyncClient,
    auth: TokenProvider,
    base_url: str | None = None,
    bot_id: str | None = None,
    workspace_id: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> CozeClient:
    """A client with the settings' retry, breaker and chat options; the keywords win over them."""
    return CozeClient(
        http=http,
        base_url=base_url or settings.coze_api_base,
        auth=auth,
        retry=retry_from_settings(settings),
        breaker=breaker_from_settings(settings, clock=clock),
        poll_interval=settings.coze_poll_interval,
        chat_timeout=settings.coze_chat_timeout,
        bot_id=bot_id or settings.coze_bot_id,
        workspace_id=workspace_id or settings.coze_workspace_id,
        clock=clock,
        sleep=sleep,
        quota=RequestQuota.configured(per_second=settings.coze_quota_per_second, burst=settings.coze_quota_burst,
                                      max_wait=settings.coze_quota_max_wait),
    )


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
    transport: httpx.AsyncBaseTransport | None = None,
    sandbox_on_demand: bool = False,
) -> AsyncIterator[CozeSession]:
    """Open the HTTP pool and the Coze client; start the sandbox first when it is the upstream.

    ``answerer`` lets the caller share an already loaded knowledge base with the sandbox's
    bots; ``transport`` replaces the HTTP transport of the pool (tests, proxies);
    ``sandbox_on_demand`` starts the sandbox on the first request instead (see above).
    """
    async with contextlib.AsyncExitStack() as stack:
        http = http_client_from_settings(settings, transport=transport)
        stack.push_async_callback(http.aclose)
        if not settings.uses_sandbox:
            client = client_from_settings(settings, http=http, auth=auth_from_settings(settings, http=http))
            yield CozeSession(
                client=client, bot_id=settings.coze_bot_id, workspace_id=settings.coze_workspace_id, sandbox_url=None
            )
            return
        # Imported here: the sandbox (and its server stack) is only needed without credentials.
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
            retry=retry_from_settings(settings),
        )
        bot_id = settings.coze_bot_id or coffee_bot
        client = client_from_settings(
            settings, http=http, base_url=base_url, auth=auth, bot_id=bot_id, workspace_id=workspace_id
        )
        yield CozeSession(client=client, bot_id=bot_id, workspace_id=workspace_id, sandbox_url=base_url)
