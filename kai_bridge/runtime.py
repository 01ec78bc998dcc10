"""The composition root: builds every long-lived object from the settings and closes them in reverse.

``open_runtime(settings)`` is the only place that wires the Coze client (real Coze, or the
embedded sandbox when no credentials are set), the store, the knowledge base, the tool
registry with its tools, the conversation service, the upstream KAI MCP servers and the
webhook door (inbox, dispatcher, bot states). Each
long-lived service is declared once in :class:`~kai_bridge.health.Health` with how it is
built, pinged and closed; ``/ready``, ``/health``, ``kai-bridge doctor`` and the metrics read
those declarations. Doors (``serve``, ``stdio``, ``call``...) receive the :class:`Runtime` and
never build these themselves. Tests and benchmarks go through this same root, handing in
:class:`RuntimeParts` where they need to (a shared knowledge base, a transport, a store wrapper).

The root also owns the observability (``runtime.observability``): the Prometheus registry the
tool registry and the Coze client report to (through their own observer protocols), the
optional traces, and the background refresh of the health checks that ``/health`` reads.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio
import httpx

from kai_bridge import __version__
from kai_bridge.config import Settings
from kai_bridge.conversations import ConversationService
from kai_bridge.coze import ChatRequest, CozeClient, EnterMessage, collect_answer
from kai_bridge.health import Health, refreshing
from kai_bridge.knowledge import KnowledgeBase, KnowledgeService
from kai_bridge.observability import Metrics, Observability, Sources, collectors_for, observer_for, open_tracing
from kai_bridge.observability.hub import webhook_dispatch_span
from kai_bridge.sandbox.answers import KnowledgeAnswerer
from kai_bridge.store import PoolOptions, Store, open_store
from kai_bridge.tools import RegistryPluginRunner, ToolRegistry, build_registry
from kai_bridge.upstream import UpstreamManager
from kai_bridge.urls import redact_url
from kai_bridge.webhooks import BotStates, WebhookService, open_webhooks
from kai_bridge.wiring import CozeSession, open_coze_session

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["SEED_QUESTION", "CozeBotAsker", "Runtime", "RuntimeParts", "SandboxInfo", "open_runtime"]

logger = logging.getLogger(__name__)

#: The seed guide's example question: the knowledge check asks it.
SEED_QUESTION: Final = "埃塞俄比亚咖啡特点"
#: Seconds each background health check may take.
HEALTH_TIMEOUT: Final = 5.0


@dataclass(frozen=True, slots=True)
class SandboxInfo:
    """Set when the embedded Coze sandbox is the upstream (no Coze credentials configured)."""

    base_url: str
    bot_id: str | None
    workspace_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeParts:
    """Pieces handed to the root instead of built by it (tests, benchmarks); None = build as usual."""

    knowledge_base: KnowledgeBase | None = None  # an already loaded (immutable) base, shared
    coze_transport: httpx.AsyncBaseTransport | None = None  # the Coze HTTP pool's transport
    wrap_store: Callable[[Store], Store] | None = None  # observe or wrap the opened store
    span_exporter: SpanExporter | None = None  # traces on, into this exporter (the SDK's in-memory one)


@dataclass(frozen=True, slots=True, kw_only=True)
class Runtime:
    settings: Settings
    coze: CozeClient
    bot_id: str | None
    store: Store
    knowledge: KnowledgeService
    registry: ToolRegistry
    conversations: ConversationService
    upstreams: UpstreamManager
    sandbox: SandboxInfo | None
    health: Health
    started_at: float
    observability: Observability
    webhooks: WebhookService


class CozeBotAsker:
    """The knowledge service's ``coze`` backend: asks a Coze bot with the retrieved passages as context."""

    def __init__(self, *, coze: CozeClient, bot_id: str, user_id: str = "kai-bridge-knowledge") -> None:
        self._coze = coze
        self._bot_id = bot_id
        self._user_id = user_id

    async def ask(self, *, question: str, context: str) -> str:
        prompt = (
            "Answer the question using the reference passages below; cite the article ids you used.\n\n"
            f"Reference passages:\n{context}\n\nQuestion: {question}"
        )
        events = self._coze.stream_chat(
            ChatRequest(bot_id=self._bot_id, user_id=self._user_id, messages=[EnterMessage.user(prompt)])
        )
        async with contextlib.aclosing(events):
            poll = await collect_answer(events)
        return poll.answer


async def _ping_coze(session: CozeSession) -> str:
    await session.client.ping()
    return f"authenticated ({session.client.auth.mode})" + (" against the embedded sandbox" if session.sandbox_url
                                                             else "")


async def _ping_store(store: Store) -> str:
    await store.ping()
    return f"{store.kind} reachable"


@contextlib.asynccontextmanager
async def _store(settings: Settings, wrap: Callable[[Store], Store] | None) -> AsyncIterator[Store]:
    pool = PoolOptions(
        min_size=min(settings.store_pool_min, settings.store_pool_max),
        max_size=settings.store_pool_max,
        timeout=settings.store_pool_timeout,
        statement_timeout=settings.store_statement_timeout,
    )
    async with open_store(settings.effective_store_url(), pool=pool) as store:
        yield wrap(store) if wrap is not None else store


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    announce: Callable[[str], None] | None = None,
    parts: RuntimeParts | None = None,
    sandbox_on_demand: bool = False,
    dispatch_events: bool = False,
) -> AsyncIterator[Runtime]:
    """Open everything the doors need; on exit close it all in reverse order.

    ``sandbox_on_demand``: start the embedded sandbox (if it is the upstream) on the first Coze
    request instead of now; one-shot doors that may never talk to Coze (``call``) use it.
    ``dispatch_events``: run the webhook dispatcher (the long-running doors, serve and stdio).
    """
    say = announce or logger.warning
    given = parts or RuntimeParts()
    started = time.time()
    async with contextlib.AsyncExitStack() as stack:
        metrics = Metrics()
        tracing = await stack.enter_async_context(open_tracing(
            otlp_endpoint=settings.otel_exporter_otlp_endpoint, service_name=settings.otel_service_name,
            version=__version__, exporter=given.span_exporter,
        ))
        tool_observer, coze_observer = observer_for(metrics=metrics, tracing=tracing)
        health = Health(stack)
        base = given.knowledge_base if given.knowledge_base is not None else await anyio.to_thread.run_sync(
            lambda: KnowledgeBase.load(cache_dir=settings.data_dir)
        )
        # The sandbox's bots answer from the same (already loaded) knowledge base.
        session = await health.open(
            "coze",
            open_coze_session(settings, announce=say, answerer=KnowledgeAnswerer(base),
                              transport=given.coze_transport, sandbox_on_demand=sandbox_on_demand),
            ping=_ping_coze,
            # Coze is outside: when it is down the knowledge and upstream tools still work, and
            # every replica going unready at once would turn tool errors into the ingress's 503s.
            critical=False,
        )
        session.client.observe(coze_observer)
        store = await health.open("store", _store(settings, given.wrap_store), ping=_ping_store)
        knowledge_bot = settings.knowledge_bot_id or (session.bot_id if settings.knowledge_backend != "local" else None)
        asker = CozeBotAsker(coze=session.client, bot_id=knowledge_bot) if knowledge_bot else None
        knowledge = KnowledgeService(
            base=base, backend=settings.knowledge_backend if asker else "local", asker=asker
        )
        if settings.knowledge_backend != "local" and asker is None:
            say(f"knowledge_backend={settings.knowledge_backend} needs knowledge_bot_id or coze_bot_id; using local")

        async def ping_knowledge() -> str:
            # The local base, whatever the backend: readiness must not start a Coze chat.
            answer = base.query(SEED_QUESTION, top_k=1)
            top = answer.passages[0].article_id if answer.passages else "nothing"
            return f"{base.article_count} articles; '{SEED_QUESTION}' -> {top}"

        health.declare("knowledge", ping=ping_knowledge)
        registry = ToolRegistry(default_timeout=settings.tool_timeout, observer=tool_observer)
        conversations = ConversationService(
            coze=session.client,
            store=store,
            plugins=RegistryPluginRunner(registry),
            lease=settings.conversation_lease,
            default_bot_id=session.bot_id or "",
            max_rounds=settings.requires_action_max_rounds,
            chat_timeout=settings.coze_chat_timeout,
        )
        bots = BotStates(store=store)
        build_registry(knowledge=knowledge, conversations=conversations, registry=registry, bot_guard=bots,
                       shared_user_ids=settings.conversations_shared_user_ids)
        upstreams = await health.open("upstreams", UpstreamManager(configs=settings.upstreams, registry=registry))
        for upstream in settings.upstreams:

            async def ping_upstream(name: str = upstream.name) -> str:
                return await upstreams.ping(name)

            # An upstream down leaves the bridge degraded, not unready, unless it is marked required.
            health.declare(f"upstream {upstream.name}", ping=ping_upstream, critical=upstream.required)
        webhooks = await stack.enter_async_context(
            open_webhooks(settings=settings, store=store, registry=registry, bots=bots, dispatch=dispatch_events,
                          dispatch_span=functools.partial(webhook_dispatch_span, tracing))
        )
        inbox_depth: dict[str, int] = {}

        async def ping_inbox() -> str:
            # The inbox depth by status, kept for the metrics scrape (which must not query the store).
            counts = await webhooks.inbox.counts()
            inbox_depth.clear()
            inbox_depth.update(counts)
            return ", ".join(f"{status} {n}" for status, n in sorted(counts.items())) or "empty"

        health.declare("webhook inbox", ping=ping_inbox, critical=False)
        metrics.watch_inbox(lambda: dict(inbox_depth))
        sandbox = (
            SandboxInfo(base_url=session.sandbox_url, bot_id=session.bot_id, workspace_id=session.workspace_id)
            if session.sandbox_url
            else None
        )
        logger.info(
            "runtime ready: coze=%s store=%s knowledge=%d articles (%s) tools=%d upstreams=%d",
            "sandbox " + session.sandbox_url if session.sandbox_url else redact_url(settings.coze_api_base),
            store.kind,
            base.article_count,
            knowledge.backend,
            len(registry.list()),
            len(settings.upstreams),
        )
        # Everything built so far lives as long as the runtime (the knowledge index alone is
        # ~150k objects): frozen, it is no longer re-scanned by every collection that per-call
        # garbage triggers (measured on a new coffee question: 0.72 -> 0.52 ms).
        sources = Sources(
            version=__version__, mode="sandbox" if session.sandbox_url else "live", started_at=started,
            health=health, coze=session.client, upstreams=upstreams, registry=registry, store_kind=store.kind,
        )
        metrics.watch(collectors_for(sources, metrics))
        stack.callback(metrics.close)
        await stack.enter_async_context(refreshing(health, interval=settings.health_check_interval,
                                                   timeout=HEALTH_TIMEOUT))
        gc.collect()
        gc.freeze()
        stack.callback(gc.unfreeze)
        yield Runtime(
            settings=settings,
            coze=session.client,
            bot_id=session.bot_id,
            store=store,
            knowledge=knowledge,
            registry=registry,
            conversations=conversations,
            upstreams=upstreams,
            sandbox=sandbox,
            health=health,
            started_at=started,
            observability=Observability(metrics=metrics, tracing=tracing, sources=sources),
            webhooks=webhooks,
        )
