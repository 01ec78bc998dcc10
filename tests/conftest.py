"""Fixtures for every test: nothing a test runs may write into the real home folder.

kai-bridge keeps state and logs in per-user folders by default (``platformdirs``: on Linux
``$XDG_DATA_HOME`` and ``$XDG_STATE_HOME``). Each test gets its own, inside its ``tmp_path``,
and so do the processes it starts (they inherit the environment).
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _per_user_dirs_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("xdg")
    for name, sub in (("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state"), ("XDG_CONFIG_HOME", "config")):
        monkeypatch.setenv(name, str(Path(home) / sub))
