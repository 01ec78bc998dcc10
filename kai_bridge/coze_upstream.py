"""The Coze upstream: real Coze when credentials are set, else the embedded sandbox.

Without credentials (``settings.uses_sandbox``) the commands still work offline: an
in-process sandbox is started with a key pair generated for this run, and the client uses
JWT OAuth against it, exactly as it would against Coze. That is said on stderr, so nobody
mistakes a sandbox answer for a Coze one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kai_bridge.config import Settings
from kai_bridge.coze.auth import JWTAuth, auth_from_settings
from kai_bridge.coze.client import CozeClient, build_http_client
from kai_bridge.keys import generate_key_pair, load_private_key

if TYPE_CHECKING:
    from kai_bridge.sandbox import Answerer

__all__ = ["CozeSession", "open_coze_session"]

SANDBOX_APP_ID = "kai-bridge-embedded"


@dataclass(frozen=True, slots=True)
class CozeSession:
    client: CozeClient
    bot_id: str | None
    workspace_id: str | None
    sandbox_url: str | None  # set when the in-process sandbox is the upstream


@contextlib.asynccontextmanager
async def open_coze_session(
    settings: Settings, *, announce: Callable[[str], None], answerer: Answerer | None = None
) -> AsyncIterator[CozeSession]:
    """Open the HTTP client and the Coze client; start the sandbox first when it is the upstream.

    ``answerer`` lets the caller share an already loaded knowledge base with the sandbox's bots.
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
        from kai_bridge.sandbox import SandboxConfig, start_sandbox

        pair = generate_key_pair()
        handle = await stack.enter_async_context(
            start_sandbox(
                SandboxConfig(apps=[(SANDBOX_APP_ID, pair.public_pem)]),
                host=settings.sandbox_host,
                port=settings.sandbox_port,
                answerer=answerer,
            )
        )
        announce(
            f"no Coze credentials configured: using the in-process sandbox at {handle.base_url} "
            "(JWT OAuth with a key pair generated for this run)"
        )
        auth = JWTAuth(
            http=http,
            base_url=handle.base_url,
            app_id=SANDBOX_APP_ID,
            kid=pair.kid,
            private_key=load_private_key(pair.private_pem, source="the generated sandbox key"),
            ttl=settings.coze_token_ttl,
            refresh_margin=settings.coze_token_refresh_margin,
        )
        bot_id = settings.coze_bot_id or handle.bot_ids.get("coffee")
        client = CozeClient.from_settings(
            settings, http=http, base_url=handle.base_url, auth=auth, bot_id=bot_id,
            workspace_id=handle.workspace_id,
        )
        yield CozeSession(client=client, bot_id=bot_id, workspace_id=handle.workspace_id, sandbox_url=handle.base_url)
