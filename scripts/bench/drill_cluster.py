"""Real processes for the fault drills: the sandbox as Coze, ``kai-bridge serve`` replicas on PostgreSQL.

Everything is started as a subprocess (``python -m kai_bridge.cli ...``) on 127.0.0.1, port 0,
configured by environment, with a key pair generated for the run and a PostgreSQL schema of
the run's own (dropped afterwards). Used by ``bench_drills.py``.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import math
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import anyio
import anyio.abc
import httpx
import psycopg
from bench_acceptance import mcp_sessions as acceptance_sessions
from mcp import ClientSession

from kai_bridge.keys import KeyPair
from tests.bridge import stop_process  # (on the path: bench_acceptance puts the repository there)

REPO = Path(__file__).resolve().parents[2]
PG_HOST = "127.0.0.1:5432"
PG_DB = "test"
APP_ID = "drills-bridge"
BOT_ID = "7390000000000000001"  # the sandbox's Coffee Expert
START_TIMEOUT = 90.0


# ---- PostgreSQL --------------------------------------------------------------------------------
def pg_base_url() -> str:
    """``postgresql://USER@127.0.0.1:5432/test`` for the first user the local server trusts."""
    errors: list[str] = []
    for user in ("postgres", getpass.getuser()):
        url = f"postgresql://{user}@{PG_HOST}/{PG_DB}"
        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return url
        except psycopg.Error as exc:
            errors.append(f"{user}: {str(exc).strip().splitlines()[0]}")
    raise SystemExit(f"PostgreSQL at {PG_HOST} db {PG_DB} is not reachable ({'; '.join(errors)})")


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A store URL whose tables land in a schema of this run's own, dropped afterwards."""
    base = pg_base_url()
    schema = f"kb_drills_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{base}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# ---- processes ---------------------------------------------------------------------------------
def rss_mib(pid: int) -> float:
    """Resident set size of a process in MiB (Linux /proc); NaN once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return math.nan


@dataclass
class Proc:
    """A started process: its base URL, log file and the seconds it took from spawn to ready."""

    name: str
    process: anyio.abc.Process
    url: str
    log: Path
    ready_s: float
    rss_peak: float = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid

    def sample_rss(self) -> float:
        rss = rss_mib(self.pid)
        if not math.isnan(rss):
            self.rss_peak = max(self.rss_peak, rss)
        return rss


def _ready_url(path: Path, *, whole: bool) -> str | None:
    """The URL in a ready file; with ``whole`` only once it ends with a newline (written whole)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return text.strip() if text.strip() and (text.endswith("\n") or not whole) else None


def _fresh(folder: Path, name: str) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ready, log = folder / f"{name}.ready", folder / f"{name}.log"
    ready.unlink(missing_ok=True)
    return ready, log


@contextlib.asynccontextmanager
async def started(
    name: str, args: Sequence[str], env: dict[str, str], folder: Path, *, ready_flag: bool = True
) -> AsyncIterator[Proc]:
    """``ARGS --ready-file F`` (without ``ready_flag``: ARGS name F themselves, the last one); wait for F.

    The process is stopped on the way out (SIGTERM, then SIGKILL after 15 s).
    """
    ready, log = _fresh(folder, name)
    began = time.perf_counter()
    command = [*args, "--ready-file", str(ready)] if ready_flag else [*args, str(ready)]
    with log.open("ab") as sink:
        process = await anyio.open_process(
            command, env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        with anyio.fail_after(START_TIMEOUT):
            while (url := _ready_url(ready, whole=ready_flag)) is None:
                if process.returncode is not None:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{name} exited with {process.returncode} before it was ready:\n{tail}")
                await anyio.sleep(0.02)
        yield Proc(name, process, url.removesuffix("/mcp"), log, time.perf_counter() - began)
    finally:
        await stop_process(process)


def base_env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAI_BRIDGE_")}
    env.update(
        {
            "KAI_BRIDGE_DATA_DIR": str(folder / "data"),
            "KAI_BRIDGE_LOG_DIR": str(folder / "logs"),
            "PYTHONPATH": str(REPO),
        }
    )
    return env


@dataclass(frozen=True)
class Sandbox:
    url: str
    admin_token: str
    proc: Proc

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    async def faults(self, rules: list[dict[str, Any]] | None) -> None:
        """Replace the fault rules (None: clear them)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=10, headers=self.admin) as http:
            if rules is None:
                response = await http.delete("/_sandbox/faults")
            else:
                response = await http.post("/_sandbox/faults", params={"replace": "true"}, json={"rules": rules})
        response.raise_for_status()

    async def get(self, path: str) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url, timeout=30, headers=self.admin) as http:
            response = await http.get(path)
        response.raise_for_status()
        return cast(dict[str, Any], response.json()["data"])


@contextlib.asynccontextmanager
async def sandbox(folder: Path, pair: KeyPair, *, python: str, seed: int) -> AsyncIterator[Sandbox]:
    admin = secrets.token_hex(16)
    (folder / "sandbox").mkdir(parents=True, exist_ok=True)
    public = folder / "sandbox" / "app.pub"
    public.write_bytes(pair.public_pem)
    args = [
        python,
        "-m",
        "kai_bridge.cli",
        "sandbox",
        "--port",
        "0",
        "--chunk-delay-ms",
        "0",
        "--admin-token",
        admin,
        "--seed",
        str(seed),
        "--app-id",
        APP_ID,
        "--public-key",
        str(public),
    ]
    async with started("sandbox", args, base_env(folder / "sandbox"), folder / "sandbox") as proc:
        yield Sandbox(proc.url, admin, proc)


@dataclass
class ReplicaConfig:
    """What the replicas share: the store, Coze, the webhook tokens and routes, the drill's settings."""

    store_url: str
    coze_url: str
    kid: str
    key_file: Path
    routes: list[dict[str, Any]]
    settings: dict[str, str]
    verify_token: str = field(default_factory=lambda: secrets.token_hex(16))
    webhook_token: str = field(default_factory=lambda: secrets.token_hex(16))

    def env(self, folder: Path) -> dict[str, str]:
        env = base_env(folder)
        env.update(
            {
                "KAI_BRIDGE_STORE_URL": self.store_url,
                "KAI_BRIDGE_COZE_API_BASE": self.coze_url,
                "KAI_BRIDGE_COZE_APP_ID": APP_ID,
                "KAI_BRIDGE_COZE_KID": self.kid,
                "KAI_BRIDGE_COZE_PRIVATE_KEY_PATH": str(self.key_file),
                "KAI_BRIDGE_COZE_BOT_ID": BOT_ID,
                "KAI_BRIDGE_WEBHOOK_VERIFY_TOKEN": self.verify_token,
                "KAI_BRIDGE_WEBHOOK_TOKEN": self.webhook_token,
                "KAI_BRIDGE_WEBHOOK_ROUTES": json.dumps(self.routes),
                # As the Kubernetes manifests run them: any replica answers any request.
                "KAI_BRIDGE_MCP_STATELESS": "true",
                # One load generator is one caller: measure, do not throttle.
                "KAI_BRIDGE_MCP_RATE_LIMIT_PER_MINUTE": "0",
            }
        )
        env.update(self.settings)
        return env


@contextlib.asynccontextmanager
async def replicas(
    config: ReplicaConfig, folder: Path, names: Sequence[str], *, python: str
) -> AsyncIterator[list[Proc]]:
    """Start the replicas at once (in parallel, as a rollout would); yield them in order."""
    async with contextlib.AsyncExitStack() as stack:
        found: dict[str, Proc] = {}

        async def one(name: str) -> None:
            args = [python, "-m", "kai_bridge.cli", "serve", "--port", "0"]
            found[name] = await stack.enter_async_context(started(name, args, config.env(folder / name), folder / name))

        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(one, name)
        yield [found[name] for name in names]


# ---- clients -----------------------------------------------------------------------------------
def mcp_sessions(base_url: str, count: int) -> contextlib.AbstractAsyncContextManager[list[ClientSession]]:
    """``count`` independent MCP clients (own HTTP client, own session) of one replica."""
    return acceptance_sessions(f"{base_url}/mcp", count, http_timeout=120)


def sign(body: bytes, verify_token: str) -> dict[str, str]:
    """Coze's callback headers for ``body`` (SHA-1 over timestamp + nonce + token + body)."""
    ts, nonce = str(int(time.time() * 1000)), secrets.token_hex(8)
    signature = hashlib.sha1((ts + nonce + verify_token).encode() + body, usedforsecurity=False).hexdigest()
    return {
        "X-Coze-Signature": signature,
        "X-Coze-Timestamp": ts,
        "X-Coze-Nonce": nonce,
        "Content-Type": "application/json",
    }


def event_body(event_id: str, bot_id: str) -> bytes:
    header = {
        "event_type": "bot.published",
        "event_id": event_id,
        "created_at": int(time.time() * 1000),
        "coze_account_id": "7390000000000000300",
        "api_app_id": "7390000000000009999",
        "connector_id": "1024",
    }
    return json.dumps({"header": header, "event": {"bot_id": bot_id, "bot_name": f"bot {bot_id[-4:]}"}}).encode()
