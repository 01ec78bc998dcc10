"""Credentials inside configured URLs are never shown: not by doctor, diagnostics, stderr or log files.

``coze_api_base`` with credentials is refused outright (it cannot work: the Coze client sends
its own Authorization); an upstream URL may carry userinfo (sent as HTTP Basic) and is shown
redacted everywhere, including the MCP SDK's own DEBUG lines.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from kai_bridge.http.app import build_app
from tests.http.support import runtime_for, serving_app
from tests.upstream.conftest import HttpServer

pytestmark = pytest.mark.e2e


@pytest.fixture
async def open_upstream() -> AsyncIterator[HttpServer]:
    """The KAI fixture server over HTTP, with no token of its own (userinfo goes as HTTP Basic)."""
    server = HttpServer("")
    await server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            await server.kill()


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_BRIDGE_")}
    env.update({"KAI_BRIDGE_DATA_DIR": str(tmp_path / "data"), "KAI_BRIDGE_LOG_DIR": str(tmp_path / "logs")})
    env.update(values)
    return env


def _kai_bridge(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kai_bridge.cli", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=90, check=False,
    )


def _log_files(tmp_path: Path) -> str:
    return "".join(path.read_text(encoding="utf-8") for path in sorted((tmp_path / "logs").glob("*.log")))


async def test_an_upstream_password_reaches_neither_stderr_nor_the_log_files_at_debug(
    open_upstream: HttpServer, tmp_path: Path
) -> None:
    password = "pw-" + secrets.token_hex(8)
    url = f"http://kai-ops:{password}@127.0.0.1:{open_upstream.port}/mcp?sig={secrets.token_hex(6)}"
    env = _env(tmp_path, KAI_BRIDGE_UPSTREAMS=f'[{{"name": "kai", "url": "{url}"}}]')
    done = _kai_bridge("--log-level", "DEBUG", "doctor", "--timeout", "30", env=env, cwd=tmp_path)
    logs = _log_files(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[ok] upstream kai: connected" in done.stdout
    # The SDK's DEBUG line was written, with the userinfo and the query value masked.
    shown = f"Connecting to StreamableHTTP endpoint: http://kai-ops:***@127.0.0.1:{open_upstream.port}/mcp?sig=***"
    assert shown in done.stderr
    assert shown in logs
    sig = url.rsplit("=", 1)[1]
    for text in (done.stdout, done.stderr, logs):
        assert password not in text
        assert sig not in text


async def test_diagnostics_and_ready_show_an_upstream_url_without_its_credentials(
    open_upstream: HttpServer, tmp_path: Path
) -> None:
    password = "pw-" + secrets.token_hex(8)
    url = f"http://kai-ops:{password}@127.0.0.1:{open_upstream.port}/mcp"
    async with (
        runtime_for(tmp_path, {"upstreams": [{"name": "kai", "url": url}]}) as runtime,
        serving_app(build_app(runtime)) as base,
        httpx2.AsyncClient(timeout=10) as http,
    ):
        assert await runtime.upstreams.wait_ready(30)
        kai = await http.get(f"{base}/diagnostics/kai")
        answers = [kai, await http.get(f"{base}/diagnostics/coze"), await http.get(f"{base}/ready"),
                   await http.get(f"{base}/health")]
    assert kai.json()["upstreams"][0]["state"] == "connected"
    for response in answers:
        assert password not in response.text
        assert "kai-ops" not in response.text


def test_doctor_refuses_credentials_in_coze_api_base_without_printing_them(tmp_path: Path) -> None:
    password, token = "pw-" + secrets.token_hex(8), "tok-" + secrets.token_hex(8)
    env = _env(
        tmp_path,
        KAI_BRIDGE_COZE_PAT="pat_" + secrets.token_hex(12),
        KAI_BRIDGE_COZE_API_BASE=f"https://ops:{password}@api.coze.cn/?access_token={token}",
    )
    done = _kai_bridge("doctor", env=env, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout.startswith("[FAIL] settings:")
    assert "coze_api_base must be a plain base URL" in done.stdout
    assert "[ok]" not in done.stdout
    for text in (done.stdout, done.stderr, _log_files(tmp_path) if (tmp_path / "logs").exists() else ""):
        assert password not in text
        assert token not in text
