"""Admin routes for cloud plugins (with the other admin routes: off unless enabled).

``POST /_sandbox/plugins`` imports an OpenAPI file as Coze's "import plugin" does and makes a bot
that calls it. The body is either the document itself (JSON or YAML, no auth) or
``{"document": <text or object>, "auth": {"location": "header"|"query", "key": NAME, "value":
TOKEN}, "tool": OPERATION_ID}``. A refused file answers 400 with Coze's code 109000003 and
``invalid plugin openapi3 document : <rule>``. ``GET /_sandbox/plugins`` lists what was imported
(never a token's value).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kai_bridge.sandbox.auth import Principal
from kai_bridge.sandbox.context import SandboxContext
from kai_bridge.sandbox.plugins import IMPORT_ERROR_CODE, PluginImportError, ServiceToken, load_document
from kai_bridge.sandbox.routing import RouteSpec, ok
from kai_bridge.sandbox.wire import ApiError

__all__ = ["plugin_admin_routes"]


def _parse(raw: bytes) -> tuple[Any, ServiceToken | None, str | None]:
    try:
        body: Any = json.loads(raw)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict) and "document" in body:
        try:
            auth = ServiceToken.from_json(body.get("auth"))
        except ValueError as exc:
            raise ApiError(4000, f"Invalid parameter: auth: {exc}") from None
        tool = body.get("tool")
        if tool is not None and not isinstance(tool, str):
            raise ApiError(4000, "Invalid parameter: tool must be an operationId")
        document = body["document"]
        if not isinstance(document, str | dict):
            raise ApiError(4000, "Invalid parameter: document must be the OpenAPI file's text or object")
        return document, auth, tool
    return (body if isinstance(body, dict) else raw), None, None


def plugin_admin_routes(ctx: SandboxContext) -> list[RouteSpec]:
    def check(request: Request) -> None:
        ctx.auth.check_admin(request.headers.get("authorization"))

    async def import_plugin(request: Request, _p: Principal | None) -> Response:
        check(request)
        document, auth, tool = _parse(await request.body())
        try:
            plugin = ctx.plugins.import_plugin(load_document(document), auth=auth, tool=tool)
        except PluginImportError as exc:
            raise ApiError(IMPORT_ERROR_CODE, str(exc), status=400) from None
        return ok(request, plugin.to_json())

    async def list_plugins(request: Request, _p: Principal | None) -> Response:
        check(request)
        return ok(request, {"plugins": [p.to_json() for p in ctx.plugins.list()]})

    return [
        RouteSpec("admin.plugins.import", "/_sandbox/plugins", ["POST"], import_plugin, auth=False),
        RouteSpec("admin.plugins.list", "/_sandbox/plugins", ["GET"], list_plugins, auth=False),
    ]
