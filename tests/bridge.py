"""A real bridge for tests: the sandbox on a socket, the Coze client with JWT, SQLite, the knowledge base.

Nothing here is a fake: the Coze upstream is the sandbox speaking the real wire, the store
is SQLite in a temporary directory, the knowledge base is the shipped one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from kai_bridge.config import Settings, load_settings
from kai_bridge.conversations import ConversationService
from kai_bridge.coze import CozeClient
from kai_bridge.coze.auth import JWTAuth
from kai_bridge.keys import KeyPair, generate_key_pair, load_private_key
from kai_bridge.knowledge import KnowledgeBase, KnowledgeService
from kai_bridge.sandbox import COFFEE_BOT_ID, KnowledgeAnswerer, SandboxConfig, SandboxHandle, start_sandbox
from kai_bridge.store import Store, open_store
from kai_bridge.tools import ToolRegistry, build_registry

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
    """A sandbox with a freshly generated key pair registered, and a Coze client using it."""
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


@dataclass
class Bridge:
    """The pieces a door needs, shaped like ``kai_bridge.runtime.Runtime``."""

    settings: Settings
    registry: ToolRegistry
    coze: CozeClient
    store: Store
    knowledge: KnowledgeService
    conversations: ConversationService
    sandbox: SandboxHandle | None
    upstreams: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def open_bridge(
    *,
    coze: CozeClient,
    sandbox: SandboxHandle | None,
    db_path: Path,
    bot_id: str = COFFEE_BOT_ID,
    max_rounds: int = 3,
    chat_timeout: float = 30.0,
    settings_overrides: dict[str, Any] | None = None,
    plugin_tools: bool = True,
    store_wrapper: Any = None,
) -> AsyncIterator[Bridge]:
    """A bridge over ``coze`` with SQLite at ``db_path``. ``plugin_tools=False`` leaves out the coffee tool."""
    settings = load_settings(
        environ={},
        overrides={"store_url": f"sqlite:///{db_path}", "data_dir": db_path.parent, "log_dir": db_path.parent,
                   **(settings_overrides or {})},
        check_files=False,
    )
    async with open_store(settings.effective_store_url()) as raw_store:
        store = store_wrapper(raw_store) if store_wrapper is not None else raw_store
        registry = ToolRegistry(default_timeout=settings.tool_timeout)
        service = ConversationService(
            coze=coze, store=store, registry=registry, default_bot_id=bot_id, max_rounds=max_rounds,
            chat_timeout=chat_timeout,
        )
        knowledge = knowledge_service()
        build_registry(knowledge=knowledge, conversations=service)
        if not plugin_tools:
            registry.remove("coffee_knowledge_query")
        yield Bridge(settings=settings, registry=registry, coze=coze, store=store, knowledge=knowledge,
                     conversations=service, sandbox=sandbox)


def concat(parts: Sequence[str]) -> str:
    return "".join(parts)
