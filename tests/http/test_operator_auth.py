"""/diagnostics/* (they show configuration) need the admin token beyond loopback; /health and /ready
stay open and show no configuration."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx2
import pytest

from kai_bridge.http.app import build_app, build_sidecar_app
from tests.http.support import MCP_TOKEN, runtime_for, serving_app

DIAGNOSTICS = ("/diagnostics/coze", "/diagnostics/kai")
OPEN_ROUTES = ("/health", "/ready")


def admin_token() -> str:
    return secrets.token_hex(16)


@pytest.mark.parametrize("sidecar", [pytest.param(False, id="serve"), pytest.param(True, id="stdio-sidecar")])
async def test_beyond_loopback_without_an_admin_token_diagnostics_answer_403_naming_the_setting(
    tmp_path: Path, sidecar: bool
) -> None:
    overrides = {"server_host": "0.0.0.0", "mcp_auth_token": MCP_TOKEN}
    async with runtime_for(tmp_path, overrides) as runtime:
        app = build_sidecar_app(runtime) if sidecar else build_app(runtime)
        async with serving_app(app) as base, httpx2.AsyncClient(timeout=10) as http:
            refused = {route: await http.get(base + route) for route in DIAGNOSTICS}
            # Not even the MCP token opens them: it is not the admin token.
            with_mcp_token = await http.get(f"{base}/diagnostics/coze", headers={"Authorization": f"Bearer {MCP_TOKEN}"})
            opened = {route: (await http.get(base + route)).status_code for route in OPEN_ROUTES}
    for route, response in refused.items():
        assert response.status_code == 403, route
        assert "KAI_BRIDGE_ADMIN_TOKEN" in response.json()["error_description"]
    assert with_mcp_token.status_code == 403
    assert opened == dict.fromkeys(OPEN_ROUTES, 200)


@pytest.mark.parametrize("host", [pytest.param("0.0.0.0", id="beyond-loopback"), pytest.param("127.0.0.1", id="loopback")])
async def test_with_an_admin_token_diagnostics_need_exactly_that_bearer_token(tmp_path: Path, host: str) -> None:
    token = admin_token()
    overrides = {"server_host": host, "mcp_auth_token": MCP_TOKEN, "admin_token": token}
    async with (
        runtime_for(tmp_path, overrides) as runtime,
        serving_app(build_app(runtime)) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        answers: dict[str, list[int]] = {}
        for route in DIAGNOSTICS:
            statuses = []
            for authorization in (None, "Bearer wrong-" + token, f"Bearer {MCP_TOKEN}", f"Basic {token}",
                                  f"Bearer {token[:-1]}", f"Bearer {token}", f"bearer {token}"):
                headers = {"Authorization": authorization} if authorization else {}
                statuses.append((await http.get(base + route, headers=headers)).status_code)
            answers[route] = statuses
        unauthorized = await http.get(f"{base}/diagnostics/kai")
        opened = {route: (await http.get(base + route)).status_code for route in OPEN_ROUTES}
    assert answers == {route: [401, 401, 401, 401, 401, 200, 200] for route in DIAGNOSTICS}
    assert unauthorized.headers["www-authenticate"].startswith("Bearer")
    assert token not in unauthorized.text
    assert "KAI_BRIDGE_ADMIN_TOKEN" in unauthorized.json()["error_description"]
    assert opened == dict.fromkeys(OPEN_ROUTES, 200)


async def test_on_loopback_without_an_admin_token_diagnostics_stay_open(tmp_path: Path) -> None:
    async with (
        runtime_for(tmp_path) as runtime,
        serving_app(build_app(runtime)) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        statuses = {route: (await http.get(base + route)).status_code for route in DIAGNOSTICS}
    assert statuses == dict.fromkeys(DIAGNOSTICS, 200)


@pytest.mark.parametrize("path", ["/diagnostics", "/diagnostics/", "/diagnostics/coze/", "/diagnostics/anything/new"])
async def test_every_path_under_diagnostics_is_guarded_even_unknown_ones(tmp_path: Path, path: str) -> None:
    overrides = {"server_host": "0.0.0.0", "mcp_auth_token": MCP_TOKEN}
    async with (
        runtime_for(tmp_path, overrides) as runtime,
        serving_app(build_app(runtime)) as base,
        httpx2.AsyncClient(timeout=10, follow_redirects=False) as http,
    ):
        response = await http.get(base + path)
    assert response.status_code == 403


async def test_health_and_ready_show_no_configuration(tmp_path: Path) -> None:
    upstream = "http://kai-ops:" + secrets.token_hex(8) + "@127.0.0.1:1/mcp"
    overrides = {"upstreams": [{"name": "kai", "url": upstream}], "admin_token": admin_token()}
    async with (
        runtime_for(tmp_path, overrides) as runtime,
        serving_app(build_app(runtime)) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        health = await http.get(f"{base}/health")
        ready = await http.get(f"{base}/ready")
        sandbox_url = runtime.sandbox.base_url if runtime.sandbox else ""
    assert set(health.json()) == {"status", "timestamp", "services", "service", "version", "uptime_s", "mode", "store",
                                  "checks", "tools", "warning"}
    assert "NOT CONNECTED TO COZE" in health.json()["warning"]
    for response in (health, ready):
        for configured in (sandbox_url, "127.0.0.1", "kai-ops", str(tmp_path), "jwt", "sandbox_url", "api_base"):
            assert configured not in response.text, (response.url, configured)


@pytest.mark.parametrize(
    ("host", "with_admin_token", "present_it", "explained"),
    [
        pytest.param("127.0.0.1", False, False, True, id="loopback-open"),
        pytest.param("0.0.0.0", False, False, False, id="beyond-loopback-without-admin-token"),
        pytest.param("0.0.0.0", True, False, False, id="admin-token-not-sent"),
        pytest.param("0.0.0.0", True, True, True, id="admin-token-sent"),
        pytest.param("127.0.0.1", True, False, False, id="loopback-admin-token-not-sent"),
    ],
)
async def test_ready_explains_its_checks_only_to_whoever_may_see_diagnostics(
    tmp_path: Path, host: str, with_admin_token: bool, present_it: bool, explained: bool
) -> None:
    token = admin_token()
    overrides: dict[str, object] = {"server_host": host, "mcp_auth_token": MCP_TOKEN}
    if with_admin_token:
        overrides["admin_token"] = token
    async with (
        runtime_for(tmp_path, overrides) as runtime,
        serving_app(build_app(runtime)) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        headers = {"Authorization": f"Bearer {token}"} if present_it else {}
        ready = await http.get(f"{base}/ready", headers=headers)
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert {"coze", "store", "knowledge"} <= set(checks)
    assert all(check["ok"] for check in checks.values())
    assert all(("detail" in check) is explained for check in checks.values())


CONFIGURATION_PAGES = ("/", "/metrics", "/monitoring", "/monitoring/snapshot.json")


@pytest.mark.parametrize("sidecar", [pytest.param(False, id="serve"), pytest.param(True, id="stdio-sidecar")])
async def test_beyond_loopback_the_monitoring_pages_are_protected_like_the_diagnostics(
    tmp_path: Path, sidecar: bool
) -> None:
    overrides = {"server_host": "0.0.0.0", "mcp_auth_token": MCP_TOKEN}
    async with runtime_for(tmp_path, overrides) as runtime:
        app = build_sidecar_app(runtime) if sidecar else build_app(runtime)
        async with serving_app(app) as base, httpx2.AsyncClient(timeout=10) as http:
            refused = {page: await http.get(base + page) for page in CONFIGURATION_PAGES}
            style = await http.get(f"{base}/monitoring/app.css")  # no configuration in it
    for page, response in refused.items():
        assert response.status_code == 403, page
        assert "KAI_BRIDGE_ADMIN_TOKEN" in response.json()["error_description"]
    assert style.status_code == 200


async def test_a_browser_opens_the_monitoring_page_with_the_admin_token_as_its_basic_password(tmp_path: Path) -> None:
    token = admin_token()
    overrides = {"server_host": "0.0.0.0", "mcp_auth_token": MCP_TOKEN, "admin_token": token}
    async with (
        runtime_for(tmp_path, overrides) as runtime,
        serving_app(build_app(runtime)) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        challenged = await http.get(f"{base}/monitoring")
        wrong = await http.get(f"{base}/monitoring", auth=httpx2.BasicAuth("operator", "not-" + token))
        basic = await http.get(f"{base}/monitoring", auth=httpx2.BasicAuth("anyone", token))
        scraped = await http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
        garbled = await http.get(f"{base}/metrics", headers={"Authorization": "Basic !!not-base64!!"})
    assert challenged.status_code == 401
    assert any(value.startswith("Basic ") for value in challenged.headers.get_list("www-authenticate"))
    assert wrong.status_code == 401
    assert basic.status_code == 200
    assert "<html" in basic.text.lower()
    assert scraped.status_code == 200
    assert "kai_bridge_" in scraped.text
    assert garbled.status_code == 401
    for response in (challenged, wrong, garbled):
        assert token not in response.text
