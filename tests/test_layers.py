"""The layering of docs/architecture.md holds: the import-linter contracts in pyproject.toml are kept."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parents[1]


def test_every_import_contract_is_kept(capsys: pytest.CaptureFixture[str]) -> None:
    cwd = os.getcwd()
    os.chdir(REPO)  # the contracts are read from pyproject.toml of the repository
    try:
        status = lint_imports(no_cache=True, no_logo=True)
    finally:
        os.chdir(cwd)
    report = capsys.readouterr().out
    summary = re.search(r"Contracts: (\d+) kept, (\d+) broken", report)
    assert summary is not None, report
    assert int(summary.group(2)) == 0, report
    assert int(summary.group(1)) >= 3  # layers, no settings below the root, two independent wires
    assert status == 0
