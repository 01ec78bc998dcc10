"""Turning ranked hits into a :class:`KnowledgeAnswer`: sentences, snippets, CQI figures, sources.

Answers are extractive on purpose: every sentence comes from a shipped article, so the answer
is exactly as right as the corpus and always traceable to its sources.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from kai_bridge.knowledge.corpus import CATEGORIES, Article
from kai_bridge.knowledge.cqi import CqiKey, CqiTable
from kai_bridge.knowledge.index import Hit, Index, QueryPlan
from kai_bridge.knowledge.models import CqiFigure, KnowledgeAnswer, Passage
from kai_bridge.knowledge.text import Language, has_cjk, sentences, terms

__all__ = ["SentenceCache", "compose"]

# Origins named as examples when nothing is found (the best known ones, if present).
_EXAMPLE_ORIGINS = ("origin-ethiopia", "origin-kenya", "origin-colombia", "origin-brazil", "origin-yunnan-china")
# A hit lower than this share of the best one is noise, not a related article.
RELATIVE_CUTOFF = 0.15
MAX_FIGURES = 3
ANSWER_SENTENCES = 2
SNIPPET_CHARS = {"zh": 120, "en": 280}
ANSWER_CHARS = {"zh": 220, "en": 520}

# Asking "what is it like": favour sentences about taste (特点 -> 风味/口感 sentences).
_PROFILE_ZH = ("特点", "特色", "特征", "风味", "口感", "味道", "起来", "怎么样", "好喝")
_PROFILE_EN = frozenset(terms("characteristic characteristics profile flavor flavour taste tastes like"))
_PROFILE_SENTENCE = frozenset(
    terms(
        "风味 口感 香气 酸质 酸度 醇厚 甜感 花香 果香 余韵 茉莉 柑橘 浆果 巧克力 "
        "flavor flavour notes aroma acidity body sweetness floral fruity jasmine citrus berry chocolate"
    )
)
# Asking for a quantity: favour sentences that carry one.
_NUMERIC_QUERY = re.compile(
    r"多久|多长|多少|几分钟|几天|几度|比例|温度|how long|how much|how many|how hot|ratio|temperature", re.IGNORECASE
)
_NUMERIC_SENTENCE = re.compile(
    r"\d|分钟|小时|秒|minute|second|hour|\b(?:one|two|three|four|five|six|seven|eight|nine|ten)\b", re.IGNORECASE
)
# Words that make a bare country or process name a coffee question ("中国股市" is not).
_COFFEE_CONTEXT = frozenset(
    terms("咖啡 咖啡豆 生豆 杯测 评分 产区 精品 coffee bean cupping score grade specialty arabica robusta")
)


@dataclass(frozen=True, slots=True)
class _Sentence:
    text: str
    terms: frozenset[str]
    position: int
    numeric: bool  # carries a figure: a number, a duration, a temperature


class SentenceCache:
    """Articles split into sentences once, on first use."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], list[_Sentence]] = {}

    def get(self, article: Article, language: str) -> list[_Sentence]:
        key = (article.id, language)
        found = self._cache.get(key)
        if found is None:
            found = [
                _Sentence(text, frozenset(terms(text)), i, _NUMERIC_SENTENCE.search(text) is not None)
                for i, text in enumerate(sentences(article.body(language)))
            ]
            self._cache[key] = found
        return found


@dataclass(frozen=True, slots=True)
class _Wanted:
    """What makes a sentence relevant to this query: its terms' weights, plus a bonus for
    taste sentences when it asks what something is like, and for sentences with figures
    when it asks how long / how much."""

    items: tuple[tuple[str, float], ...]
    profile: bool
    numeric: bool

    @classmethod
    def of(cls, plan: QueryPlan, index: Index) -> _Wanted:
        wanted = {t: w * index.idf.get(t, 0.0) for t, w in plan.weights.items()}
        for t, w in plan.expansion.items():
            wanted.setdefault(t, w * index.idf.get(t, 0.0))
        profile = any(word in plan.text for word in _PROFILE_ZH) or bool(_PROFILE_EN & plan.weights.keys())
        numeric = _NUMERIC_QUERY.search(plan.text) is not None
        # Negligible weights (common characters) cannot change a choice; skip them.
        return cls(tuple((t, w) for t, w in wanted.items() if w >= 0.05), profile, numeric)

    def rank(self, sents: list[_Sentence]) -> list[_Sentence]:
        def score(s: _Sentence) -> float:
            value = sum(w for t, w in self.items if t in s.terms)
            if self.profile:
                value += 2.0 * len(_PROFILE_SENTENCE & s.terms)
            if self.numeric and s.numeric:
                value += 2.0
            # The lead sentence usually defines the subject: a small tie-breaking preference.
            return value + (0.5 if s.position == 0 else 0.0)

        return sorted(sents, key=lambda s: (-score(s), s.position))


def _pick(ranked: list[_Sentence], *, count: int, max_chars: int) -> list[_Sentence]:
    """The best ``count`` sentences within ``max_chars`` (the best one always), in text order."""
    chosen: list[_Sentence] = []
    used = 0
    for sentence in ranked:
        if len(chosen) >= count:
            break
        if chosen and used + len(sentence.text) > max_chars:
            continue
        chosen.append(sentence)
        used += len(sentence.text)
    return sorted(chosen, key=lambda s: s.position)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _join(parts: Sequence[str], language: str) -> str:
    return ("" if language == "zh" else " ").join(parts)


def _direct_cqi(plan: QueryPlan, cqi: CqiTable, *, answered: bool) -> list[CqiKey]:
    """Countries / processes named in the query, when the query is about coffee: it found
    articles, says "coffee", or is little more than the name itself."""
    hits = cqi.matcher.find(plan.units)
    if not hits:
        return []
    content_units = [u for u in plan.units if has_cjk(u) or u.isalnum()]
    named = sum(h.end - h.start for h in hits)
    about_coffee = answered or bool(_COFFEE_CONTEXT & plan.weights.keys())
    if not about_coffee and named < 0.6 * max(1, len(content_units)):
        return []
    keys: list[CqiKey] = []
    for hit in hits:
        keys.extend(sorted(hit.payloads, key=lambda k: (k.kind, k.key)))
    return keys


def _figures(
    *, plan: QueryPlan, passages: list[tuple[Hit, Article]], cqi: CqiTable, language: Language
) -> list[CqiFigure]:
    keys: list[CqiKey] = []
    for rank, (hit, article) in enumerate(passages):
        # The top article always speaks for itself; others only when the query named them.
        if rank == 0 or hit.alias:
            if article.cqi_country:
                keys.append(CqiKey("country", article.cqi_country))
            if article.cqi_process:
                keys.append(CqiKey("process", article.cqi_process))
    keys.extend(_direct_cqi(plan, cqi, answered=bool(passages)))
    figures: list[CqiFigure] = []
    seen: set[CqiKey] = set()
    for key in keys:
        if key in seen:
            continue
        seen.add(key)
        figure = cqi.figure(kind=key.kind, key=key.key, language=language)
        if figure is not None:
            figures.append(figure)
    return figures[:MAX_FIGURES]


def _coverage_answer(query: str, *, index: Index, language: Language) -> str:
    present = {a.category for a in index.articles}
    topics = [names for cat, names in CATEGORIES.items() if cat in present]
    by_id = {a.id: a for a in index.articles}
    origins = [by_id[i] for i in _EXAMPLE_ORIGINS if i in by_id] or [
        a for a in index.articles if a.category == "origin"
    ][:5]
    if language == "zh":
        listed = "、".join(zh for zh, _ in topics)
        examples = "、".join(a.title_zh for a in origins)
        return (
            f"咖啡知识库里没有找到与“{_clip(query, 40)}”相关的内容。"
            f"这里能回答的咖啡话题有：{listed}"
            + (f"（产地如{examples}等）" if examples else "")
            + "，以及 Coffee Quality Institute 杯测评分统计。可以这样问：“埃塞俄比亚咖啡特点”“手冲咖啡的水温”。"
        )
    listed = ", ".join(en for _, en in topics)
    examples = ", ".join(a.title_en for a in origins)
    return (
        f'The coffee knowledge base has nothing on "{_clip(query, 60)}". '
        f"It covers: {listed}"
        + (f" (origins such as {examples})" if examples else "")
        + ', plus Coffee Quality Institute cupping statistics. Try e.g. "What are Ethiopian coffees like?" '
        'or "pour-over water temperature".'
    )


def compose(
    *,
    query: str,
    plan: QueryPlan,
    hits: list[Hit],
    index: Index,
    cqi: CqiTable,
    sentence_cache: SentenceCache,
    language: Language,
    top_k: int,
) -> KnowledgeAnswer:
    kept: list[tuple[Hit, Article]] = []
    about_coffee = index.about_coffee(plan)
    if any(index.credible(hit, about_coffee=about_coffee) for hit in hits[:top_k]):
        floor = hits[0].score * RELATIVE_CUTOFF
        # Articles named in the question stay even when another one scores far higher.
        kept = [(h, index.articles[h.doc]) for h in hits[:top_k] if h.score >= floor or h.alias]
    figures = _figures(plan=plan, passages=kept, cqi=cqi, language=language)
    if not kept and not figures:
        return KnowledgeAnswer(
            query=query, language=language, found=False, answer=_coverage_answer(query, index=index, language=language)
        )
    passages: list[Passage] = []
    answer_parts: list[str] = []
    wanted = _Wanted.of(plan, index)
    for rank, (hit, article) in enumerate(kept):
        ranked = wanted.rank(sentence_cache.get(article, language))
        if rank == 0:
            lead = _join(
                [s.text for s in _pick(ranked, count=ANSWER_SENTENCES, max_chars=ANSWER_CHARS[language])], language
            )
            answer_parts.append(f"{article.title(language)}：{lead}" if language == "zh" else lead)
        best = _pick(ranked, count=1, max_chars=SNIPPET_CHARS[language])
        passages.append(
            Passage(
                article_id=article.id,
                title=article.title(language),
                category=article.category,
                snippet=_clip(_join([s.text for s in best], language), SNIPPET_CHARS[language]),
                score=round(hit.score, 3),
            )
        )
    if figures:
        answer_parts.append(figures[0].summary)
    sources = [p.article_id for p in passages]
    sources += [f"cqi:{f.key}" if f.kind == "country" else f"cqi-process:{f.key}" for f in figures]
    return KnowledgeAnswer(
        query=query,
        language=language,
        found=True,
        answer="\n".join(answer_parts),
        passages=passages,
        figures=figures,
        sources=sources,
    )
