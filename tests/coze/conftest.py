"""A client wired to a real sandbox, in-process (ASGI) or over a socket, with injectable time.

``Rig`` bundles what the tests poke at: the client, its JWT provider, the sandbox's live
state and fault engine (through the admin HTTP routes), and two fake clocks. The wall clock
is shared by the sandbox and the JWT signer (so tokens can be made to expire server-side);
the monotonic clock drives the client's cache, backoff and breaker, and the injected sleep
advances it instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from kai_bridge.coze.auth import JWTAuth
from kai_bridge.coze.breaker import CircuitBreaker
from kai_bridge.coze.client import CozeClient
from kai_bridge.coze.retry import RetryPolicy
from kai_bridge.keys import KeyPair, generate_key_pair, load_private_key
from kai_bridge.sandbox import (
    COFFEE_BOT_ID,
    DEFAULT_WORKSPACE_ID,
    PLUGIN_BOT_ID,
    BuiltinAnswerer,
    SandboxConfig,
    SandboxState,
    create_app,
    sandbox_context,
    start_sandbox,
)

APP_ID = "7400000000000000001"
IN_PROCESS_BASE = "http://sandbox.test"


class FakeClock:
    """Time that moves only when told to (``advance``), or by ``step`` on every read."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.step = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Rig:
    client: CozeClient
    auth: JWTAuth
    http: httpx.AsyncClient
    base_url: str
    state: SandboxState
    wall: FakeClock
    mono: FakeClock
    sleeps: list[float] = field(default_factory=list)
    transport: str = "asgi"

    async def add_fault(self, **rule: Any) -> None:
        response = await self.http.post(f"{self.base_url}/_sandbox/faults", json=rule)
        assert response.status_code == 200, response.text

    async def clear_faults(self) -> None:
        response = await self.http.delete(f"{self.base_url}/_sandbox/faults")
        assert response.status_code == 200, response.text

    @property
    def bot_id(self) -> str:
        return COFFEE_BOT_ID

    @property
    def plugin_bot_id(self) -> str:
        return PLUGIN_BOT_ID

    @property
    def workspace_id(self) -> str:
        return DEFAULT_WORKSPACE_ID


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture(scope="session")
def key_pair() -> KeyPair:
    return generate_key_pair()


@pytest.fixture
async def make_rig(key_pair: KeyPair) -> AsyncIterator[RigFactory]:
    """Build rigs; every resource is closed at the end of the test, in reverse order."""
    async with contextlib.AsyncExitStack() as stack:

        async def factory(
            *,
            transport: str = "asgi",
            registered: KeyPair | None = None,
            also_registered: tuple[KeyPair, ...] = (),
            retry: RetryPolicy | None = None,
            breaker_failures: int = 5,
            breaker_reset: float = 10.0,
            ttl: int = 900,
            refresh_margin: float = 120.0,
            max_connections: int = 100,
            **config: Any,
        ) -> Rig:
            wall = FakeClock(time.time())
            mono = FakeClock(1000.0)
            sleeps: list[float] = []

            async def fake_sleep(seconds: float) -> None:
                sleeps.append(seconds)
                mono.advance(seconds)
                await asyncio.sleep(0)

            public = (registered or key_pair).public_pem
            apps = [(APP_ID, public), *((APP_ID, extra.public_pem) for extra in also_registered)]
            sandbox_config = SandboxConfig(apps=apps, admin_enabled=True, seed=7, **config)
            if transport == "asgi":
                app = create_app(sandbox_config, clock=wall, answerer=BuiltinAnswerer())
                await stack.enter_async_context(app.router.lifespan_context(app))
                state = sandbox_context(app).state
                http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
                base_url = IN_PROCESS_BASE
            else:
                handle = await stack.enter_async_context(start_sandbox(sandbox_config, clock=wall, answerer=BuiltinAnswerer()))
                state = handle.state
                limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
                http = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(10.0))
                base_url = handle.base_url
            stack.push_async_callback(http.aclose)
            policy = retry or RetryPolicy(max_retries=3, backoff_base=0.2, backoff_max=2.0)
            auth = JWTAuth(
                http=http,
                base_url=base_url,
                app_id=APP_ID,
                kid=key_pair.kid,
                private_key=load_private_key(key_pair.private_pem, source="test key"),
                ttl=ttl,
                refresh_margin=refresh_margin,
                retry=policy,
                clock=mono,
                wall_clock=wall,
                sleep=fake_sleep,
            )
            client = CozeClient(
                http=http,
                base_url=base_url,
                auth=auth,
                retry=policy,
                breaker=CircuitBreaker(failure_threshold=breaker_failures, reset_timeout=breaker_reset, clock=mono),
                poll_interval=0.01,
                # On the fake clock a poll costs 0.01 s and no real time, while the sandbox answers in
                # a worker thread (real time): under CPU load a 30 s fake limit ran out before the
                # answer. The limit is for tests that pass their own timeout; this one never binds.
                chat_timeout=1e9,
                bot_id=COFFEE_BOT_ID,
                clock=mono,
                sleep=fake_sleep,
                rand=lambda: 0.5,
            )
            return Rig(client=client, auth=auth, http=http, base_url=base_url, state=state, wall=wall, mono=mono,
                       sleeps=sleeps, transport=transport)

        yield factory


@pytest.fixture(params=["asgi", "socket"])
async def rig(request: pytest.FixtureRequest, make_rig: RigFactory) -> Rig:
    """The same tests against the sandbox in-process and over a real socket."""
    return await make_rig(transport=request.param)
