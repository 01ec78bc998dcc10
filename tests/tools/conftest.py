"""Fixtures for the tool tests: a running sandbox + Coze client, and a bridge over them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kai_bridge.coze import CozeClient
from kai_bridge.runtime import Runtime
from kai_bridge.sandbox import SandboxHandle
from tests.bridge import open_bridge, running_sandbox


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[SandboxHandle, CozeClient]]:
    async with running_sandbox() as pair:
        yield pair


@pytest.fixture
async def bridge(upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path) -> AsyncIterator[Runtime]:
    handle, _coze = upstream
    async with open_bridge(sandbox=handle, db_path=tmp_path / "kb.db") as opened:
        yield opened
