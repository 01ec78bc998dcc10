"""Choosing who answers a coffee question: the local base, a Coze bot, or local-then-Coze.

- ``local``: the embedded base alone (offline, sub-millisecond).
- ``coze``: retrieve locally, hand the passages to a Coze bot as context, return the bot's
  reply as the answer; passages, figures and sources stay those retrieved locally.
- ``auto``: local first; the bot only when it is configured and the local base found nothing
  good. A failing bot then degrades to the local answer instead of failing the tool.
"""

from __future__ import annotations

import logging
from typing import Literal, Protocol

from kai_bridge.errors import ConfigError, CozeError, KaiBridgeError
from kai_bridge.knowledge.base import KnowledgeBase
from kai_bridge.knowledge.models import KnowledgeAnswer
from kai_bridge.knowledge.text import Language

__all__ = ["Backend", "CozeAsker", "KnowledgeService", "build_context"]

log = logging.getLogger(__name__)

Backend = Literal["local", "coze", "auto"]

# Context handed to the bot is capped: it rides in a chat message.
MAX_CONTEXT_CHARS = 4000


class CozeAsker(Protocol):
    """Asks a Coze bot one question with retrieved context; returns the bot's reply text."""

    async def ask(self, *, question: str, context: str) -> str: ...


def build_context(answer: KnowledgeAnswer) -> str:
    """The retrieved passages and figures as plain text for the bot, sources labelled."""
    parts: list[str] = []
    if answer.found:
        parts.append(answer.answer)
    for passage in answer.passages:
        parts.append(f"[{passage.article_id}] {passage.title}: {passage.snippet}")
    for figure in answer.figures:
        parts.append(f"[{figure.source}] {figure.summary}")
    text = "\n".join(parts)
    return text if len(text) <= MAX_CONTEXT_CHARS else text[: MAX_CONTEXT_CHARS - 1] + "…"


class KnowledgeService:
    """The knowledge tool's backend; ``query`` has the same shape as :meth:`KnowledgeBase.query`."""

    def __init__(self, *, base: KnowledgeBase, backend: Backend, asker: CozeAsker | None) -> None:
        if backend not in ("local", "coze", "auto"):
            raise ConfigError(f"knowledge_backend must be local, coze or auto, not {backend!r}")
        if backend == "coze" and asker is None:
            raise ConfigError(
                "knowledge_backend=coze needs a Coze bot: set knowledge_bot_id and Coze credentials, "
                "or use knowledge_backend=local or auto"
            )
        self._base = base
        self._backend: Backend = backend
        self._asker = asker

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def base(self) -> KnowledgeBase:
        return self._base

    async def query(self, query: str, *, top_k: int = 3, language: Language | None = None) -> KnowledgeAnswer:
        local = self._base.query(query, top_k=top_k, language=language)
        if self._asker is None or self._backend == "local":
            return local
        if self._backend == "auto" and local.found:
            return local
        try:
            reply = await self._asker.ask(question=local.query, context=build_context(local))
        except KaiBridgeError as exc:
            if self._backend == "coze":
                raise
            log.warning("knowledge: the Coze bot failed (%s); answering from the local base", exc)
            return local
        reply = reply.strip()
        if not reply:
            if self._backend == "coze":
                raise CozeError("the Coze knowledge bot returned an empty answer; try again or use the local backend")
            return local
        return local.model_copy(update={"answer": reply, "backend": "coze"})
