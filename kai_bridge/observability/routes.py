"""The operator pages: ``/metrics``, ``/monitoring`` (+ its snapshot and assets) and the ``/`` landing page.

All read what is already in memory: a scrape formats the runtime's registry, the snapshot reads
the same counters plus the recent windows, the landing page lists the app's own routes. None
shows a secret (no token, key, argument or user id); beyond loopback they are meant to sit
behind the same protection as ``/diagnostics``: :data:`CONFIGURATION_PATHS` is the list to
protect. The page's script and style are package files served from here (no CDN; a
Content-Security-Policy of ``'self'`` keeps it that way), and it works offline.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from kai_bridge.observability.hub import Observability
from kai_bridge.observability.liveness import services_of
from kai_bridge.observability.snapshot import build_snapshot

__all__ = ["CONFIGURATION_PATHS", "MONITORING_PATHS", "ROUTE_NOTES", "LandingInfo", "observability_routes"]

#: The routes this module serves.
MONITORING_PATHS: Final = ("/", "/metrics", "/monitoring", "/monitoring/snapshot.json", "/monitoring/app.js",
                           "/monitoring/app.css")
#: Operator routes that show configuration (versions, upstream names and addresses, tool names,
#: error texts): put these behind the admin token when serving beyond loopback.
CONFIGURATION_PATHS: Final = ("/", "/metrics", "/monitoring", "/monitoring/snapshot.json")
#: What the landing page says about the routes it lists (others are listed by path alone).
ROUTE_NOTES: Final = {
    "/": "this page",
    "/health": "liveness in the seed guide's shape (never calls Coze)",
    "/ready": "readiness: every declared check, with latencies (503 when a required one fails)",
    "/diagnostics/coze": "the Coze client: credential mode, token state, breaker, counters",
    "/diagnostics/kai": "upstream KAI servers and the tools served",
    "/metrics": "Prometheus metrics",
    "/monitoring": "the live monitoring panel",
    "/monitoring/snapshot.json": "the panel's data, as JSON",
}
_HIDDEN: Final = frozenset({"/monitoring/app.js", "/monitoring/app.css"})
_CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_PAGE_HEADERS: Final = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
                        "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


@dataclass(frozen=True, slots=True, kw_only=True)
class LandingInfo:
    """What the landing page says about the MCP door of this app (None: no /mcp here, the stdio sidecar)."""

    mcp_path: str | None
    mcp_token_required: bool


@cache
def _asset(name: str) -> str:
    return resources.files("kai_bridge.observability").joinpath("assets", name).read_text(encoding="utf-8")


def _paths_of(routes: Sequence[BaseRoute]) -> list[str]:
    paths: list[str] = []
    for route in routes:
        if isinstance(route, Route | Mount):
            paths.append(route.path or "/")
    return paths


def _mcp_configs(base: str, info: LandingInfo) -> list[tuple[str, str]]:
    stdio = {"mcpServers": {"kai-bridge": {"command": "kai-bridge", "args": ["stdio"]}}}
    configs = [("stdio (the client starts kai-bridge itself)", json.dumps(stdio, indent=2))]
    if info.mcp_path is not None:
        entry: dict[str, object] = {"url": base + info.mcp_path}
        if info.mcp_token_required:
            entry["headers"] = {"Authorization": "Bearer ${env:KAI_BRIDGE_MCP_AUTH_TOKEN}"}
        configs.append(("Streamable HTTP (this server)", json.dumps({"mcpServers": {"kai-bridge": entry}}, indent=2)))
    return configs


def _landing_html(obs: Observability, request: Request, info: LandingInfo) -> str:
    sources = obs.sources
    _services, status = services_of(sources)
    base = str(request.base_url).rstrip("/")
    esc = html.escape
    rows = []
    for path in _paths_of(request.app.routes):
        if path in _HIDDEN:
            continue
        note = ROUTE_NOTES.get(path, "")
        if info.mcp_path is not None and path == info.mcp_path:
            note = "MCP over Streamable HTTP" + (" (bearer token required)" if info.mcp_token_required else "")
        link = f'<a href="{esc(path)}">{esc(path)}</a>' if "{" not in path and path != info.mcp_path else esc(path)
        rows.append(f"<tr><td><code>{link}</code></td><td>{esc(note)}</td></tr>")
    configs = "".join(f"<h3>{esc(title)}</h3><pre>{esc(text)}</pre>" for title, text in _mcp_configs(base, info))
    mode = ("<p class=\"banner sandbox\">SANDBOX: " + esc(sources.warning or "") + "</p>" if sources.mode == "sandbox"
            else "<p class=\"banner live\">LIVE: connected to Coze at " + esc(sources.coze.base_url) + "</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>kai-bridge</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/monitoring/app.css"></head>
<body class="landing"><header><h1>kai-bridge <small>{esc(sources.version)}</small></h1>
<span class="status {esc(status)}" id="status">{esc(status)}</span></header>
{mode}
<p>MCP server bridging KAI tools and Coze agents: {len(sources.registry)} tools, store {esc(sources.store_kind)}.
<a href="/monitoring">Monitoring panel</a> · <a href="/metrics">Prometheus metrics</a> ·
<a href="/health">/health</a> · <a href="/ready">/ready</a></p>
<section><h2>Routes</h2><table><thead><tr><th>route</th><th>what</th></tr></thead><tbody>{"".join(rows)}</tbody>
</table></section>
<section><h2>MCP client configuration</h2>{configs}
<p>Ready-made files for Claude Desktop, Cursor and VS Code are in the repository's <code>manifests/mcp/</code>.</p>
</section></body></html>
"""


def observability_routes(obs: Observability, *, landing: LandingInfo) -> list[BaseRoute]:
    """The routes of :data:`MONITORING_PATHS` for ``obs``."""
    registry = obs.metrics.registry

    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), media_type=content_type)

    async def monitoring(request: Request) -> Response:
        return HTMLResponse(_asset("monitoring.html"), headers=_PAGE_HEADERS)

    async def script(request: Request) -> Response:
        return Response(_asset("monitoring.js"), media_type="text/javascript; charset=utf-8",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    async def style(request: Request) -> Response:
        return Response(_asset("monitoring.css"), media_type="text/css; charset=utf-8",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    async def snapshot(request: Request) -> JSONResponse:
        return JSONResponse(build_snapshot(obs.sources, obs.metrics), headers={"Cache-Control": "no-store"})

    async def home(request: Request) -> Response:
        return HTMLResponse(_landing_html(obs, request, landing), headers=_PAGE_HEADERS)

    return [
        Route("/", home, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/monitoring", monitoring, methods=["GET"]),
        Route("/monitoring/snapshot.json", snapshot, methods=["GET"]),
        Route("/monitoring/app.js", script, methods=["GET"]),
        Route("/monitoring/app.css", style, methods=["GET"]),
    ]
