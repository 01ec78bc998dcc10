"""Bot lifecycle routes that fire callback events: publish, unpublish, delete.

``POST /v1/bot/publish`` ``{bot_id, connector_ids?}`` (Coze's; cozepy ``bots.publish``) answers
the bot and sends ``bot.published`` once per connector (default the API channel, ``1024``).
``POST /v1/bots/{bot_id}/unpublish`` ``{connector_id, unpublish_reason?}`` (cozepy
``bots.unpublish``) sends ``bot.unpublished``. ``DELETE /v1/bots/{bot_id}`` is the sandbox's
stand-in for deleting a bot in the Coze console (the Open API documents no delete): the bot
is gone from this sandbox (4200 afterwards) and ``bot.deleted`` is sent.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from kai_bridge.sandbox.api_bots import find_bot
from kai_bridge.sandbox.auth import Principal
from kai_bridge.sandbox.bots import OWNER_USER_ID, BotSpec, bot_detail_json
from kai_bridge.sandbox.callbacks import API_CONNECTOR
from kai_bridge.sandbox.context import SandboxContext
from kai_bridge.sandbox.routing import RouteSpec, ok, opt_str, read_json, req_str
from kai_bridge.sandbox.wire import ApiError

__all__ = ["publish_routes"]


def _bot_event(bot: BotSpec) -> dict[str, Any]:
    return {"bot_id": bot.id, "bot_name": bot.name, "user_id": OWNER_USER_ID, "connector_user_id": OWNER_USER_ID}


def publish_routes(ctx: SandboxContext) -> list[RouteSpec]:
    hub = ctx.callbacks

    def bot_of(bot_id: str) -> BotSpec:
        return find_bot(bot_id, deleted=hub.deleted_bots)

    async def publish(request: Request, _p: Principal | None) -> Response:
        body = await read_json(request)
        bot = bot_of(req_str(body, "bot_id"))
        connectors = body.get("connector_ids") or [API_CONNECTOR]
        if not isinstance(connectors, list) or not all(isinstance(c, str | int) for c in connectors):
            raise ApiError(4000, "Invalid parameter: connector_ids must be an array of connector ids")
        for connector in dict.fromkeys(str(c) for c in connectors):
            hub.emit(event_type="bot.published", event=_bot_event(bot), connector_id=connector)
        return ok(request, bot_detail_json(bot))

    async def unpublish(request: Request, _p: Principal | None) -> Response:
        bot = bot_of(request.path_params["bot_id"])
        body = await read_json(request, required=False)
        connector = opt_str(body, "connector_id") or API_CONNECTOR
        event = _bot_event(bot)
        reason = body.get("unpublish_reason")
        if isinstance(reason, str) and reason:
            event["unpublish_reason"] = reason[:1024]
        hub.emit(event_type="bot.unpublished", event=event, connector_id=connector)
        return ok(request, {})

    async def delete(request: Request, _p: Principal | None) -> Response:
        bot = bot_of(request.path_params["bot_id"])
        hub.deleted_bots.add(bot.id)
        hub.emit(event_type="bot.deleted", event=_bot_event(bot))
        return ok(request, {})

    return [
        RouteSpec("bots.publish", "/v1/bot/publish", ["POST"], publish),
        RouteSpec("bots.unpublish", "/v1/bots/{bot_id}/unpublish", ["POST"], unpublish),
        RouteSpec("bots.delete", "/v1/bots/{bot_id}", ["DELETE"], delete),
    ]
