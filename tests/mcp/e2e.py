"""Running the real ``kai-bridge`` command against a sandbox served by the test process.

The sandbox stays up while bridge processes come and go, so a restarted bridge finds the
same Coze conversations (as it would with real Coze). Credentials are a key pair generated
at test time, written to ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import Process
from anyio.streams.text import TextReceiveStream

from kai_bridge.sandbox import COFFEE_BOT_ID, SandboxHandle
from tests.bridge import APP_ID, key_pair, stop_process

REPO = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "kai_bridge.cli"]
_URL = re.compile(r"kai-bridge MCP endpoint: (http://\S+)")


@dataclass(frozen=True)
class BridgeEnv:
    env: dict[str, str]
    data_dir: Path


def bridge_env(handle: SandboxHandle, tmp_path: Path, **extra: str) -> BridgeEnv:
    """Environment for a bridge process: Coze = the test's sandbox, state and logs in tmp_path."""
    pair = key_pair()
    key_file = tmp_path / "coze_private_key.pem"
    if not key_file.exists():
        key_file.write_bytes(pair.private_pem)
        key_file.chmod(0o600)
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_BRIDGE_")}
    env.update(
        {
            "KAI_BRIDGE_COZE_API_BASE": handle.base_url,
            "KAI_BRIDGE_COZE_APP_ID": APP_ID,
            "KAI_BRIDGE_COZE_KID": pair.kid,
            "KAI_BRIDGE_COZE_PRIVATE_KEY_PATH": str(key_file),
            "KAI_BRIDGE_COZE_BOT_ID": COFFEE_BOT_ID,
            "KAI_BRIDGE_DATA_DIR": str(data_dir),
            "KAI_BRIDGE_LOG_DIR": str(tmp_path / "logs"),
            "KAI_BRIDGE_STDIO_SIDECAR_PORT": "0",
            "PYTHONPATH": str(REPO),
            **extra,
        }
    )
    return BridgeEnv(env=env, data_dir=data_dir)


def run_cli(args: list[str], env: Mapping[str, str], *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], env=dict(env), capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False
    )


@contextlib.asynccontextmanager
async def serve_process(env: Mapping[str, str], *args: str) -> AsyncIterator[tuple[str, Process, list[str]]]:
    """Start ``kai-bridge serve --port 0``; yield its MCP URL (read from its log), the process and its log lines."""
    process = await anyio.open_process([*COMMAND, "serve", "--port", "0", *args], env=dict(env), cwd=REPO)
    lines: list[str] = []
    url: str | None = None
    try:
        assert process.stderr is not None
        stream = TextReceiveStream(process.stderr)
        buffer = ""
        with anyio.fail_after(60):
            async for chunk in stream:
                buffer += chunk
                *complete, buffer = buffer.split("\n")
                lines.extend(complete)
                found = next((m for m in map(_URL.search, complete) if m), None)
                if found:
                    url = found.group(1)
                    break
        if url is None:
            raise RuntimeError("kai-bridge serve exited before listening:\n" + "\n".join(lines[-20:]))

        async def drain() -> None:
            async for chunk in stream:
                lines.extend(chunk.splitlines())

        async with anyio.create_task_group() as tg:
            tg.start_soon(drain)
            yield url, process, lines
            tg.cancel_scope.cancel()
    finally:
        await stop_process(process)
