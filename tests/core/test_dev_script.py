"""``scripts/dev``: the one entry point says how to use it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

DEV = Path(__file__).resolve().parents[2] / "scripts" / "dev"


@pytest.mark.parametrize("args", [pytest.param([], id="no-argument"), pytest.param(["help"], id="help")])
def test_without_a_command_the_usage_is_printed(args: list[str]) -> None:
    run = subprocess.run(["bash", str(DEV), *args], capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 0
    assert run.stdout.startswith("usage: scripts/dev COMMAND")
    for command in ("setup", "serve", "test", "bench"):
        assert f"\n  {command} " in run.stdout
    assert "set -euo" not in run.stdout


def test_an_unknown_command_is_refused_with_the_usage() -> None:
    run = subprocess.run(["bash", str(DEV), "deploy"], capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 2
    assert "unknown command 'deploy'" in run.stderr
    assert "usage: scripts/dev COMMAND" in run.stderr
