"""Who may talk to ``/mcp``: a bearer token (constant-time check) and Host/Origin allowlists.

The token is required whenever the server listens beyond loopback: an MCP endpoint that
can start Coze chats must not be open to the network. The Host/Origin checks (DNS-rebinding
protection) are the SDK's; this module only decides their allowlists from the settings.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import Final

from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from kai_bridge.config import Settings
from kai_bridge.errors import ConfigError

__all__ = ["BearerAuthMiddleware", "check_http_security", "is_loopback", "transport_security"]

_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
LOOPBACK_HOSTS: Final = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOOPBACK_ORIGINS: Final = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the localhost names; False for 0.0.0.0, :: and real names."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_http_security(settings: Settings) -> None:
    """Refuse to serve /mcp beyond loopback without a bearer token (ConfigError says how to fix it)."""
    if is_loopback(settings.server_host):
        return
    token = settings.mcp_auth_token.get_secret_value() if settings.mcp_auth_token else ""
    if not token:
        raise ConfigError(
            f"server_host is {settings.server_host!r} (reachable from the network) but no MCP bearer token is "
            "set: set KAI_BRIDGE_MCP_AUTH_TOKEN (e.g. `openssl rand -hex 32`) or serve on 127.0.0.1"
        )
    if len(token) < 16:
        raise ConfigError("mcp_auth_token is too short: use at least 16 random characters (e.g. openssl rand -hex 32)")


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """Host/Origin allowlists: loopback plus what ``mcp_allowed_hosts``/``mcp_allowed_origins`` add.

    Entries are exact ``host:port`` strings or ``host:*``; origins are ``scheme://host[:port]``
    or ``scheme://host:*``. A bad Host gets 421, a bad Origin 403; a missing Origin is allowed
    (non-browser clients do not send one).
    """
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[*LOOPBACK_HOSTS, *settings.mcp_allowed_hosts],
        allowed_origins=[*LOOPBACK_ORIGINS, *settings.mcp_allowed_origins],
    )


class BearerAuthMiddleware:
    """Pure ASGI: every HTTP request must carry ``Authorization: Bearer <token>`` (else 401)."""

    def __init__(self, app: ASGIApp, *, token: str, realm: str = "kai-bridge") -> None:
        if not token:
            raise ValueError("BearerAuthMiddleware needs a non-empty token")
        self.app = app
        self._expected = token.encode()
        self._realm = realm

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                presented = value
                break
        scheme, _, credential = presented.partition(b" ")
        # compare_digest: the time taken does not reveal how much of the token matched.
        if scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), self._expected):
            await self.app(scope, receive, send)
            return
        reason = "missing bearer token" if not presented else "invalid bearer token"
        body = json.dumps({"error": "unauthorized", "error_description": reason}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", f'Bearer realm="{self._realm}"'.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
