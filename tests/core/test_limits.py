"""Per-client token buckets: the seed's 60/minute with bursts of 10, 429 with Retry-After, /mcp included."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from kai_bridge.coze import CozeClient
from kai_bridge.limits import RateLimit, RateLimitMiddleware, TokenBuckets, bearer_identity, mcp_client_key
from kai_bridge.sandbox import SandboxHandle
from tests.bridge import open_bridge, running_sandbox
from tests.mcp.http_harness import serving

SEED = RateLimit(door="test door", per_minute=60, burst=10)
INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_admits_its_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(SEED, clock=clock)
    assert [buckets.take("a") for _ in range(10)] == [0.0] * 10
    assert buckets.take("a") == pytest.approx(1.0)  # one token a second at 60 a minute
    clock.now += 0.5
    assert buckets.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    clock.now += 3600
    assert [buckets.take("a") for _ in range(11)][-2:] == [0.0, pytest.approx(1.0)]  # never more than the burst


def test_clients_have_their_own_buckets_and_idle_ones_are_forgotten_first() -> None:
    buckets = TokenBuckets(RateLimit(door="d", per_minute=60, burst=1), clock=Clock(), max_clients=2)
    assert buckets.take("a") == 0.0
    assert buckets.take("b") == 0.0
    assert buckets.take("a") > 0
    assert buckets.take("c") == 0.0  # "b" (least recently seen) is forgotten
    assert len(buckets) == 2
    assert buckets.take("a") > 0  # "a" was kept


def test_no_limit_admits_everything() -> None:
    buckets = TokenBuckets(RateLimit(door="d", per_minute=0, burst=1))
    assert all(buckets.take("a") == 0.0 for _ in range(1000))
    assert not buckets.limit.enabled


@pytest.mark.parametrize(
    ("per_minute", "burst"),
    [pytest.param(-1, 1, id="negative"), pytest.param(float("inf"), 1, id="infinite"), pytest.param(1, 0, id="no-burst")],
)
def test_a_limit_that_cannot_work_is_refused(per_minute: float, burst: int) -> None:
    with pytest.raises(ValueError, match=r"per_minute|burst"):
        RateLimit(door="d", per_minute=per_minute, burst=burst)


def test_a_bearer_client_is_named_by_a_hash_not_its_token() -> None:
    token = secrets.token_hex(16)
    scope = {"type": "http", "headers": [(b"authorization", f"Bearer {token}".encode())], "client": ("10.0.0.1", 1)}
    key = mcp_client_key(scope)
    assert key == bearer_identity(token)
    assert token not in key
    assert mcp_client_key({"type": "http", "headers": [], "client": ("10.0.0.1", 1)}) == "addr:10.0.0.1"


async def test_the_middleware_answers_429_with_retry_after_and_the_limit_named() -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi")

    app = RateLimitMiddleware(Starlette(routes=[Route("/", hello)]),
                              buckets=TokenBuckets(RateLimit(door="MCP endpoint", per_minute=60, burst=2), clock=Clock()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        codes = [(await http.get("/")).status_code for _ in range(3)]
        refused = await http.get("/")
    assert codes == [200, 200, 429]
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {
        "error": "rate_limited",
        "error_description": "rate limit exceeded: 60 requests per minute (burst 2) per client on the MCP endpoint; "
        "retry in 1 s",
    }


async def test_the_mcp_endpoint_has_a_per_client_limit(tmp_path: Path) -> None:
    upstream: tuple[SandboxHandle, CozeClient]
    async with running_sandbox() as upstream, open_bridge(
        sandbox=upstream[0], db_path=tmp_path / "kb.db",
        settings_overrides={"mcp_rate_limit_per_minute": 1, "mcp_rate_limit_burst": 2},
    ) as bridge, serving(bridge) as base, httpx.AsyncClient(timeout=30) as http:
        codes = [(await http.post(f"{base}/mcp", json=INIT, headers=MCP_HEADERS)).status_code for _ in range(3)]
        refused = await http.post(f"{base}/mcp", json=INIT, headers=MCP_HEADERS)
        health = await http.get(f"{base}/health")
    assert codes == [200, 200, 429]
    assert int(refused.headers["retry-after"]) >= 59
    assert "1 requests per minute (burst 2) per client on the MCP endpoint" in refused.json()["error_description"]
    assert health.status_code == 200  # the operator routes are not limited
