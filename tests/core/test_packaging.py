"""pyproject.toml says what the package needs and how it is licensed, in today's format."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import kai_bridge

REPO = Path(__file__).resolve().parents[2]
PYPROJECT: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match is not None, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _imported_roots() -> set[str]:
    roots: set[str] = set()
    for path in (REPO / "kai_bridge").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots.add(node.module.split(".")[0])
    return {r for r in roots if r not in sys.stdlib_module_names and r not in ("kai_bridge", "__future__")}


def test_every_third_party_module_the_package_imports_is_a_declared_dependency() -> None:
    declared = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    undeclared = {
        root: providers.get(root)
        for root in _imported_roots()
        if not {_name(d) for d in providers.get(root, [root])} & declared
    }
    assert undeclared == {}


def test_the_license_is_an_spdx_string_with_its_files_and_a_setuptools_that_reads_it() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"
    for pattern in project["license-files"]:
        assert list(REPO.glob(pattern)), pattern
    setuptools = next(r for r in PYPROJECT["build-system"]["requires"] if _name(r) == "setuptools")
    bound = re.search(r">=\s*(\d+)", setuptools)
    assert bound is not None
    assert int(bound.group(1)) >= 77  # the first setuptools with SPDX `license` and `license-files`


def test_the_version_is_written_once() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "kai_bridge._version.__version__"}
    assert importlib.metadata.version("kai-bridge") == kai_bridge.__version__
    # No second copy of the version string anywhere else in the package.
    copies = [
        str(path.relative_to(REPO))
        for path in (REPO / "kai_bridge").rglob("*.py")
        if re.search(rf"""["']{re.escape(kai_bridge.__version__)}["']""", path.read_text(encoding="utf-8"))
    ]
    assert copies == ["kai_bridge/_version.py"]
