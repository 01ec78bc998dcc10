"""Fixtures for every test.

Nothing a test runs may write into the real home folder: kai-bridge keeps state and logs in
per-user folders by default (``platformdirs``: on Linux ``$XDG_DATA_HOME`` and
``$XDG_STATE_HOME``); each test gets its own, inside its ``tmp_path``, and so do the processes it
starts (they inherit the environment). Shared across packages: ``restore_logging`` (for tests
that run the CLI's logging set-up in-process), ``upstream`` (a sandbox on a socket and a Coze
client of the test's own) and ``bridge`` (the real runtime over that sandbox, tests/bridge.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kai_bridge.coze import CozeClient
from kai_bridge.runtime import Runtime
from kai_bridge.sandbox import SandboxHandle
from tests.bridge import open_bridge, running_sandbox


@pytest.fixture(autouse=True)
def _per_user_dirs_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("xdg")
    for name, sub in (("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state"), ("XDG_CONFIG_HOME", "config")):
        monkeypatch.setenv(name, str(Path(home) / sub))


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The root logger's handlers and level as they were (the CLI's set-up replaces them; caplog needs them)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[SandboxHandle, CozeClient]]:
    async with running_sandbox() as pair:
        yield pair


@pytest.fixture
async def bridge(upstream: tuple[SandboxHandle, CozeClient], tmp_path: Path) -> AsyncIterator[Runtime]:
    handle, _coze = upstream
    async with open_bridge(sandbox=handle, db_path=tmp_path / "kb.db") as opened:
        yield opened
