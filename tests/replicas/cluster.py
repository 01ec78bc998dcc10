"""Real processes for the replica tests: the standalone sandbox as Coze, and ``kai-bridge serve`` replicas.

Every process is the real command (``python -m kai_bridge.cli ...``) on port 0; it says where it
listens through ``--ready-file``, which is polled (inside ``anyio.fail_after``) together with
the process's exit, so a process that dies while starting fails the test with its log. Logs
go to files in the test's directory and are shown when something fails. Credentials (the key
pairs, the PATs, the admin and webhook tokens) are generated at test time.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp.types as types
from anyio.abc import Process
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from kai_bridge.keys import KeyPair
from kai_bridge.sandbox import COFFEE_BOT_ID
from tests.bridge import key_pair, stop_process

REPO = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "kai_bridge.cli"]
APP_ID = "kai-bridge-replicas"
START_TIMEOUT = 60.0  # seconds for a process to write its ready file on a loaded machine


@dataclass
class Running:
    """A started process: its URL (from the ready file), its log file and the process."""

    name: str
    process: Process
    url: str
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log, lines)

    def children(self) -> list[int]:
        """Process ids of its direct children (the upstream servers it started), from /proc."""
        found: list[int] = []
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    found += [int(pid) for pid in (task / "children").read_text().split()]
        return found

    def kill_9(self) -> list[int]:
        """SIGKILL the process (no clean-up runs in it); returns its children, which the caller reaps."""
        children = self.children()
        os.kill(self.process.pid, signal.SIGKILL)
        return children


def _ready_url(ready: Path) -> str | None:
    """The URL in a ready file once it is written whole (it ends with a newline), else None."""
    try:
        text = ready.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return text.strip() if text.endswith("\n") else None


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _fresh_folder(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ready, log = folder / f"{name}.ready", folder / f"{name}.log"
    ready.unlink(missing_ok=True)
    return ready, log


async def _wait_ready(name: str, process: Process, ready: Path, log: Path) -> str:
    with anyio.fail_after(START_TIMEOUT):
        while True:
            url = _ready_url(ready)
            if url is not None:
                return url
            if process.returncode is not None:
                raise AssertionError(f"{name} exited ({process.returncode}) before it was ready:\n{_tail(log)}")
            await anyio.sleep(0.05)


@contextlib.asynccontextmanager
async def started(name: str, args: Sequence[str], *, env: Mapping[str, str], folder: Path) -> AsyncIterator[Running]:
    """Run ``kai-bridge ARGS --ready-file F``; stop it on the way out (SIGTERM, then SIGKILL after 15 s)."""
    ready, log = _fresh_folder(folder, name)
    with log.open("ab") as log_file:
        process = await anyio.open_process(
            [*COMMAND, *args, "--ready-file", str(ready)], env=dict(env), cwd=REPO,
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
        )
    try:
        url = await _wait_ready(name, process, ready, log)
        yield Running(name=name, process=process, url=url, log=log)
    finally:
        await stop_process(process)


@dataclass(frozen=True)
class Sandbox:
    """The standalone sandbox (``kai-bridge sandbox``) as Coze: its URL, a PAT and the admin token."""

    url: str
    pat: str
    admin_token: str
    process: Running

    async def state(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            response = await http.get("/_sandbox/state", headers={"Authorization": f"Bearer {self.admin_token}"})
        response.raise_for_status()
        data: dict[str, Any] = response.json()["data"]
        return data

    async def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        """The conversation's messages as Coze lists them, oldest first (read with the test's own PAT)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            response = await http.post(
                "/v1/conversation/message/list", params={"conversation_id": conversation_id},
                json={"order": "asc", "limit": 50}, headers={"Authorization": f"Bearer {self.pat}"},
            )
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["data"]
        return items


def public_key_files(folder: Path, pems: Sequence[bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"public-{i}.pem" for i in range(len(pems))]
    for path, pem in zip(paths, pems, strict=True):
        path.write_bytes(pem)
    return paths


@contextlib.asynccontextmanager
async def sandbox(folder: Path, *, public_keys: Sequence[bytes] = (), chunk_delay_ms: float = 0,
                  extra: Sequence[str] = ()) -> AsyncIterator[Sandbox]:
    """``kai-bridge sandbox --port 0`` with the JWT app's public keys, a PAT for the test's reads and an admin token."""
    pat, admin = f"pat_{secrets.token_hex(16)}", secrets.token_hex(16)
    args = ["sandbox", "--port", "0", "--pat", pat, "--admin-token", admin, "--chunk-delay-ms", str(chunk_delay_ms)]
    for path in public_key_files(folder, public_keys or [key_pair().public_pem]):
        args += ["--app-id", APP_ID, "--public-key", str(path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_BRIDGE_")}
    async with started("sandbox", [*args, *extra], env=env, folder=folder) as running:
        yield Sandbox(url=running.url, pat=pat, admin_token=admin, process=running)


@dataclass
class ReplicaEnv:
    """What every replica of one test shares: the store, Coze, the webhook tokens, the routes."""

    store_url: str
    coze_url: str | None = None
    credential: str = "jwt"  # "jwt" | "pat" | "sandbox" (each replica's own embedded sandbox)
    pat: str = ""
    key_file: Path | None = None
    verify_token: str = field(default_factory=lambda: secrets.token_hex(16))
    webhook_token: str = field(default_factory=lambda: secrets.token_hex(16))
    routes: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)

    def environment(self, folder: Path, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_BRIDGE_")}
        env.update({
            "KAI_BRIDGE_STORE_URL": self.store_url,
            "KAI_BRIDGE_DATA_DIR": str(folder / "data"),
            "KAI_BRIDGE_LOG_DIR": str(folder / "logs"),
            "KAI_BRIDGE_WEBHOOK_VERIFY_TOKEN": self.verify_token,
            "KAI_BRIDGE_WEBHOOK_TOKEN": self.webhook_token,
            "KAI_BRIDGE_WEBHOOK_ROUTES": json.dumps(self.routes),
            "KAI_BRIDGE_STORE_POOL_MIN": "1",
            "KAI_BRIDGE_STORE_POOL_MAX": "4",
            # As the Kubernetes manifests run them: no MCP sessions, so any replica answers any
            # request, and a client is the same caller on both (here: the loopback door itself).
            "KAI_BRIDGE_MCP_STATELESS": "true",
            "PYTHONPATH": str(REPO),
        })
        if self.credential != "sandbox":
            assert self.coze_url is not None
            env.update({"KAI_BRIDGE_COZE_API_BASE": self.coze_url, "KAI_BRIDGE_COZE_BOT_ID": COFFEE_BOT_ID})
        if self.credential == "jwt":
            assert self.key_file is not None
            env.update({"KAI_BRIDGE_COZE_APP_ID": APP_ID, "KAI_BRIDGE_COZE_KID": key_pair().kid,
                        "KAI_BRIDGE_COZE_PRIVATE_KEY_PATH": str(self.key_file)})
        elif self.credential == "pat":
            env["KAI_BRIDGE_COZE_PAT"] = self.pat
        env.update(self.extra)
        env.update(overrides)
        return env


def private_key_file(folder: Path, pair: KeyPair | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"coze-{(pair or key_pair()).kid[:12]}.pem"
    path.touch(mode=0o600)
    path.write_bytes((pair or key_pair()).private_pem)
    return path


@contextlib.asynccontextmanager
async def replica(name: str, env: ReplicaEnv, folder: Path, **overrides: str) -> AsyncIterator[Running]:
    """One ``kai-bridge serve --port 0`` replica; its URL is its base (without ``/mcp``)."""
    async with started(name, ["serve", "--port", "0"], env=env.environment(folder / name, **overrides),
                       folder=folder / name) as running:
        running.url = running.url.removesuffix("/mcp")
        yield running


@contextlib.asynccontextmanager
async def replicas(env: ReplicaEnv, folder: Path, *names: str) -> AsyncIterator[list[Running]]:
    """Start several replicas at once (they start in parallel); yield them in order."""
    async with contextlib.AsyncExitStack() as stack:
        found: dict[str, Running] = {}

        async def one(name: str) -> None:
            found[name] = await stack.enter_async_context(replica(name, env, folder))

        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(one, name)
        yield [found[name] for name in names]


class ToolFailed(AssertionError):
    """A tool call answered isError."""


@contextlib.asynccontextmanager
async def mcp_client(base_url: str) -> AsyncIterator[ClientSession]:
    """An MCP client (Streamable HTTP) of one replica."""
    async with httpx2.AsyncClient(timeout=60) as http, streamable_http_client(
        f"{base_url}/mcp", http_client=http
    ) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def call_tool(session: ClientSession, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The tool's structured result; ToolFailed (with the tool's message) when it answered isError."""
    result = await session.call_tool(name, arguments)
    text = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
    if result.is_error:
        raise ToolFailed(f"{name} failed: {text}")
    assert result.structured_content is not None, text
    return dict(result.structured_content)
