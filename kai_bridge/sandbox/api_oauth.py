"""``POST /api/permission/oauth2/token``: the JWT bearer grant, answered in the flat OAuth shape."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kai_bridge.sandbox.auth import OAuthError, Principal
from kai_bridge.sandbox.context import SandboxContext
from kai_bridge.sandbox.routing import RouteSpec
from kai_bridge.sandbox.wire import JsonResponse

__all__ = ["oauth_routes"]


def oauth_routes(ctx: SandboxContext) -> list[RouteSpec]:
    async def token(request: Request, _principal: Principal | None) -> Response:
        ctx.state.token_exchanges += 1
        raw = await request.body()
        body: Any
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError):
            body = None
        try:
            grant = ctx.auth.exchange(
                authorization=request.headers.get("authorization"),
                body=body,
                host=request.headers.get("host", ""),
            )
        except OAuthError as exc:
            ctx.state.token_failures[exc.error_code] += 1
            return JsonResponse(exc.body(), status_code=exc.status)
        ctx.state.tokens_issued += 1
        ctx.state.token_kids[grant.kid] += 1
        ctx.state.last_token_kid = grant.kid
        return JsonResponse(grant.body)

    return [
        RouteSpec("oauth.token", "/api/permission/oauth2/token", ["POST"], token, auth=False),
        RouteSpec(
            "oauth.token",
            "/api/permission/oauth2/account/{account_id}/token",
            ["POST"],
            token,
            auth=False,
        ),
    ]
