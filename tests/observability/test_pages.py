"""The landing page, the panel's assets and headers, and the stdio sidecar serving the same routes."""

from __future__ import annotations

import socket
from pathlib import Path

import anyio
import httpx2
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters
from prometheus_client.parser import text_string_to_metric_families

from kai_bridge.http.app import CONFIGURATION_ROUTES
from kai_bridge.observability import MONITORING_PATHS
from tests.bridge import open_embedded, running_sandbox
from tests.mcp.e2e import COMMAND, REPO, bridge_env
from tests.mcp.http_harness import serving

TOKEN = "obs-test-token-" + "9" * 20


async def test_the_landing_page_says_what_runs_lists_the_routes_and_gives_mcp_configs(tmp_path: Path) -> None:
    overrides = {"health_check_interval": 0, "mcp_auth_token": TOKEN}
    async with (
        open_embedded(db_path=tmp_path / "kb.db", settings_overrides=overrides) as runtime,
        serving(runtime) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        page = await http.get(base + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    body = page.text
    assert "SANDBOX" in body
    assert "NOT CONNECTED TO COZE" in body
    for path in ("/health", "/ready", "/metrics", "/monitoring", "/diagnostics/coze", "/mcp"):
        assert f"<code>{path}</code>" in body or f'href="{path}"' in body
    assert f"{base}/mcp" in body  # the HTTP client config points at this very server
    assert "${env:KAI_BRIDGE_MCP_AUTH_TOKEN}" in body
    assert TOKEN not in body
    assert "/monitoring/app.js" not in body  # assets are not routes worth listing


async def test_the_panel_is_self_contained_and_its_snapshot_has_no_secret(tmp_path: Path) -> None:
    async with (
        open_embedded(db_path=tmp_path / "kb.db", settings_overrides={"health_check_interval": 0}) as runtime,
        serving(runtime) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        await runtime.registry.call("coffee_knowledge_query", {"query": "espresso"})
        page = await http.get(base + "/monitoring")
        script = await http.get(base + "/monitoring/app.js")
        style = await http.get(base + "/monitoring/app.css")
        snapshot = await http.get(base + "/monitoring/snapshot.json")
    assert page.status_code == script.status_code == style.status_code == snapshot.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for text in (page.text, script.text, style.text):
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
        assert "https://" not in text
    assert script.headers["content-type"].startswith("text/javascript")
    data = snapshot.json()
    assert data["calls"]["tool_calls_total"] == 1
    assert data["calls"]["doors"][0]["door"] == "other"
    assert data["mode"] == "sandbox"
    assert data["coze"]["token"]["mode"] == "jwt"
    assert "PRIVATE KEY" not in snapshot.text
    assert "czs_" not in snapshot.text


def test_the_configuration_routes_to_protect_cover_the_operator_pages() -> None:
    assert {"/diagnostics/coze", "/diagnostics/kai", "/monitoring", "/monitoring/snapshot.json", "/metrics",
            "/"} <= set(CONFIGURATION_ROUTES)
    assert set(CONFIGURATION_ROUTES) - {"/diagnostics/coze", "/diagnostics/kai"} <= set(MONITORING_PATHS)


async def test_the_stdio_sidecar_serves_metrics_with_the_stdio_door(tmp_path: Path) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    async with running_sandbox() as (handle, _):
        env = bridge_env(handle, tmp_path, KAI_BRIDGE_STDIO_SIDECAR_PORT=str(port)).env
        params = StdioServerParameters(command=COMMAND[0], args=[*COMMAND[1:], "stdio"], env=env, cwd=str(REPO))
        with anyio.fail_after(60):
            async with Client(params, mode="legacy") as client:
                assert not (await client.call_tool("coffee_knowledge_query", {"query": "espresso"})).is_error
                async with httpx2.AsyncClient(timeout=10) as http:
                    metrics = await http.get(f"http://127.0.0.1:{port}/metrics")
                    monitoring = await http.get(f"http://127.0.0.1:{port}/monitoring")
                    landing = await http.get(f"http://127.0.0.1:{port}/")
    assert metrics.status_code == monitoring.status_code == landing.status_code == 200
    samples = [s for f in text_string_to_metric_families(metrics.text) for s in f.samples
               if s.name == "kai_bridge_tool_calls_total"]
    assert [(s.labels["door"], s.labels["tool"], s.value) for s in samples] == [
        ("mcp-stdio", "coffee_knowledge_query", 1.0)]
    assert "Streamable HTTP (this server)" not in landing.text  # the sidecar has no /mcp
