"""Bot routes: ``/v1/bots`` (list, one bot), ``/v1/bot/get_online_info``, ``/v1/space/published_bots_list``."""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from starlette.requests import Request
from starlette.responses import Response

from kai_bridge.sandbox.auth import Principal
from kai_bridge.sandbox.bots import BOTS, BotSpec, bot_detail_json, bot_simple_json, bot_v1_list_json
from kai_bridge.sandbox.context import SandboxContext
from kai_bridge.sandbox.plugins import ImportedPlugin, PluginCatalog
from kai_bridge.sandbox.routing import RouteSpec, int_param, ok, req_str
from kai_bridge.sandbox.wire import ApiError

__all__ = ["all_bots", "bot_routes", "find_bot", "plugin_bot"]


def plugin_bot(plugin: ImportedPlugin) -> BotSpec:
    """The bot made for an imported cloud plugin: it answers every question by calling one tool."""
    assert plugin.bot_id is not None
    return BotSpec(
        id=plugin.bot_id,
        name=f"{plugin.name} (cloud plugin bot)",
        description=f"Answers by calling the cloud plugin tool {plugin.bot_tool} of '{plugin.name}' over HTTP.",
        prompt=f"Always call {plugin.bot_tool}, then answer from its result.",
        prologue=f"Ask me anything; I will look it up with {plugin.bot_tool}.",
        suggested_questions=(),
        uses_local_plugin=False,
    )


def all_bots(plugins: PluginCatalog | None, *, deleted: AbstractSet[str] = frozenset()) -> list[BotSpec]:
    """The built-in bots and one per imported plugin, less the deleted ones."""
    bots = list(BOTS.values())
    if plugins is not None:
        bots.extend(plugin_bot(p) for p in plugins.list() if p.bot_id is not None)
    return [bot for bot in bots if bot.id not in deleted]


def find_bot(bot_id: str, plugins: PluginCatalog | None = None, *, deleted: AbstractSet[str] = frozenset()) -> BotSpec:
    """The bot ``bot_id``; 4200 when there is none, or it was deleted (``deleted``: this sandbox's)."""
    bot = BOTS.get(bot_id)
    if bot is None and plugins is not None:
        plugin = plugins.for_bot(bot_id)
        bot = plugin_bot(plugin) if plugin is not None else None
    if bot is None or bot_id in deleted:
        raise ApiError(4200, f"The bot {bot_id} does not exist or is not published to the API channel")
    return bot


def bot_routes(ctx: SandboxContext) -> list[RouteSpec]:
    def check_workspace(workspace_id: str) -> None:
        if workspace_id != ctx.config.workspace_id:
            raise ApiError(
                4000,
                f"Invalid parameter: workspace {workspace_id} does not exist in this sandbox "
                f"(its workspace id is {ctx.config.workspace_id})",
            )

    def page(request: Request) -> tuple[int, int]:
        params = request.query_params
        num_key = "page_index" if "page_index" in params else "page_num"
        page_num = int_param(params, num_key, default=1, low=1, high=100_000)
        page_size = int_param(params, "page_size", default=20, low=1, high=100)
        return page_num, page_size

    async def list_bots(request: Request, _p: Principal | None) -> Response:
        check_workspace(req_str(request.query_params, "workspace_id"))
        page_num, page_size = page(request)
        bots = all_bots(ctx.plugins, deleted=ctx.callbacks.deleted_bots)
        start = (page_num - 1) * page_size
        items = [bot_simple_json(b) for b in bots[start : start + page_size]]
        return ok(request, {"items": items, "total": len(bots)})

    async def published_list(request: Request, _p: Principal | None) -> Response:
        check_workspace(req_str(request.query_params, "space_id"))
        page_num, page_size = page(request)
        bots = all_bots(ctx.plugins, deleted=ctx.callbacks.deleted_bots)
        start = (page_num - 1) * page_size
        items = [bot_v1_list_json(b) for b in bots[start : start + page_size]]
        return ok(request, {"space_bots": items, "total": len(bots)})

    async def retrieve(request: Request, _p: Principal | None) -> Response:
        return ok(request, bot_detail_json(find_bot(request.path_params["bot_id"], ctx.plugins,
                                                     deleted=ctx.callbacks.deleted_bots)))

    async def online_info(request: Request, _p: Principal | None) -> Response:
        bot_id = req_str(request.query_params, "bot_id")
        return ok(request, bot_detail_json(find_bot(bot_id, ctx.plugins, deleted=ctx.callbacks.deleted_bots)))

    return [
        RouteSpec("bots.list", "/v1/bots", ["GET"], list_bots),
        RouteSpec("bots.published_list", "/v1/space/published_bots_list", ["GET"], published_list),
        RouteSpec("bots.retrieve", "/v1/bots/{bot_id}", ["GET"], retrieve),
        RouteSpec("bots.online_info", "/v1/bot/get_online_info", ["GET"], online_info),
    ]
