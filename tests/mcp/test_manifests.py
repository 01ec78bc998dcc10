"""The MCP client configs in manifests/mcp/ match the real CLI and defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from kai_bridge.cli import build_parser
from kai_bridge.config import Settings, load_settings

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests" / "mcp"
FILES = sorted(MANIFESTS.glob("*.json"))


def _servers(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    servers = data.get("mcpServers") or data.get("servers")
    assert isinstance(servers, dict)
    return servers


def test_there_is_a_stdio_and_an_http_config_per_client_each_named_in_the_readme() -> None:
    names = {path.name for path in FILES}
    readme = (MANIFESTS / "README.md").read_text(encoding="utf-8")
    for client in ("claude-desktop", "cursor", "vscode"):
        for kind in ("stdio", "http"):
            assert f"{client}.{kind}.json" in names
            assert f"`{client}.{kind}.json`" in readme


@pytest.mark.parametrize("path", [p for p in FILES if ".stdio." in p.name], ids=lambda p: p.name)
def test_stdio_configs_start_the_real_stdio_subcommand(path: Path) -> None:
    server = _servers(path)["kai-bridge"]
    # A desktop app has no activated venv (and often not the shell's PATH): an absolute path.
    assert server["command"].startswith("/")
    assert server["command"].endswith("/.venv/bin/kai-bridge")
    args = build_parser().parse_args(server["args"])
    assert args.command == "stdio"
    for key in server.get("env", {}):
        assert key.startswith("KAI_BRIDGE_")
        assert key == "KAI_BRIDGE_CONFIG" or key.removeprefix("KAI_BRIDGE_").lower() in Settings.model_fields


def test_the_readme_gives_the_absolute_path_and_the_uvx_and_pipx_forms() -> None:
    readme = (MANIFESTS / "README.md").read_text(encoding="utf-8")
    assert "/.venv/bin/kai-bridge" in readme
    assert '"args": ["--from", "/path/to/kai-bridge", "kai-bridge", "stdio"]' in readme
    assert "pipx install" in readme


@pytest.mark.parametrize("path", [p for p in FILES if ".http." in p.name], ids=lambda p: p.name)
def test_http_configs_point_at_the_default_endpoint_with_a_bearer_token(path: Path) -> None:
    defaults = load_settings(environ={}, check_files=False)
    text = path.read_text(encoding="utf-8")
    url = next(word.strip('",') for word in text.split() if word.strip('",').startswith("http://"))
    parts = urlsplit(url)
    assert parts.hostname == defaults.server_host
    assert parts.port == defaults.server_port
    assert parts.path == defaults.mcp_path
    assert "Bearer" in text
