"""Who may talk to the HTTP faces: exact Host/Origin allowlists, the MCP bearer token, the admin token.

Three pure-ASGI middlewares, all answering a JSON body ``{"error", "error_description"}``
that says what to change:

* :class:`HostOriginMiddleware` (every route of ``serve`` and of the stdio sidecar): the
  ``Host`` header must name a loopback host (``localhost``, ``127.0.0.1``, ``[::1]``, any
  port) or an ``mcp_allowed_hosts`` entry, else 421; a present ``Origin`` must be a loopback
  origin or an ``mcp_allowed_origins`` entry, else 403 (no Origin: a non-browser client,
  allowed). Values are compared exactly after canonicalisation (:mod:`kai_bridge.urls`), so
  ``127.0.0.1:8080.evil.example`` is not ``127.0.0.1:*``. This is the DNS-rebinding defence;
  the SDK's own check (which matches by prefix) is switched off behind it.
* :class:`BearerAuthMiddleware` (``/mcp``): ``Authorization: Bearer <mcp_auth_token>``, else 401.
* :class:`OperatorAuthMiddleware` (``/diagnostics/*``, which show configuration): with
  ``admin_token`` set, ``Authorization: Bearer <admin_token>`` is required (else 401);
  without it the routes answer 403 when the server listens beyond loopback. The same rule
  (:class:`OperatorAccess`) decides whether ``/ready`` adds the text of each check.

Tokens are compared in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from mcp.server.transport_security import TransportSecuritySettings
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from kai_bridge.config import Settings
from kai_bridge.errors import ConfigError
from kai_bridge.urls import (
    AuthorityPattern,
    OriginPattern,
    parse_authority,
    parse_authority_pattern,
    parse_origin,
    parse_origin_pattern,
)

__all__ = [
    "LOOPBACK_HOSTS",
    "LOOPBACK_ORIGINS",
    "BearerAuthMiddleware",
    "HostOriginMiddleware",
    "HostOriginPolicy",
    "OperatorAccess",
    "OperatorAuthMiddleware",
    "check_http_security",
    "is_loopback",
    "mcp_tokens",
    "security_middleware",
    "send_json_error",
    "transport_security",
]

_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
LOOPBACK_HOSTS: Final = ("localhost:*", "127.0.0.1:*", "[::1]:*")
LOOPBACK_ORIGINS: Final = tuple(f"{scheme}://{host}" for scheme in ("http", "https") for host in LOOPBACK_HOSTS)
OPERATOR_PREFIX: Final = "/diagnostics"
_SHOWN_MAX: Final = 200


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the localhost names; False for 0.0.0.0, :: and real names."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def mcp_tokens(settings: Settings) -> list[str]:
    """Every bearer token /mcp accepts: ``mcp_auth_token`` and each of ``mcp_client_tokens``."""
    tokens = [settings.mcp_auth_token, *settings.mcp_client_tokens]
    return [token.get_secret_value() for token in tokens if token is not None and token.get_secret_value()]


def check_http_security(settings: Settings) -> None:
    """Refuse to serve /mcp beyond loopback without a bearer token (ConfigError says how to fix it)."""
    if is_loopback(settings.server_host):
        return
    token = settings.mcp_auth_token.get_secret_value() if settings.mcp_auth_token else ""
    if not mcp_tokens(settings):
        raise ConfigError(
            f"server_host is {settings.server_host!r} (reachable from the network) but no MCP bearer token is "
            "set: set KAI_BRIDGE_MCP_AUTH_TOKEN (e.g. `openssl rand -hex 32`) or serve on 127.0.0.1"
        )
    if token and len(token) < 16:
        raise ConfigError("mcp_auth_token is too short: use at least 16 random characters (e.g. openssl rand -hex 32)")


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """The SDK's transport checks for /mcp: its Host/Origin matching is off (HostOriginMiddleware,
    in front of every route, compares exactly; the SDK matches ``host:*`` by prefix). The SDK
    still checks the Content-Type of POSTs."""
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


# ---- responses ------------------------------------------------------------------------------------


async def send_json_error(
    send: Send, *, status: int, error: str, description: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer an HTTP request with ``{"error": error, "error_description": description}``."""
    body = json.dumps({"error": error, "error_description": description}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header_values(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope["headers"] if key == name]


def _shown(value: str) -> str:
    """A client-sent header value as it may appear in an error message (bounded)."""
    return value if len(value) <= _SHOWN_MAX else value[:_SHOWN_MAX] + "..."


def _bearer_matches(scope: Scope, expected: bytes) -> tuple[bool, bool]:
    """(a credential was presented, it is ``expected``), compared in constant time."""
    presented = b""
    for name, value in scope["headers"]:
        if name == b"authorization":
            presented = value
            break
    scheme, _, credential = presented.partition(b" ")
    # compare_digest: the time taken does not reveal how much of the token matched.
    ok = scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), expected)
    return bool(presented), ok


# ---- Host / Origin --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostOriginPolicy:
    """Which Host and Origin header values are allowed: exact entries after canonicalisation."""

    hosts: tuple[AuthorityPattern, ...]
    origins: tuple[OriginPattern, ...]

    @classmethod
    def of(cls, *, hosts: Sequence[str] = (), origins: Sequence[str] = ()) -> HostOriginPolicy:
        """Loopback plus ``hosts`` / ``origins`` (ValueError on a malformed entry)."""
        return cls(
            hosts=tuple(parse_authority_pattern(entry) for entry in (*LOOPBACK_HOSTS, *hosts)),
            origins=tuple(parse_origin_pattern(entry) for entry in (*LOOPBACK_ORIGINS, *origins)),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> HostOriginPolicy:
        return cls.of(hosts=settings.mcp_allowed_hosts, origins=settings.mcp_allowed_origins)

    def host_allowed(self, value: str) -> bool:
        try:
            authority = parse_authority(value)
        except ValueError:
            return False
        return any(pattern.matches(authority) for pattern in self.hosts)

    def origin_allowed(self, value: str) -> bool:
        try:
            origin = parse_origin(value)
        except ValueError:
            return False
        return any(pattern.matches(origin) for pattern in self.origins)


class HostOriginMiddleware:
    """Pure ASGI: 421 unless exactly one allowed Host; 403 for a present Origin that is not allowed."""

    def __init__(self, app: ASGIApp, *, policy: HostOriginPolicy) -> None:
        self.app = app
        self._policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        problem = self._problem(scope)
        if problem is None:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": problem[2][:120]})
            return
        status, error, description = problem
        await send_json_error(send, status=status, error=error, description=description)

    def _problem(self, scope: Scope) -> tuple[int, str, str] | None:
        hosts = _header_values(scope, b"host")
        if len(hosts) != 1:
            return 421, "misdirected_request", (
                f"the request has {'no' if not hosts else 'more than one'} Host header: send exactly one, "
                "naming this server (e.g. localhost:PORT)"
            )
        if not self._policy.host_allowed(hosts[0]):
            return 421, "misdirected_request", (
                f"Host {_shown(hosts[0])!r} is not allowed (DNS-rebinding protection): use localhost, 127.0.0.1 "
                "or [::1], or add this name to KAI_BRIDGE_MCP_ALLOWED_HOSTS as host:port or host:* "
                "(e.g. mcp.example.com:443)"
            )
        origins = _header_values(scope, b"origin")
        if len(origins) > 1:
            return 403, "forbidden_origin", "the request has more than one Origin header: send at most one"
        if origins and not self._policy.origin_allowed(origins[0]):
            return 403, "forbidden_origin", (
                f"Origin {_shown(origins[0])!r} is not allowed (cross-site requests are refused): if this web "
                "app may call kai-bridge, add it to KAI_BRIDGE_MCP_ALLOWED_ORIGINS as scheme://host[:port] "
                "(e.g. https://app.example.com)"
            )
        return None


# ---- tokens ---------------------------------------------------------------------------------------


class BearerAuthMiddleware:
    """Pure ASGI: every HTTP request must carry ``Authorization: Bearer <token>`` of one of ``tokens`` (else 401).

    Every token is compared (in constant time), whichever matches, so the time taken tells
    nothing about which one a guess came close to.
    """

    def __init__(self, app: ASGIApp, *, tokens: Sequence[str], realm: str = "kai-bridge") -> None:
        if not tokens or not all(tokens):
            raise ValueError("BearerAuthMiddleware needs at least one non-empty token")
        self.app = app
        self._expected = [token.encode() for token in tokens]
        self._realm = realm

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented = False
        ok = False
        for expected in self._expected:
            seen, matched = _bearer_matches(scope, expected)
            presented = presented or seen
            ok = ok or matched
        if ok:
            await self.app(scope, receive, send)
            return
        reason = "invalid bearer token" if presented else "missing bearer token"
        await send_json_error(
            send, status=401, error="unauthorized", description=reason,
            headers=[(b"www-authenticate", f'Bearer realm="{self._realm}"'.encode())],
        )


def _path_of(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path


def _operator_path(scope: Scope, protected: frozenset[str]) -> bool:
    path = _path_of(scope)
    return path == OPERATOR_PREFIX or path.startswith(OPERATOR_PREFIX + "/") or path in protected


def _basic_matches(scope: Scope, expected: bytes) -> tuple[bool, bool]:
    """(Basic credentials were presented, their password is ``expected``): a browser's way to send it."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, encoded = value.partition(b" ")
            if scheme.lower() != b"basic":
                return False, False
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                return True, False
            _user, _, password = decoded.partition(b":")
            return True, hmac.compare_digest(password, expected)
    return False, False


@dataclass(frozen=True, slots=True)
class OperatorAccess:
    """Who may see configuration (``/diagnostics/*``, the monitoring pages, the check texts of ``/ready``).

    With an admin token: whoever presents it, as ``Authorization: Bearer <token>`` (scripts,
    Prometheus) or as the password of HTTP Basic (any user name: a browser asks for it). Without
    one: anyone while the server listens on loopback only, nobody beyond it.
    """

    token: bytes | None
    beyond_loopback: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> OperatorAccess:
        token = settings.admin_token.get_secret_value().encode() if settings.admin_token else None
        return cls(token=token, beyond_loopback=not is_loopback(settings.server_host))

    def decide(self, scope: Scope) -> Literal["allowed", "forbidden", "missing", "invalid"]:
        if self.token is None:
            return "forbidden" if self.beyond_loopback else "allowed"
        bearer_seen, bearer_ok = _bearer_matches(scope, self.token)
        basic_seen, basic_ok = _basic_matches(scope, self.token)
        if bearer_ok or basic_ok:
            return "allowed"
        return "invalid" if bearer_seen or basic_seen else "missing"


class OperatorAuthMiddleware:
    """Pure ASGI: ``/diagnostics/*`` and ``protected_paths`` need :class:`OperatorAccess` (module docstring)."""

    def __init__(self, app: ASGIApp, *, access: OperatorAccess, protected_paths: Iterable[str] = ()) -> None:
        self.app = app
        self._access = access
        self._protected = frozenset(protected_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _operator_path(scope, self._protected):
            await self.app(scope, receive, send)
            return
        decision = self._access.decide(scope)
        path = _path_of(scope)
        if decision == "allowed":
            await self.app(scope, receive, send)
        elif decision == "forbidden":
            await send_json_error(
                send, status=403, error="forbidden",
                description=(
                    f"{path} shows configuration and kai-bridge listens beyond loopback: set "
                    "KAI_BRIDGE_ADMIN_TOKEN (e.g. `openssl rand -hex 32`) and send it as "
                    "'Authorization: Bearer <token>' or as the password of HTTP Basic (or serve on 127.0.0.1)"
                ),
            )
        else:
            await send_json_error(
                send, status=401, error="unauthorized",
                description=(
                    f"{decision} admin token: {path} needs 'Authorization: Bearer <admin_token>' "
                    "(KAI_BRIDGE_ADMIN_TOKEN), or that token as the password of HTTP Basic"
                ),
                headers=[
                    (b"www-authenticate", b'Bearer realm="kai-bridge-admin"'),
                    # A browser asks for credentials only on a Basic challenge.
                    (b"www-authenticate", b'Basic realm="kai-bridge-admin", charset="UTF-8"'),
                ],
            )


def security_middleware(settings: Settings, *, protected_paths: Iterable[str] = ()) -> list[Middleware]:
    """The middleware every kai-bridge HTTP app runs, outermost first (serve and the stdio sidecar).

    ``protected_paths``: operator pages beyond ``/diagnostics/*`` that show configuration.
    """
    return [
        Middleware(HostOriginMiddleware, policy=HostOriginPolicy.from_settings(settings)),
        Middleware(OperatorAuthMiddleware, access=OperatorAccess.from_settings(settings),
                   protected_paths=protected_paths),
    ]

