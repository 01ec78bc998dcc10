"""The pieces on their own: the recent windows, the HTTP middleware's labels, the registry's outcomes."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from kai_bridge.errors import CozeServerError, ToolError
from kai_bridge.observability import HttpMetricsMiddleware, Metrics
from kai_bridge.observability.window import RecentCalls, summarize
from kai_bridge.tools import UNKNOWN_TOOL, Door, NullToolContext, Tool, ToolAnnotations, ToolContext, ToolRegistry

ANN = ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=False)


def _samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = generate_latest(metrics.registry).decode()
    return {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == name}


# ---- windows -------------------------------------------------------------------------------
def test_p95_is_the_nearest_rank_over_the_period_and_old_calls_drop_out() -> None:
    window = RecentCalls()
    window.add(at=0.0, seconds=9.0, ok=True)  # older than the period
    for i in range(1, 101):
        window.add(at=100.0 + i, seconds=i / 1000, ok=i % 10 != 0)
    stats = summarize([window], now=200.0, period=100.0)
    assert stats.calls == 100
    assert stats.errors == 10
    assert stats.success_rate == 0.9
    assert stats.p95_ms == 95.0
    assert stats.avg_ms == 50.5
    assert stats.rate_per_s == 1.0


def test_a_window_that_dropped_calls_rates_over_what_it_still_holds() -> None:
    busy, quiet = RecentCalls(size=10), RecentCalls(size=10)
    for i in range(50):
        busy.add(at=100.0 + i, seconds=0.001, ok=True)
    quiet.add(at=101.0, seconds=0.5, ok=True)  # before what busy still holds: left out
    quiet.add(at=145.0, seconds=0.002, ok=False)
    stats = summarize([busy, quiet], now=150.0, period=100.0)
    assert stats.calls == 11  # busy's last 10 (from t=140) and quiet's call at 145
    assert stats.rate_per_s == pytest.approx(11 / 10)
    assert stats.errors == 1


def test_no_calls_give_no_latency_rather_than_zero() -> None:
    stats = summarize([RecentCalls()], now=10.0, period=5.0)
    assert (stats.calls, stats.p95_ms, stats.avg_ms, stats.success_rate) == (0, None, None, None)


# ---- middleware ----------------------------------------------------------------------------
async def _item(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.path_params["item"])


async def _boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("a bug")


async def test_requests_are_labelled_by_route_template_and_status() -> None:
    metrics = Metrics(process=False)
    routes = [Route("/items/{item}", _item, methods=["GET"]), Route("/boom", _boom)]
    app = Starlette(routes=routes, middleware=[Middleware(HttpMetricsMiddleware, metrics=metrics, routes=routes)])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for item in ("espresso", "latte", "user-4711"):
            assert (await http.get(f"/items/{item}")).status_code == 200
        assert (await http.post("/items/x")).status_code == 405
        assert (await http.get("/nowhere/secret-path")).status_code == 404
        assert (await http.request("BREW", "/items/x")).status_code == 405
        assert (await http.get("/boom")).status_code == 500
    counts = _samples(metrics, "kai_bridge_http_requests_total")
    assert counts == {
        (("method", "GET"), ("route", "/items/{item}"), ("status", "200")): 3.0,
        (("method", "POST"), ("route", "/items/{item}"), ("status", "405")): 1.0,
        (("method", "OTHER"), ("route", "/items/{item}"), ("status", "405")): 1.0,
        (("method", "GET"), ("route", "(unmatched)"), ("status", "404")): 1.0,
        (("method", "GET"), ("route", "/boom"), ("status", "500")): 1.0,
    }
    text = generate_latest(metrics.registry).decode()
    assert "espresso" not in text
    assert "secret-path" not in text


# ---- the registry's outcomes ---------------------------------------------------------------
def _tool(name: str, handler: Any, *, timeout: float | None = None) -> Tool:
    return Tool(name=name, title=name, description=name, input_schema={"type": "object"}, output_schema=None,
                annotations=ANN, handler=handler, timeout=timeout)


async def test_each_way_a_call_ends_is_its_own_outcome_and_the_door_is_the_contexts() -> None:
    metrics = Metrics(process=False)
    registry = ToolRegistry(observer=metrics)
    release = anyio.Event()

    async def ok(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return {"ok": True}

    async def slow(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        await release.wait()
        return {}

    async def coze_down(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise CozeServerError("Coze is down", code=5000, logid="20260101000000ABCDEF")

    async def bug(args: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        raise KeyError("oops")

    registry.add(_tool("ok", ok))
    registry.add(_tool("slow", slow, timeout=0.01))
    registry.add(_tool("coze_down", coze_down))
    registry.add(_tool("bug", bug))
    registry.add(_tool("waits", slow))
    plugin = NullToolContext(door=Door.PLUGIN)
    await registry.call("ok", {}, ctx=plugin)
    for name in ("slow", "coze_down", "bug", "nope"):
        with pytest.raises(ToolError):
            await registry.call(name, {}, ctx=NullToolContext(door=Door.EVENT_ROUTE))
    with anyio.CancelScope() as scope:
        scope.cancel()  # the caller goes away while the tool waits
        await registry.call("waits", {}, ctx=plugin)
    counts = _samples(metrics, "kai_bridge_tool_calls_total")
    assert {dict(key)["outcome"]: dict(key)["door"] for key in counts} == {
        "ok": "plugin", "timeout": "event-route", "error": "event-route", "internal_error": "event-route",
        "not_found": "event-route", "cancelled": "plugin",
    }
    assert {dict(key)["tool"] for key in counts} == {"ok", "slow", "coze_down", "bug", "waits", UNKNOWN_TOOL}
    errors = {record.code: record for record in metrics.recent_errors}
    assert errors["error"].logid == "20260101000000ABCDEF"
    assert errors["internal_error"].message.startswith("tool 'bug' failed with an internal error")
    assert "oops" not in errors["internal_error"].message
