"""Pure-ASGI middleware that counts and times every HTTP request by its route template.

The label is the template of the Starlette route that matched (``/plugin/tools/{name}``, never
``/plugin/tools/espresso``): after the app has answered, the router has put the matched
route's endpoint into the (shared) scope, which maps back to its route. A request that reached
no route (404, or refused by a middleware before routing) is matched against the routes
here, and is ``(unmatched)`` when none fits, so random paths never become label values.
The status is the one the app sent; an exception that escapes the app before it answered
counts as 500, a client that went away before any answer as 499 (nginx's "client closed").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final

from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kai_bridge.observability.metrics import Metrics

__all__ = ["UNMATCHED", "HttpMetricsMiddleware", "route_template"]

UNMATCHED: Final = "(unmatched)"


def _template(route: BaseRoute) -> str | None:
    if isinstance(route, Route | Mount):
        return route.path or "/"
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


def _endpoint_of(route: BaseRoute) -> object | None:
    if isinstance(route, Route):
        return route.endpoint
    if isinstance(route, Mount):
        return route.app
    return None


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The template of the first route that matches ``scope`` (fully or by path), else ``(unmatched)``."""
    partial: str | None = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return _template(route) or UNMATCHED
        if match is Match.PARTIAL and partial is None:
            partial = _template(route)
    return partial or UNMATCHED


class HttpMetricsMiddleware:
    """Records ``kai_bridge_http_requests_total`` and ``..._duration_seconds`` for ``routes``."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, routes: Sequence[BaseRoute],
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.app = app
        self._metrics = metrics
        self._routes = list(routes)
        self._timer = timer
        # Endpoint -> template for endpoints that belong to exactly one route.
        seen: dict[int, str | None] = {}
        for route in self._routes:
            endpoint, template = _endpoint_of(route), _template(route)
            if endpoint is not None and template is not None:
                seen[id(endpoint)] = template if id(endpoint) not in seen else None
        self._by_endpoint = {key: value for key, value in seen.items() if value is not None}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = self._timer()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = status or 500
            raise
        except BaseException:
            status = status or 499
            raise
        finally:
            status = status or 500
            endpoint = scope.get("endpoint")
            template = self._by_endpoint.get(id(endpoint)) if endpoint is not None else None
            if template is None:
                template = route_template(self._routes, scope)
            self._metrics.http_request(route=template, method=scope["method"], status=status,
                                       seconds=self._timer() - began)
