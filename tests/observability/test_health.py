"""/health in the seed guide's shape: read from the last background checks and live state, never a ping."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import httpx2
import pytest

from kai_bridge.sandbox import FaultRule
from tests.bridge import open_bridge, running_sandbox
from tests.mcp.http_harness import serving
from tests.observability.conftest import FAST_FAILURES

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


async def test_health_answers_the_seed_shape_without_calling_coze(tmp_path: Path) -> None:
    async with (
        running_sandbox() as (handle, _),
        open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=FAST_FAILURES) as bridge,
        serving(bridge) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        before = handle.state.requests_total
        bodies = [(await http.get(base + "/health")).json() for _ in range(5)]
        after = handle.state.requests_total
    body = bodies[-1]
    assert after == before  # liveness reads what is known; it sends Coze nothing
    assert body["status"] == "healthy"
    assert ISO_UTC.match(body["timestamp"])
    assert body["services"] == {"auth_manager": "ok", "coze_client": "ok", "kai_manager": "ok", "store": "ok"}
    assert body["mode"] == "live"
    assert "warning" not in body
    assert body["store"] == "sqlite"
    assert body["version"]
    assert body["uptime_s"] >= 0
    assert body["checks"] == {}  # no background run yet (interval 0 here)


async def test_the_background_refresh_runs_the_checks_that_health_then_shows(tmp_path: Path) -> None:
    overrides = {**FAST_FAILURES, "health_check_interval": 0.05}
    async with (
        running_sandbox() as (handle, _),
        open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=overrides) as bridge,
        serving(bridge) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        with anyio.fail_after(10):
            await bridge.health.wait_for_run()
            await bridge.health.wait_for_run()  # a second run: it keeps refreshing
        body = (await http.get(base + "/health")).json()
    assert set(body["checks"]) == {"coze", "store", "knowledge", "webhook inbox"}
    assert all(check["ok"] for check in body["checks"].values())
    assert all(ISO_UTC.match(check["checked_at"]) for check in body["checks"].values())
    assert bridge.health.runs >= 2


async def test_a_failed_coze_check_degrades_it_and_an_open_breaker_says_down(tmp_path: Path) -> None:
    faults = [FaultRule(route="bots.retrieve", error_rate=1.0)]
    async with (
        running_sandbox(faults=faults) as (handle, _),
        open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=FAST_FAILURES) as bridge,
        serving(bridge) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        await bridge.health.run(timeout=5)
        failed = (await http.get(base + "/health")).json()
        for _ in range(bridge.settings.coze_breaker_failures):
            bridge.coze.breaker.record_failure()
        opened = (await http.get(base + "/health")).json()
    assert failed["status"] == "degraded"  # Coze is outside: the knowledge and upstream tools still work
    assert failed["services"]["coze_client"] == "down"
    assert failed["services"]["store"] == "ok"
    assert failed["checks"]["coze"]["ok"] is False
    assert "5000" in failed["checks"]["coze"]["error"]
    assert opened["services"]["coze_client"] == "down"


@pytest.mark.parametrize(
    ("required", "status", "kai_manager"),
    [pytest.param(False, "degraded", "degraded", id="optional-upstream-down-degrades"),
     pytest.param(True, "unhealthy", "down", id="required-upstream-down")],
)
async def test_an_upstream_that_is_down_degrades_or_fails_liveness(
    tmp_path: Path, required: bool, status: str, kai_manager: str
) -> None:
    # Port 9 (discard) is closed here: the upstream never connects.
    down = {"name": "kai", "url": "http://127.0.0.1:9/mcp", "required": required}
    overrides = {**FAST_FAILURES, "upstreams": [down]}
    async with (
        running_sandbox() as (handle, _),
        open_bridge(sandbox=handle, db_path=tmp_path / "kb.db", settings_overrides=overrides) as bridge,
        serving(bridge) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        await bridge.health.run(timeout=5)
        body = (await http.get(base + "/health")).json()
    assert body["status"] == status
    assert body["services"]["kai_manager"] == kai_manager
    assert body["services"]["coze_client"] == "ok"


async def test_the_embedded_sandbox_is_named_with_its_warning(tmp_path: Path) -> None:
    from tests.bridge import open_embedded

    async with (
        open_embedded(db_path=tmp_path / "kb.db", settings_overrides={"health_check_interval": 0}) as runtime,
        serving(runtime) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        body = (await http.get(base + "/health")).json()
    assert body["mode"] == "sandbox"
    assert "NOT CONNECTED TO COZE" in body["warning"]
    assert body["status"] == "healthy"
