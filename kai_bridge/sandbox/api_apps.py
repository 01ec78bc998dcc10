"""Callback app routes: ``/v1/api_apps`` and ``/v1/api_apps/{id}/events``, plus two admin routes.

As Coze: ``POST /v1/api_apps`` ``{app_type: normal|connector, name?, connector_id?}`` creates
an app with a server-generated ``verify_token``; ``PUT /v1/api_apps/{id}`` ``{name?,
callback_url?}`` (a new URL must pass the url_verification challenge first); ``DELETE``;
``GET /v1/api_apps?app_type=&page_token=&page_size=``. Subscriptions: ``POST`` / ``DELETE``
``/v1/api_apps/{id}/events`` with ``{event_types: [...]}``, ``GET`` to list them.

Admin (``/_sandbox/*``, when enabled): ``POST /_sandbox/events`` ``{event_type, event?,
api_app_id?, connector_id?}`` emits any event, to its subscribers or to one app;
``GET /_sandbox/deliveries`` shows every delivery with its attempts.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from kai_bridge.sandbox.auth import Principal
from kai_bridge.sandbox.callbacks import EVENT_TYPES, CallbackApp
from kai_bridge.sandbox.context import SandboxContext
from kai_bridge.sandbox.routing import RouteSpec, int_param, ok, opt_str, read_json, req_str
from kai_bridge.sandbox.wire import ApiError

__all__ = ["api_app_routes", "callback_admin_routes"]

_MAX_URL = 1024


def _name(body: dict[str, Any], *, required: bool) -> str | None:
    name = body.get("name")
    if name is None or name == "":
        if required:
            raise ApiError(4000, "Invalid parameter: name is required for a normal callback app")
        return None
    if not isinstance(name, str) or len(name) > 100:
        raise ApiError(4000, "Invalid parameter: name must be a string of at most 100 characters")
    return name


def _url(value: Any) -> str:
    if not isinstance(value, str) or len(value) > _MAX_URL:
        raise ApiError(4000, f"Invalid parameter: callback_url must be a URL of at most {_MAX_URL} characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ApiError(4000, "Invalid parameter: callback_url must be an http(s) URL")
    return value


def _event_types(body: dict[str, Any]) -> list[str]:
    types = body.get("event_types")
    if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
        raise ApiError(4000, "Invalid parameter: event_types must be a non-empty array of event types")
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise ApiError(4000, f"Invalid parameter: unknown event type(s) {', '.join(unknown)}; "
                             f"known: {', '.join(EVENT_TYPES)}")
    return list(types)


def api_app_routes(ctx: SandboxContext) -> list[RouteSpec]:
    hub = ctx.callbacks

    def app_of(request: Request) -> CallbackApp:
        return hub.find_app(request.path_params["app_id"])

    async def create(request: Request, _p: Principal | None) -> Response:
        body = await read_json(request)
        app_type = body.get("app_type")
        if app_type not in ("normal", "connector"):
            raise ApiError(4000, "Invalid parameter: app_type must be normal or connector")
        connector_id = opt_str(body, "connector_id")
        if app_type == "connector" and connector_id is None:
            raise ApiError(4000, "Invalid parameter: connector_id is required for a connector callback app")
        app = hub.create_app(app_type=app_type, name=_name(body, required=app_type == "normal"),
                             connector_id=connector_id)
        return ok(request, app.to_json())

    async def list_apps(request: Request, _p: Principal | None) -> Response:
        params = request.query_params
        app_type = params.get("app_type") or None
        if app_type not in (None, "normal", "connector"):
            raise ApiError(4000, "Invalid parameter: app_type must be normal or connector")
        size = int_param(params, "page_size", default=20, low=1, high=100)
        start = int_param(params, "page_token", default=0, low=0, high=10**9)
        apps = [a for a in hub.apps.values() if app_type is None or a.app_type == app_type]
        page = apps[start : start + size]
        more = start + size < len(apps)
        return ok(request, {"items": [a.to_json() for a in page], "has_more": more,
                            "next_page_token": str(start + size) if more else ""})

    async def update(request: Request, _p: Principal | None) -> Response:
        app = app_of(request)
        body = await read_json(request)
        if "name" not in body and "callback_url" not in body:
            raise ApiError(4000, "Invalid parameter: send name and/or callback_url")
        name = _name(body, required=False) if "name" in body else None
        if "callback_url" in body:
            await hub.set_callback_url(app, _url(body["callback_url"]))
        if name is not None:
            app.name = name
        return ok(request, {})

    async def delete(request: Request, _p: Principal | None) -> Response:
        app = app_of(request)
        del hub.apps[app.id]
        return ok(request, {})

    async def subscribe(request: Request, _p: Principal | None) -> Response:
        app = app_of(request)
        app.event_types.update(_event_types(await read_json(request)))
        return ok(request, {})

    async def unsubscribe(request: Request, _p: Principal | None) -> Response:
        app = app_of(request)
        app.event_types.difference_update(_event_types(await read_json(request)))
        return ok(request, {})

    async def subscriptions(request: Request, _p: Principal | None) -> Response:
        app = app_of(request)
        items = app.subscriptions_json()
        return ok(request, {"items": items, "has_more": False, "next_page_token": ""})

    return [
        RouteSpec("api_apps.create", "/v1/api_apps", ["POST"], create),
        RouteSpec("api_apps.list", "/v1/api_apps", ["GET"], list_apps),
        RouteSpec("api_apps.update", "/v1/api_apps/{app_id}", ["PUT"], update),
        RouteSpec("api_apps.delete", "/v1/api_apps/{app_id}", ["DELETE"], delete),
        RouteSpec("api_apps.events.create", "/v1/api_apps/{app_id}/events", ["POST"], subscribe),
        RouteSpec("api_apps.events.delete", "/v1/api_apps/{app_id}/events", ["DELETE"], unsubscribe),
        RouteSpec("api_apps.events.list", "/v1/api_apps/{app_id}/events", ["GET"], subscriptions),
    ]


def callback_admin_routes(ctx: SandboxContext) -> list[RouteSpec]:
    hub = ctx.callbacks

    async def emit(request: Request, _p: Principal | None) -> Response:
        ctx.auth.check_admin(request.headers.get("authorization"))
        body = await read_json(request)
        event_type = req_str(body, "event_type")
        event = body.get("event", {})
        if not isinstance(event, dict):
            raise ApiError(4000, "Invalid parameter: event must be an object")
        only_app = opt_str(body, "api_app_id")
        deliveries = hub.emit(event_type=event_type, event=event, connector_id=opt_str(body, "connector_id"),
                              only_app=only_app)
        return ok(request, {"deliveries": [d.to_json() for d in deliveries]})

    async def deliveries(request: Request, _p: Principal | None) -> Response:
        ctx.auth.check_admin(request.headers.get("authorization"))
        return ok(request, {"deliveries": [d.to_json() for d in reversed(hub.deliveries)]})

    return [
        RouteSpec("admin.events.emit", "/_sandbox/events", ["POST"], emit, auth=False),
        RouteSpec("admin.deliveries", "/_sandbox/deliveries", ["GET"], deliveries, auth=False),
    ]
