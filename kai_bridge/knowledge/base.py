"""KnowledgeBase: the shipped articles + CQI table + index, loaded once and queried many times."""

from __future__ import annotations

import logging
import time
from importlib.resources.abc import Traversable
from pathlib import Path

from kai_bridge.errors import KnowledgeError
from kai_bridge.knowledge.answer import ANSWER_ARTICLES, compose
from kai_bridge.knowledge.corpus import Article, load_articles, shipped_corpus
from kai_bridge.knowledge.cqi import CqiTable
from kai_bridge.knowledge.facts import name_text, question_kinds, strip_scaffolding
from kai_bridge.knowledge.index import Index
from kai_bridge.knowledge.models import KnowledgeAnswer
from kai_bridge.knowledge.prebuilt import load_index
from kai_bridge.knowledge.text import Language, detect_language, to_simplified

__all__ = ["MAX_QUERY_CHARS", "MAX_TOP_K", "KnowledgeBase"]

log = logging.getLogger(__name__)

# Only the start of a very long question is analysed: it bounds the cost of a query, and a
# question longer than this is a pasted document, not a question.
MAX_QUERY_CHARS = 1000
MAX_TOP_K = 10


class KnowledgeBase:
    """Offline coffee knowledge in Chinese and English. Immutable once loaded; share freely."""

    def __init__(self, *, articles: list[Article], cqi: CqiTable, index: Index | None = None) -> None:
        self._index = index if index is not None else Index(articles)
        self._cqi = cqi
        for article in articles:
            for kind, key in (("country", article.cqi_country), ("process", article.cqi_process)):
                if key and not cqi.has(kind=kind, key=key):  # type: ignore[arg-type]
                    log.warning("article %s names CQI %s %r, which the CQI table lacks", article.id, kind, key)

    @classmethod
    def load(cls, *, corpus_dir: Path | None = None, cache_dir: Path | None = None) -> KnowledgeBase:
        """Load the shipped corpus (default) or the articles under ``corpus_dir``.

        ``cache_dir``: where the prebuilt index is kept (see :mod:`prebuilt`; the runtime
        passes its data directory): loaded from there when it matches the corpus, else built
        and saved there. ``None`` builds the index in memory.
        """
        started = time.perf_counter()
        root: Traversable | Path = shipped_corpus() if corpus_dir is None else corpus_dir
        articles, index = load_index(corpus=root, cache_dir=cache_dir, read_articles=lambda: load_articles(root))
        base = cls(articles=articles, cqi=CqiTable.load_shipped(), index=index)
        log.info(
            "knowledge base loaded: %d articles in %.0f ms", base.article_count, (time.perf_counter() - started) * 1000
        )
        return base

    @property
    def article_count(self) -> int:
        return self._index.size

    @property
    def articles(self) -> list[Article]:
        """The loaded articles, sorted by id (for listing them, e.g. as MCP resources)."""
        return list(self._index.articles)

    @property
    def index(self) -> Index:
        return self._index

    @property
    def cqi(self) -> CqiTable:
        return self._cqi

    def article_ids(self) -> list[str]:
        return [a.id for a in self._index.articles]

    def query(self, query: str, *, top_k: int = 3, language: Language | None = None) -> KnowledgeAnswer:
        """Answer ``query`` from the base. Never raises for odd input except an empty question."""
        text = query.strip()
        if not text:
            raise KnowledgeError("the question is empty: ask about coffee, e.g. '埃塞俄比亚咖啡特点'")
        if language not in (None, "zh", "en"):
            raise KnowledgeError(f"language must be 'zh' or 'en', not {language!r}")
        analysed = text[:MAX_QUERY_CHARS]
        lang: Language = language or detect_language(analysed)
        top_k = max(1, min(MAX_TOP_K, top_k))
        # Traditional characters folded first, so 多長時間 asks a duration like 多长时间.
        folded = to_simplified(analysed)
        kinds, primary = question_kinds(folded)
        # Names are looked for in the question as written but for a complaint's "taste" (facts.name_text).
        plan = self._index.plan(
            name_text(analysed, kinds=kinds), analysed=strip_scaffolding(folded, kinds=kinds, primary=primary)
        )
        hits = self._index.search(plan, limit=max(top_k, ANSWER_ARTICLES))
        return compose(
            query=text,
            kinds=kinds,
            primary=primary,
            plan=plan,
            hits=hits,
            index=self._index,
            cqi=self._cqi,
            language=lang,
            top_k=top_k,
        )
