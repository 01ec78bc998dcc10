"""Admin routes (off unless enabled): fault rules at run time and the sandbox's counters.

``POST /_sandbox/faults`` adds one rule (a JSON object), or several (``{"rules": [...]}`` or a
JSON array); ``?replace=true`` replaces the current rules. ``DELETE`` clears them, ``GET`` lists
them. ``GET /_sandbox/state`` returns the counters. ``GET /_sandbox/chats`` lists the chats
created so far (of the conversations still kept), each with its question's ``meta_data``, so a
test can count chats started twice for one send (the bridge tags each send there). With an admin token configured every admin
call needs ``Authorization: Bearer <admin token>``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kai_bridge.sandbox.auth import Principal
from kai_bridge.sandbox.config import FaultRule
from kai_bridge.sandbox.context import SandboxContext
from kai_bridge.sandbox.routing import BAD_JSON_MSG, RouteSpec, ok
from kai_bridge.sandbox.wire import ApiError

__all__ = ["admin_routes"]


def _rules_from(body: Any) -> list[FaultRule]:
    items: Any = body.get("rules") if isinstance(body, dict) and "rules" in body else body
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise ApiError(4000, 'Invalid parameter: send a fault rule object, an array of them, or {"rules": [...]}')
    rules: list[FaultRule] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ApiError(4000, f"Invalid parameter: rules[{i}] must be an object")
        try:
            rules.append(FaultRule.from_json(item))
        except ValueError as exc:
            raise ApiError(4000, f"Invalid parameter: rules[{i}]: {exc}") from exc
    return rules


def admin_routes(ctx: SandboxContext) -> list[RouteSpec]:
    def check(request: Request) -> None:
        ctx.auth.check_admin(request.headers.get("authorization"))

    def listing(request: Request) -> Response:
        return ok(request, {"rules": [r.to_json() for r in ctx.faults.rules]})

    async def add_faults(request: Request, _p: Principal | None) -> Response:
        check(request)
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ApiError(4000, BAD_JSON_MSG) from exc
        rules = _rules_from(body)
        if request.query_params.get("replace") in ("1", "true", "yes"):
            ctx.faults.clear()
        if "seed" in request.query_params:
            try:
                ctx.faults.reseed(int(request.query_params["seed"]))
            except ValueError as exc:
                raise ApiError(4000, "Invalid parameter: seed must be an integer") from exc
        for rule in rules:
            ctx.faults.add(rule)
        return listing(request)

    async def clear_faults(request: Request, _p: Principal | None) -> Response:
        check(request)
        ctx.faults.clear()
        return listing(request)

    async def get_faults(request: Request, _p: Principal | None) -> Response:
        check(request)
        return listing(request)

    async def get_state(request: Request, _p: Principal | None) -> Response:
        check(request)
        return ok(request, ctx.state.snapshot())

    async def get_chats(request: Request, _p: Principal | None) -> Response:
        check(request)
        chats: list[dict[str, Any]] = []
        for chat in list(ctx.store.chats.values()):
            conv = ctx.store.conversations.get(chat.conversation_id)
            asked = [m for m in (conv.messages if conv else []) if m.chat_id == chat.id and m.role == "user"]
            chats.append({
                "id": chat.id, "conversation_id": chat.conversation_id, "user_id": chat.user_id,
                "status": chat.status, "created_at": chat.created_at, "meta_data": chat.meta_data,
                "question_meta_data": asked[-1].meta_data if asked else {},
            })
        return ok(request, {"chats": chats, "count": len(chats)})

    return [
        RouteSpec("admin.faults.add", "/_sandbox/faults", ["POST"], add_faults, auth=False),
        RouteSpec("admin.faults.clear", "/_sandbox/faults", ["DELETE"], clear_faults, auth=False),
        RouteSpec("admin.faults.list", "/_sandbox/faults", ["GET"], get_faults, auth=False),
        RouteSpec("admin.state", "/_sandbox/state", ["GET"], get_state, auth=False),
        RouteSpec("admin.chats", "/_sandbox/chats", ["GET"], get_chats, auth=False),
    ]
