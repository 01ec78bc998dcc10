"""A real bridge for tests, opened by the real composition root (``kai_bridge.runtime.open_runtime``).

Nothing here is a fake and nothing is wired by hand: the sandbox runs on a socket with a key
pair generated at test time, and the root is pointed at it through the settings, exactly as
it would be pointed at Coze (JWT OAuth, ``coze_api_base`` = the sandbox). The store is SQLite
in the test's directory; the shipped knowledge base is loaded once per session and handed to
the root (:class:`~kai_bridge.runtime.RuntimeParts`), since it is immutable.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import httpx

from kai_bridge.config import Settings, load_settings
from kai_bridge.coze import CozeClient
from kai_bridge.coze.auth import JWTAuth
from kai_bridge.keys import KeyPair, generate_key_pair, load_private_key
from kai_bridge.knowledge import KnowledgeBase, KnowledgeService
from kai_bridge.runtime import Runtime, RuntimeParts, open_runtime
from kai_bridge.sandbox import COFFEE_BOT_ID, KnowledgeAnswerer, SandboxConfig, SandboxHandle, start_sandbox
from kai_bridge.store import Store

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

APP_ID = "kai-bridge-tests"

_BASE: KnowledgeBase | None = None
_ANSWERER = KnowledgeAnswerer()  # loads the base once, on first use, for every sandbox of the session
_PAIR: KeyPair | None = None


def key_pair() -> KeyPair:
    """A key pair generated at test time, once per session (RSA generation is slow)."""
    global _PAIR
    if _PAIR is None:
        _PAIR = generate_key_pair()
    return _PAIR


def knowledge_base() -> KnowledgeBase:
    """The shipped knowledge base, loaded once per test session (it is immutable)."""
    global _BASE
    if _BASE is None:
        _BASE = KnowledgeBase.load()
    return _BASE


def knowledge_service() -> KnowledgeService:
    return KnowledgeService(base=knowledge_base(), backend="local", asker=None)


@contextlib.asynccontextmanager
async def running_sandbox(config: SandboxConfig | None = None, **options: Any) -> AsyncIterator[
    tuple[SandboxHandle, CozeClient]
]:
    """A sandbox with the test key registered, and a Coze client of the test's own (to look upstream)."""
    pair = key_pair()
    cfg = config or SandboxConfig(apps=[(APP_ID, pair.public_pem)], follow_up=False, **options)
    async with start_sandbox(cfg, answerer=_ANSWERER) as handle, httpx.AsyncClient(timeout=30) as http:
        auth = JWTAuth(
            http=http,
            base_url=handle.base_url,
            app_id=APP_ID,
            kid=pair.kid,
            private_key=load_private_key(pair.private_pem, source="test key"),
        )
        yield handle, CozeClient(http=http, base_url=handle.base_url, auth=auth, bot_id=COFFEE_BOT_ID)


def bridge_settings(*, sandbox: SandboxHandle, db_path: Path, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Settings that point the root at ``sandbox`` as if it were Coze (JWT OAuth with the test key)."""
    pair = key_pair()
    values: dict[str, Any] = {
        "coze_api_base": sandbox.base_url,
        "coze_app_id": APP_ID,
        "coze_kid": pair.kid,
        "coze_private_key": pair.private_pem.decode(),
        "coze_bot_id": COFFEE_BOT_ID,
        "coze_workspace_id": sandbox.workspace_id,
        "store_url": f"sqlite:///{db_path}",
        "data_dir": db_path.parent,
        "log_dir": db_path.parent,
        "requires_action_max_rounds": 3,
        "coze_chat_timeout": 30.0,
        **(overrides or {}),
    }
    return load_settings(environ={}, overrides=values)


@contextlib.asynccontextmanager
async def open_bridge(
    *,
    sandbox: SandboxHandle,
    db_path: Path,
    settings_overrides: Mapping[str, Any] | None = None,
    plugin_tools: bool = True,
    wrap_store: Callable[[Store], Store] | None = None,
    span_exporter: SpanExporter | None = None,
) -> AsyncIterator[Runtime]:
    """The runtime over ``sandbox`` with SQLite at ``db_path``; ``plugin_tools=False`` leaves out the coffee tool;
    ``span_exporter`` turns traces on into it."""
    settings = bridge_settings(sandbox=sandbox, db_path=db_path, overrides=settings_overrides)
    parts = RuntimeParts(knowledge_base=knowledge_base(), wrap_store=wrap_store, span_exporter=span_exporter)
    async with open_runtime(settings, announce=lambda _: None, parts=parts) as runtime:
        if not plugin_tools:
            runtime.registry.remove("coffee_knowledge_query")
        yield runtime


@contextlib.asynccontextmanager
async def open_embedded(*, db_path: Path, settings_overrides: Mapping[str, Any] | None = None) -> AsyncIterator[Runtime]:
    """The runtime as a new user gets it: no Coze credentials, so the root starts the embedded sandbox."""
    values: dict[str, Any] = {
        "store_url": f"sqlite:///{db_path}",
        "data_dir": db_path.parent,
        "log_dir": db_path.parent,
        **(settings_overrides or {}),
    }
    settings = load_settings(environ={}, overrides=values)
    parts = RuntimeParts(knowledge_base=knowledge_base())
    async with open_runtime(settings, announce=lambda _: None, parts=parts) as runtime:
        yield runtime


def concat(parts: Sequence[str]) -> str:
    return "".join(parts)


async def stop_process(process: anyio.abc.Process, *, grace: float = 15) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; wait for the end (even when cancelled) and close the pipes."""
    if process.returncode is None:
        process.terminate()
        with anyio.move_on_after(grace):
            await process.wait()
        if process.returncode is None:
            process.kill()
    with anyio.CancelScope(shield=True):
        await process.wait()
    await process.aclose()
