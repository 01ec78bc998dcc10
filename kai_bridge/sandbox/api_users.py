"""``GET /v1/users/me``: who the Bearer token belongs to (cozepy's ``coze.users.me()``).

It is the cheapest authenticated call that needs no bot or workspace id, so clients use it
to prove a token works. The answer is derived from the caller: a configured PAT belongs to
the owner of the sandbox's bots; an access token issued by JWT OAuth belongs to a user whose
stable, Coze-shaped (19-digit) id is derived from the app id, so two apps are two users.
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kai_bridge.sandbox.auth import Principal
from kai_bridge.sandbox.bots import OWNER_USER_ID
from kai_bridge.sandbox.context import SandboxContext
from kai_bridge.sandbox.routing import RouteSpec, ok

__all__ = ["AVATAR_URL", "app_user_id", "user_json", "user_routes"]

AVATAR_URL = "https://lf-coze-web-cdn.coze.cn/obj/coze-web-cn/obric/coze/favicon.1970.png"


def app_user_id(app_id: str) -> str:
    """The 19-digit user id behind a JWT OAuth app (stable across sandbox restarts)."""
    digest = int.from_bytes(hashlib.sha256(app_id.encode()).digest()[:8], "big")
    return f"74{digest % 10**17:017d}"


def user_json(principal: Principal | None) -> dict[str, Any]:
    """The ``data`` of ``/v1/users/me`` (cozepy ``User``: all four fields are required strings)."""
    if principal is not None and principal.app_id is not None:
        app = principal.app_id
        return {
            "user_id": app_user_id(app),
            "user_name": f"oauth_app_{app}",
            "nick_name": f"JWT OAuth app {app}",
            "avatar_url": AVATAR_URL,
        }
    return {
        "user_id": OWNER_USER_ID,
        "user_name": "sandbox_owner",
        "nick_name": "Sandbox owner (personal access token)",
        "avatar_url": AVATAR_URL,
    }


def user_routes(ctx: SandboxContext) -> list[RouteSpec]:
    del ctx  # nothing to look up: the answer depends on the caller only

    async def me(request: Request, principal: Principal | None) -> Response:
        return ok(request, user_json(principal))

    return [RouteSpec("users.me", "/v1/users/me", ["GET"], me)]
