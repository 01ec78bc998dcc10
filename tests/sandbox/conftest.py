"""Fixtures: test-time RSA keys and a sandbox served on a real socket in the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from kai_bridge.keys import KeyPair, generate_key_pair
from kai_bridge.sandbox import BuiltinAnswerer, SandboxConfig, SandboxHandle, start_sandbox
from tests.sandbox.support import ADMIN_TOKEN, APP_ID, PAT

SandboxFactory = Callable[..., AbstractAsyncContextManager[SandboxHandle]]


@pytest.fixture(scope="session")
def key_pair() -> KeyPair:
    return generate_key_pair()


@pytest.fixture(scope="session")
def other_key_pair() -> KeyPair:
    return generate_key_pair()


def base_config(key_pair: KeyPair, **overrides: Any) -> SandboxConfig:
    values: dict[str, Any] = {
        "apps": [(APP_ID, key_pair.public_pem)],
        "pats": [PAT],
        "admin_enabled": True,
        "admin_token": ADMIN_TOKEN,
        "seed": 7,
    }
    values.update(overrides)
    return SandboxConfig(**values)


@pytest.fixture
def make_sandbox(key_pair: KeyPair) -> SandboxFactory:
    """``async with make_sandbox(answerer=..., clock=..., **config) as handle``."""

    def factory(
        *, answerer: Any = None, clock: Any = None, **overrides: Any
    ) -> AbstractAsyncContextManager[SandboxHandle]:
        return start_sandbox(
            base_config(key_pair, **overrides),
            answerer=answerer if answerer is not None else BuiltinAnswerer(),
            clock=clock,
        )

    return factory


@pytest.fixture
async def sandbox(make_sandbox: SandboxFactory) -> AsyncIterator[SandboxHandle]:
    async with make_sandbox() as handle:
        yield handle


@pytest.fixture
async def client(sandbox: SandboxHandle) -> AsyncIterator[httpx.AsyncClient]:
    """A raw client authenticated with the configured PAT."""
    async with httpx.AsyncClient(
        base_url=sandbox.base_url, headers={"Authorization": f"Bearer {PAT}"}, timeout=10
    ) as http:
        yield http
