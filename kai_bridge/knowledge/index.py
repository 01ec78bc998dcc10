"""The embedded full-text index: in-memory BM25F over CJK bigrams/unigrams and English stems.

Chosen by measurement over (a) SQLite FTS5 with the trigram tokenizer + bm25() and (b) this
design, with ``scripts/bench/bench_knowledge.py --compare-fts5`` on the 2-core machine
(88 articles; 248 answerable + 16 off-topic labelled queries; other jobs running, load
average ~2)::

    engine                        index build  p50       p99       recall@1  recall@3  MRR    off-topic clean
    (b) BM25F bigrams + stems     188 ms       0.42 ms   1.06 ms   0.944     0.988     0.967  1.00
    (a) FTS5 trigram + bm25        47 ms       0.26 ms   0.84 ms   0.827     0.903     0.874  0.25

    (b) whole load (TOML + CQI table + index): 223 ms. Under a load average of 5 the same
    run gave p50 0.56 ms and wall p99 ~10 ms for both engines (CPU p99 1.5 ms): the tail is
    the scheduler, not the query.

FTS5 is faster, but trigrams cannot match a two-character Chinese word at all (手冲, 拿铁,
日晒, 酸质 are each shorter than a trigram), have no stemming, no notion of a name in the
query, and bm25() has no scale on which "nothing relevant" can be told apart (12 of the 16
off-topic questions returned articles). Recall and the off-topic gate decide it for (b).

Scoring, per article:

- BM25F over three fields with boosts: names (titles + aliases) x3, tags x1.5, body x1.
  Impacts are precomputed at build time so a query is a few dictionary look-ups.
- Aliases found in the query (see :mod:`phrases`) add a bonus to their article, and expand
  the query with the same article's aliases in the other language (埃塞俄比亚 -> Ethiopia,
  Yirgacheffe ...; latte -> 拿铁), so either language reaches both. Articles the question
  names are listed first.
- English tokens unknown to the index are corrected against the names/tags vocabulary
  (Damerau distance 1, 2 for words of 8+ letters, same first letter, via a deletion index):
  Ethiopa -> ethiopia, expresso -> espresso. Only names are targets, so ordinary English
  words ("bread") are not bent into coffee words. Derivational neighbours (europe ~
  european, kenya ~ kenyan) count at a discount.
- The ranking score is BM25F x a coverage factor: the share of the query's idf weight the
  article matched. A hit is credible only if it is named in the query, or matches a word
  in its names/tags and covers half the query, or covers nearly all of it (less when the
  question says "coffee"). Off-topic questions ("今天天气", "how to bake bread") then find
  nothing instead of the least bad article.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from itertools import compress

from kai_bridge.knowledge.corpus import Article
from kai_bridge.knowledge.facts import PlaceNames
from kai_bridge.knowledge.phrases import PhraseHit, PhraseMatcher, units
from kai_bridge.knowledge.structure import ArticleText, TextState, parse_body, text_from_state, text_state
from kai_bridge.knowledge.text import EN_STOPWORDS, Token, has_cjk, index_terms, stem, terms, tokens

__all__ = ["Hit", "Index", "QueryPlan", "span_terms"]

FIELD_BOOSTS = {"names": 3.0, "tags": 1.5, "body": 1.0}
K1 = 1.2
B = {"names": 0.3, "tags": 0.3, "body": 0.75}
EXPANSION_WEIGHT = 0.3
SKIP_COVERED_CHARS = True
MEMO_SIZE = 8192  # entries of each per-term memo of the index
REACH_FLOOR = 0.0  # an expansion's contribution below this is dropped at build time (speed)
EXPANSION_COVERAGE = 0.3  # share of an alias span's coverage its other-language names earn
TYPO_FACTOR = 0.8
NEIGHBOUR_FACTOR = 0.7
SYNONYM_FACTOR = 0.7
# Suffixes linking words of one family that the stemmer leaves apart.
NEIGHBOUR_SUFFIXES = ("n", "an", "ian", "ean", "ese", "ity", "ic", "y", "ness", "er", "ist")
ALIAS_BONUS = 10.0
NAMED_FLOOR = 0.25  # a named article scoring below this share of the best is not promoted
NAMED_MIN_COVERAGE = 0.3  # ... nor one explaining less than this share of the question
# Credibility gate (tuned on the labelled queries, including the off-topic set).
MIN_COVERAGE_ALIAS = 0.3
MIN_COVERAGE_NAMED = 0.5
MIN_COVERAGE_BODY = 0.8
MIN_SCORE = 3.0
MIN_COVERAGE_SHORT = 0.95  # below MIN_SCORE: a coffee question whose words an article all matches
COVERAGE_FLOOR = 0.4
NEGLIGIBLE = 0.01  # query terms weighing less than this (咖 in every article) are skipped
DOMAIN_RELIEF = 0.6  # coverage thresholds x this when the query says "coffee"
DOMAIN_SHARE = 0.5  # a term in the names of this share of articles means "coffee"
# Other drinks and other fields: a question about them is not about coffee unless it names
# something of the base (see Index.foreign).
FOREIGN_TERMS = frozenset(
    terms(
        "tea teas wine wines beer beers whisky whiskey cocktail cocktails juice soda cola matcha "
        "football soccer basketball baseball tennis cricket golf olympics empire emperor emperors dynasty "
        "pharaoh stock stocks shares bitcoin weather forecast movie movies film films"
    )
)
FOREIGN_ZH = (
    "茶", "葡萄酒", "红酒", "啤酒", "白酒", "威士忌", "鸡尾酒", "果汁", "可乐", "足球", "篮球", "网球",
    "棒球", "奥运", "帝国", "皇帝", "王朝", "股票", "股市", "天气", "电影",
)


@dataclass(frozen=True, slots=True)
class QueryTerm:
    """One term of the query and the index terms that may stand for it.

    ``alternatives`` pairs index terms with a factor: the term itself (1.0), its typo
    correction, its morphological neighbours (europe ~ european). Per article only the best
    alternative counts, so a word never scores twice.
    """

    term: str
    weight: float  # 1.0, or less for weak kinds (CJK unigrams)
    idf: float  # its weight in coverage (see Index._unmatched_idf)
    alternatives: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class Expansion:
    """The other language's names of the articles an alias hit named.

    An article matching them mentions the named thing in the other language, so it is
    credited with part of the coverage the alias span's words carry.
    """

    span_terms: frozenset[str]  # the query terms inside the alias span
    terms: dict[str, float]
    docs: frozenset[int]  # the articles the alias hit named
    side: int  # which of their names (0 zh, 1 en) all expand; -1: some were the query's own words


@dataclass(slots=True)
class QueryPlan:
    """How a query was understood; kept for answers (sentence picking) and for debugging."""

    text: str
    terms: list[QueryTerm]
    weights: dict[str, float]  # every index term the query may match -> weight (for sentence picking)
    expansion: dict[str, float]  # term -> weight, all expansion terms (for sentence picking)
    expansions: list[Expansion]  # one per alias hit
    corrections: dict[str, str]  # typed word -> vocabulary word
    alias_hits: list[PhraseHit[int]]
    units: list[str]
    content_weight: float  # sum of weight x idf of the query terms
    masses: dict[str, float] = field(default_factory=dict)  # term -> weight x idf (what mass() reads)
    term_docs: dict[str, frozenset[int]] = field(default_factory=dict)  # term -> articles matching it
    # The weight of its Chinese bigrams that straddle the edge of a known word (see _straddling):
    # the off-topic gate does not ask an article to explain them.
    loose: float = 0.0
    wanted: dict[str, float] = field(default_factory=dict)  # each of ``weights`` x its idf (answer scoring)

    def mass(self, term: str) -> float:
        if self.masses:
            return self.masses.get(term, 0.0)
        for qt in self.terms:
            if qt.term == term:
                return qt.weight * qt.idf
        return 0.0


@dataclass(slots=True)
class Hit:
    doc: int
    score: float  # ranking score: raw x coverage factor
    raw: float  # BM25F + alias bonus
    coverage: float  # share of the query's idf weight this article matched
    alias: bool  # one of its aliases/titles appears in the query
    named: bool  # a query word (not a lone CJK character) is in its names or tags


def _valued(score: float, c: float, content: float) -> float:
    """The ranking value of an article scoring ``score`` and covering ``c`` of ``content``.
    Index.search also computes it inline in its two loops over many articles (a call each cost
    +0.55 % instructions per question, measured); a function, not a closure: a closure would make
    the accumulators of search cell variables, slower in its loops."""
    return score * (COVERAGE_FLOOR + (1 - COVERAGE_FLOOR) * (c / content if c < content else 1.0))


def _coverage(c: float, content: float) -> float:
    """The share ``c`` is of the question's ``content`` weight, at most 1."""
    return c / content if c < content else 1.0


def _osa_distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (Levenshtein + adjacent transposition), capped."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


IndexState = dict[str, object]
# A query term as analysed once (Index._query_term_memo): the term, its typo correction, the
# articles matching it, its weight x idf, and (alternative, weight x factor, that x the
# alternative's idf) per alternative.
_TermEntry = tuple["QueryTerm", str | None, frozenset[int], float, tuple[tuple[str, float, float], ...]]


class Index:
    """Built once from the articles (or restored from a prebuilt :meth:`state`); read-only
    afterwards apart from bounded memos of pure functions, so safe to share between tasks."""

    def __init__(self, articles: Sequence[Article], *, state: IndexState | None = None) -> None:
        self.articles = list(articles)
        self._install(state if state is not None else _build_state(self.articles))

    def state(self) -> IndexState:
        """Everything built from the articles, as plain data (``marshal``-able): what
        :mod:`prebuilt` stores so a new process need not build the index again."""
        return {
            "name_terms": self.name_terms,
            "idf": self.idf,
            "postings": self.postings,
            "domain_terms": self.domain_terms,
            "aliases": self.aliases.table,
            "cross_terms": self._cross_terms,
            "cross_reach": self._cross_reach,
            "typo_targets": self._typo_targets,
            "surface_vocab": self._surface_vocab,
            "deletion_index": self._deletion_index,
            "synonyms": self.synonyms,
            "texts": [(text_state(t["zh"]), text_state(t["en"])) for t in self.texts],
            "proper_nouns": self.proper_nouns,
            "title_terms": self.title_terms,
        }

    def _install(self, state: IndexState) -> None:
        n = len(self.articles)
        g = state.__getitem__
        self.name_terms: list[frozenset[str]] = g("name_terms")  # type: ignore[assignment]
        self.idf: dict[str, float] = g("idf")  # type: ignore[assignment]
        self.max_idf = math.log(1 + (n + 0.5) / 0.5)
        self.postings: dict[str, list[tuple[int, float]]] = g("postings")  # type: ignore[assignment]
        self.domain_terms: frozenset[str] = g("domain_terms")  # type: ignore[assignment]
        self.aliases: PhraseMatcher[int] = PhraseMatcher.from_table(g("aliases"))  # type: ignore[arg-type]
        self._cross_terms: list[tuple[tuple[str, ...], tuple[str, ...]]] = g("cross_terms")  # type: ignore[assignment]
        self._cross_reach: list[tuple[dict[int, float], dict[int, float]]] = g("cross_reach")  # type: ignore[assignment]
        self._typo_targets: dict[str, str] = g("typo_targets")  # type: ignore[assignment]
        self._surface_vocab: frozenset[str] = g("surface_vocab")  # type: ignore[assignment]
        self._deletion_index: dict[str, frozenset[str]] = g("deletion_index")  # type: ignore[assignment]
        self.synonyms: dict[str, tuple[str, ...]] = g("synonyms")  # type: ignore[assignment]
        texts: list[tuple[TextState, TextState]] = g("texts")  # type: ignore[assignment]
        self.texts: list[dict[str, ArticleText]] = [
            {"zh": text_from_state(zh, language="zh"), "en": text_from_state(en, language="en")} for zh, en in texts
        ]
        self.proper_nouns: frozenset[str] = g("proper_nouns")  # type: ignore[assignment]
        # What each article is about as a whole: the terms of its titles before any colon.
        self.title_terms: list[frozenset[str]] = g("title_terms")  # type: ignore[assignment]
        # Derived views, cheap enough to recompute on every load.
        self._cross_groups = [
            tuple(dict.fromkeys(names, EXPANSION_WEIGHT) for names in pair) for pair in self._cross_terms
        ]
        # The same, weighted by idf, as the answer scorer wants them.
        self.cross_wanted = [
            tuple({t: EXPANSION_WEIGHT * self.idf.get(t, 0.0) for t in names} for names in pair)
            for pair in self._cross_terms
        ]
        self._cross_dense = [
            tuple([reach.get(doc, 0.0) for doc in range(n)] for reach in pair) for pair in self._cross_reach
        ]
        self._cross_docs = [tuple(frozenset(reach) for reach in pair) for pair in self._cross_reach]
        # The same reach as (article, value) pairs, the articles in the order of _cross_docs.
        self._cross_pairs = [
            tuple(tuple((doc, dense[doc]) for doc in docs) for docs, dense in zip(docs_pair, dense_pair, strict=True))
            for docs_pair, dense_pair in zip(self._cross_docs, self._cross_dense, strict=True)
        ]
        self._cross_indicator = [
            tuple([1.0 if doc in reach else 0.0 for doc in range(n)] for reach in pair) for pair in self._cross_reach
        ]
        # Its names in each language that are title words (what naming it implies, see answer).
        self.cross_title = [
            tuple(frozenset(t for t in names if t in self.title_terms[doc]) for names in self._cross_terms[doc])
            for doc in range(n)
        ]
        # Memos of pure functions of the built index (bounded; a lost race recomputes).
        self._merged_memo: dict[tuple[tuple[str, float], ...], tuple[tuple[int, float, float], ...]] = {}
        self._docs_memo: dict[tuple[tuple[str, float], ...], frozenset[int]] = {}
        self._term_memo: dict[tuple[str, str], tuple[tuple[tuple[str, float], ...], float, str | None]] = {}
        self._query_term_memo: dict[tuple[str, float, str], _TermEntry] = {}

    @property
    def size(self) -> int:
        return len(self.articles)

    # --- query analysis ---------------------------------------------------------------

    def correct(self, word: str) -> str | None:
        """The names-vocabulary word closest to an unknown English ``word``, if close enough."""
        if len(word) < 5 or not word.isalpha() or word in self._surface_vocab or stem(word) in self.idf:
            return None
        limit = 1 if len(word) < 8 else 2
        candidates: set[str] = set()
        for variant in _deletes(word) | {word}:
            candidates |= self._deletion_index.get(variant, set())
        # Typists rarely miss the first letter; requiring it keeps london from becoming dondon.
        candidates = {c for c in candidates if c[0] == word[0]}
        best: tuple[int, float, str] | None = None
        for candidate in candidates:
            distance = _osa_distance(word, candidate, limit)
            if distance > limit:
                continue
            rank = (distance, -self.idf.get(self._typo_targets[candidate], 0.0), candidate)
            if best is None or rank < best:
                best = rank
        return best[2] if best else None

    def _neighbours(self, term: str) -> list[str]:
        """Index terms that differ from a Latin ``term`` by a derivational suffix
        (europe ~ european, kenya ~ kenyan, acid ~ acidity, sweet ~ sweetness)."""
        if len(term) < 4 or not term.isalpha():
            return []
        found = [term[: -len(x)] for x in NEIGHBOUR_SUFFIXES if term.endswith(x) and term[: -len(x)] in self.idf]
        found += [term + x for x in NEIGHBOUR_SUFFIXES if term + x in self.idf]
        if term.endswith("e"):  # the stemmer keeps a final e only on short words
            found += [term[:-1] + x for x in NEIGHBOUR_SUFFIXES if term[:-1] + x in self.idf]
        if term.endswith("y"):  # hardy ~ hardiness
            found += [term[:-1] + "i" + x for x in NEIGHBOUR_SUFFIXES if term[:-1] + "i" + x in self.idf]
        return [t for t in found if len(t) >= 4]

    def _analysed(self, term: str, surface: str) -> tuple[tuple[tuple[str, float], ...], float, str | None]:
        """One query term's alternatives (itself, its typo correction, neighbours, synonyms),
        its idf and the corrected word if any. Memoised: a pure function of the built index."""
        key = (term, surface)
        found = self._term_memo.get(key)
        if found is not None:
            return found
        alternatives: list[tuple[str, float]] = []
        fixed: str | None = None
        idf = self.idf.get(term)
        if idf is not None:
            alternatives.append((term, 1.0))
        elif surface and (fixed := self.correct(surface)) is not None:
            term_fixed = self._typo_targets[fixed]
            alternatives.append((term_fixed, TYPO_FACTOR))
            idf = self.idf[term_fixed]
        if surface:
            base = alternatives[0][0] if alternatives else term
            for other in self._neighbours(base):
                if all(other != alt for alt, _ in alternatives):
                    alternatives.append((other, NEIGHBOUR_FACTOR))
                    if idf is None:
                        idf = self.idf[other]
        for other in self.synonyms.get(term, ()):
            if other in self.idf and all(other != alt for alt, _ in alternatives):
                alternatives.append((other, SYNONYM_FACTOR))
                if idf is None:
                    idf = self.idf[other]
        found = (tuple(alternatives), idf if idf is not None else self._unmatched_idf(term), fixed)
        if len(self._term_memo) >= MEMO_SIZE:
            self._term_memo.clear()
        self._term_memo[key] = found
        return found

    def plan(self, query: str, *, analysed: str | None = None) -> QueryPlan:
        """How ``query`` is searched. ``analysed`` (default: the query) is the text whose terms
        are looked up, e.g. the query without its answer-kind words; names are found in ``query``."""
        raw: dict[str, tuple[float, str]] = {}  # term -> (weight, surface)
        for term, weight, surface in tokens(query if analysed is None else analysed):
            if weight > raw.get(term, (0.0, ""))[0]:
                raw[term] = (weight, surface)
        corrections: dict[str, str] = {}
        query_terms: list[QueryTerm] = []
        term_docs: dict[str, frozenset[int]] = {}
        masses: dict[str, float] = {}
        weighings: list[tuple[tuple[str, float, float], ...]] = []  # per query term, as _weighted gives it
        memo = self._query_term_memo
        for term, (weight, surface) in raw.items():
            found = memo.get((term, weight, surface))
            if found is None:
                found = self._term_entry(term, weight, surface)
                if len(memo) >= MEMO_SIZE:
                    memo.clear()
                memo[(term, weight, surface)] = found
            query_term, fixed, docs, mass, weighted = found
            if fixed is not None:
                corrections[surface] = fixed
            query_terms.append(query_term)
            term_docs[term] = docs
            masses[term] = mass
            weighings.append(weighted)
        firsts = query_terms
        # (a term is CJK or ASCII throughout: its first character tells which, as in search)
        if any(not qt.alternatives and len(qt.term) == 2 and qt.term[0] > "\u2fff" for qt in query_terms) and any(
            qt.term in self.domain_terms for qt in query_terms
        ):
            query_terms = self._unseen_pairs_as_words(query_terms)
        if len(query_terms) > 1:
            query_terms = self._said_once(query_terms, term_docs)
        if query_terms is not firsts:  # (rare) a rule above rewrote the terms: weigh them as rewritten
            masses = {qt.term: qt.weight * qt.idf for qt in query_terms}
            weighings = [self._weighted(qt.weight, qt.alternatives) for qt in query_terms]
        # Each index term at the largest weight any query term gives it (x its idf: the same
        # maximum, multiplying by a non-negative number keeps the order).
        weights: dict[str, float] = {}
        wanted: dict[str, float] = {}
        for weighted in weighings:
            for alt, value, idf_value in weighted:
                before = weights.get(alt)
                if before is None or value > before:
                    weights[alt] = value
                    wanted[alt] = idf_value
        query_units = units(query)
        if corrections:
            fixed_units = {stem(w): stem(c) for w, c in corrections.items()}
            query_units = [fixed_units.get(u, u) for u in query_units]
        hits = [h for h in self.aliases.find(query_units) if not _only_stopwords(h.phrase)]
        expansions: list[Expansion] = []
        for hit in hits:
            side = 1 if has_cjk(hit.phrase) else 0  # a Chinese name expands to the English ones
            group: dict[str, float] = {}
            complete = True
            for doc in hit.payloads:
                # Whole words only (a lone character of a name says little), not the query's own.
                names = self._cross_groups[doc][side]
                if names.keys().isdisjoint(weights):
                    group.update(names)
                else:
                    complete = False
                    group.update((t, w) for t, w in names.items() if t not in weights)
            if group:
                span = frozenset(span_terms(query_units[hit.start : hit.end])) & masses.keys()
                expansions.append(Expansion(span, group, hit.payloads, side if complete else -1))
        # All expansion terms, each at EXPANSION_WEIGHT (one expansion: its own dict, shared).
        expansion: dict[str, float] = expansions[0].terms if len(expansions) == 1 else {}
        if len(expansions) > 1:
            for exp in expansions:
                expansion.update(exp.terms)
        content = sum(masses.values())
        straddling = _straddling(query_units, hits, self.domain_terms)
        loose = sum([qt.weight * qt.idf for qt in query_terms if qt.term in straddling]) if straddling else 0.0
        return QueryPlan(
            query, query_terms, weights, expansion, expansions, corrections, hits, query_units, content, masses, term_docs,
            loose=loose, wanted=wanted,
        )

    def _term_entry(self, term: str, weight: float, surface: str) -> _TermEntry:
        """What :meth:`plan` needs of one query term (memoised there: a pure function of the index)."""
        alternatives, idf, fixed = self._analysed(term, surface)
        weighted = self._weighted(weight, alternatives)
        return QueryTerm(term, weight, idf, alternatives), fixed, self._docs_of(alternatives), weight * idf, weighted

    def _weighted(
        self, weight: float, alternatives: tuple[tuple[str, float], ...]
    ) -> tuple[tuple[str, float, float], ...]:
        """(alternative, weight x factor, that x the alternative's idf) of a query term."""
        out: list[tuple[str, float, float]] = []
        for alt, factor in alternatives:
            value = weight * factor
            out.append((alt, value, value * self.idf.get(alt, 0.0)))
        return tuple(out)

    def _said_once(self, query_terms: list[QueryTerm], term_docs: dict[str, frozenset[int]]) -> list[QueryTerm]:
        """An unknown word known only through a neighbour or typo fix that is another word of
        the question (cooker ~ cook in "how to cook rice in a pressure cooker") explains nothing
        the question does not say already: it stays unknown."""
        own = {qt.term for qt in query_terms if qt.alternatives and qt.alternatives[0][0] == qt.term}
        if not own:
            return query_terms
        echoes = [
            qt for qt in query_terms
            if qt.alternatives and qt.term not in own and all(alt in own for alt, _ in qt.alternatives)
        ]
        if not echoes:
            return query_terms
        for qt in echoes:
            term_docs[qt.term] = frozenset()
        return [
            QueryTerm(qt.term, qt.weight, self._unmatched_idf(qt.term), ()) if qt in echoes else qt
            for qt in query_terms
        ]

    def _unseen_pairs_as_words(self, query_terms: list[QueryTerm]) -> list[QueryTerm]:
        """In a question that says 咖啡, a pair of known Chinese characters no article holds (会苦
        of 咖啡为什么会苦) standing alone (its characters in no other pair of the question) is
        not a word: it drops out, and its characters are read as words (苦, as in 咖啡太苦)."""
        unseen = {
            qt.term
            for qt in query_terms
            if not qt.alternatives and len(qt.term) == 2 and has_cjk(qt.term) and all(ch in self.idf for ch in qt.term)
        }
        # Only a pair standing alone: both its characters in no other pair of the question.
        pairs = [qt.term for qt in query_terms if len(qt.term) == 2 and has_cjk(qt.term)]
        unseen = {pair for pair in unseen if not any(other != pair and set(other) & set(pair) for other in pairs)}
        if not unseen:
            return query_terms
        alone = {ch for pair in unseen for ch in pair}
        return [
            QueryTerm(qt.term, 1.0, qt.idf, qt.alternatives) if qt.term in alone and qt.weight < 1.0 else qt
            for qt in query_terms
            if qt.term not in unseen
        ]

    def _unmatched_idf(self, term: str) -> float:
        """How much a query term weighs in coverage. Unknown terms weigh the most, except a
        two-character CJK term made of common characters: that is usually a bigram spanning a
        word boundary (传到欧洲 -> 到欧), not an unknown topic word (股票)."""
        idf = self.idf.get(term)
        if idf is not None:
            return idf
        if len(term) == 2 and has_cjk(term):
            return max(self.idf.get(term[0], self.max_idf), self.idf.get(term[1], self.max_idf))
        return self.max_idf

    # --- ranking ------------------------------------------------------------------------

    def search(self, plan: QueryPlan, *, limit: int) -> list[Hit]:
        # Dense per-article arrays: the corpus is small, and list indexing is the fastest
        # accumulator Python has (this loop is most of a query's cost).
        n = len(self.articles)
        scores = [0.0] * n
        covered = [0.0] * n
        postings = self.postings
        covered_chars = (
            {ch for qt in plan.terms if len(qt.term) == 2 and qt.alternatives and qt.term[0] > "\u2fff" for ch in qt.term}
            if SKIP_COVERED_CHARS
            else set()
        )
        term_docs = plan.term_docs
        for qt in plan.terms:
            qweight = qt.weight
            mass = qweight * qt.idf
            if mass < NEGLIGIBLE:  # a character in every article: it cannot change the ranking
                continue
            if qweight < 1.0 and qt.term in covered_chars:
                docs = term_docs.get(qt.term)
                for doc in docs if docs is not None else self._docs_of(qt.alternatives):
                    covered[doc] += mass
                continue
            alternatives = qt.alternatives
            if len(alternatives) == 1:
                alt, factor = alternatives[0]
                weight, credit = qweight * factor, mass * factor
                if weight == 1.0:  # the common case: a whole word, as written (x 1.0 is exact)
                    for doc, impact in postings[alt]:
                        scores[doc] += impact
                        covered[doc] += credit
                else:
                    for doc, impact in postings[alt]:
                        scores[doc] += weight * impact
                        covered[doc] += credit
                continue
            for doc, value, factor in self._merged(alternatives):
                scores[doc] += qweight * value
                covered[doc] += mass * factor
        if plan.expansions:
            # Which articles matched each word inside an alias span, to credit only the rest.
            by_term = {qt.term: qt for qt in plan.terms}
            span_docs: dict[str, frozenset[int]] = {}
            for exp in plan.expansions:
                for term in exp.span_terms:
                    if term not in span_docs:
                        found = term_docs.get(term)
                        span_docs[term] = found if found is not None else self._docs_of(by_term[term].alternatives)
            # A span word an article did not match itself is credited once, whichever expansion
            # reaches the article first.
            credited: dict[str, set[int]] = {}
            several = len(plan.expansions) > 1
            for exp in plan.expansions:
                pairs: Sequence[tuple[int, float]]
                if exp.side >= 0 and len(exp.docs) == 1:  # the common case, precomputed at build
                    (named_doc,) = exp.docs
                    reached: frozenset[int] = self._cross_docs[named_doc][exp.side]
                    pairs = self._cross_pairs[named_doc][exp.side]  # zero elsewhere
                else:
                    best_reach: dict[int, float] = {}
                    for term, weight in exp.terms.items():
                        for doc, impact in postings.get(term, ()):
                            if weight * impact > best_reach.get(doc, 0.0):
                                best_reach[doc] = weight * impact
                    reached = frozenset(best_reach)
                    pairs = list(best_reach.items())
                # Each reached article earns the credit of the span words it did not match
                # itself (nor was credited for already): all of it, less what it matched.
                base = 0.0
                matched: list[tuple[float, frozenset[int] | set[int]]] = []  # (credit, articles it is taken from)
                for term in exp.span_terms:
                    qt = by_term[term]
                    if qt.weight < 1.0:  # a character of a Chinese name: its bigrams carry it
                        continue
                    credit = EXPANSION_COVERAGE * qt.idf
                    if credit < NEGLIGIBLE:  # "coffee" in "Costa Rica coffee": in every article
                        continue
                    base += credit
                    done = credited.setdefault(term, set())
                    matched.append((credit, span_docs[term] | done if done else span_docs[term]))
                    if several:
                        done |= reached - span_docs[term]
                # One pass over the reached articles: the reach, then the credit less what each
                # matched (summed in the order of the span words, as the coverage of one word).
                if not base:
                    for doc, value in pairs:
                        scores[doc] += value
                elif len(matched) == 1:
                    ((credit, taken),) = matched
                    for doc, value in pairs:
                        scores[doc] += value
                        if doc in taken:
                            covered[doc] = covered[doc] + base - credit
                        else:
                            covered[doc] += base
                else:
                    # What each reached article matched itself, summed in the order of the span
                    # words as above, walking only the articles in both (intersections in C).
                    lesses: dict[int, float] = {}
                    for credit, taken in matched:
                        for doc in reached.intersection(taken):
                            lesses[doc] = lesses.get(doc, 0.0) + credit
                    for doc, value in pairs:
                        scores[doc] += value
                        less = lesses.get(doc)
                        covered[doc] = covered[doc] + base - less if less else covered[doc] + base
        alias_docs = _alias_strength(plan)
        for doc, (strength, _) in alias_docs.items():
            scores[doc] += ALIAS_BONUS * strength
        content = plan.content_weight or 1.0
        # An article that explains more of the question ranks higher.
        floor_share, rest = COVERAGE_FLOOR, 1 - COVERAGE_FLOOR
        # Only the articles that scored (a few dozen of ~90) are ranked.
        values = [0.0] * n
        scored = list(compress(range(n), scores))

        needed = limit + len(alias_docs)  # the most of the ranking read below
        if len(scored) > needed:
            # A value is at most the score (the coverage factor is at most 1): once the articles
            # scoring most are valued, one scoring below the least of their values ranks below
            # all of them, ties included, and is not valued (most are not: scores fall off fast).
            by_score = sorted(scored, key=scores.__getitem__, reverse=True)
            for doc in by_score[:needed]:
                values[doc] = _valued(scores[doc], covered[doc], content)
            least = min(map(values.__getitem__, by_score[:needed]))
            cut = needed
            while cut < len(by_score) and scores[by_score[cut]] >= least:
                doc = by_score[cut]
                c = covered[doc]
                values[doc] = scores[doc] * (floor_share + rest * (c / content if c < content else 1.0))
                cut += 1
            for doc in alias_docs:  # (the named ones are weighed below, ranked or not)
                if scores[doc] and not values[doc]:
                    values[doc] = _valued(scores[doc], covered[doc], content)
            scored = sorted(by_score[:cut])  # article order again: ties rank in it
        else:
            for doc in scored:
                c = covered[doc]
                values[doc] = scores[doc] * (floor_share + rest * (c / content if c < content else 1.0))

        # Best first, ties in article id order (= doc order: the sort is stable).
        ranked = sorted(scored, key=values.__getitem__, reverse=True)
        # Articles the question names come first (it asked about them) unless they score far
        # below the best; then by score.
        floor = NAMED_FLOOR * (values[ranked[0]] if ranked else 0.0)
        # (loops, not comprehensions, here and below: a comprehension would make the arrays it
        # reads cell variables of the whole method, slower in its loops)
        named: list[tuple[float, int]] = []
        for doc, (_, naming) in alias_docs.items():
            value = values[doc]
            if naming and value >= floor and value > 0.0 and _coverage(covered[doc], content) >= NAMED_MIN_COVERAGE:
                named.append((-value, doc))
        named.sort()
        first = [doc for _, doc in named[:limit]]
        top = first + [doc for doc in ranked[: limit + len(first)] if doc not in first][: limit - len(first)]
        strong = [alt for qt in plan.terms if qt.weight >= 1.0 for alt, _ in qt.alternatives]
        hits: list[Hit] = []
        for doc in top:
            hits.append(
                Hit(
                    doc,
                    values[doc],
                    scores[doc],
                    _coverage(covered[doc], content),
                    alias_docs.get(doc, (0.0, False))[1],
                    not self.name_terms[doc].isdisjoint(strong),
                )
            )
        return hits

    def _merged(self, alternatives: tuple[tuple[str, float], ...]) -> tuple[tuple[int, float, float], ...]:
        """Per article: the best alternative's impact x factor, and the best factor among the
        alternatives it matched (an exact match explains the word fully even when a variant
        scores more). Memoised: a pure function of the alternatives on a built index."""
        found = self._merged_memo.get(alternatives)
        if found is None:
            best: dict[int, float] = {}
            factors: dict[int, float] = {}
            for alt, factor in alternatives:
                for doc, impact in self.postings[alt]:
                    if factor * impact > best.get(doc, 0.0):
                        best[doc] = factor * impact
                    if factor > factors.get(doc, 0.0):
                        factors[doc] = factor
            found = tuple((doc, value, factors[doc]) for doc, value in best.items())
            if len(self._merged_memo) >= MEMO_SIZE:
                self._merged_memo.clear()
            self._merged_memo[alternatives] = found
        return found

    def _docs_of(self, alternatives: tuple[tuple[str, float], ...]) -> frozenset[int]:
        """The articles matching any of ``alternatives`` (memoised like :meth:`_merged`)."""
        found = self._docs_memo.get(alternatives)
        if found is None:
            found = frozenset(doc for alt, _ in alternatives for doc, _ in self.postings[alt])
            if len(self._docs_memo) >= MEMO_SIZE:
                self._docs_memo.clear()
            self._docs_memo[alternatives] = found
        return found

    def foreign(self, plan: QueryPlan) -> bool:
        """The question is about another drink or another field (green tea, the Roman empire,
        football) and names nothing of the base: it is answered with what the base covers,
        even when a coffee article happens to mention the word (caffeine in green tea). Naming
        an origin does not keep it on topic: a country or region grows other crops too (普洱生茶,
        台湾高山茶); naming anything else of the base does."""
        if self.about_coffee(plan) or any(
            self.articles[doc].category != "origin" for hit in plan.alias_hits for doc in hit.payloads
        ):
            return False
        return any(qt.term in FOREIGN_TERMS for qt in plan.terms) or any(w in plan.text for w in FOREIGN_ZH)

    def about_coffee(self, plan: QueryPlan) -> bool:
        """The query says "coffee" (咖啡, coffee: words in the names of most articles)."""
        return any(qt.term in self.domain_terms for qt in plan.terms)

    def credible(self, hit: Hit, *, about_coffee: bool, plan: QueryPlan) -> bool:
        """Whether a hit is good enough to answer from (the off-topic gate).

        Named in the query (alias) and explaining some of it; or matching it in its names or
        tags and explaining enough of it; or matching nearly all of it anywhere. A question
        that says "coffee" needs less: it is on topic, only the wording is unusual. ``plan``:
        the question's; its bigrams straddling a known word's edge are not asked for.
        """
        coverage = hit.coverage
        if plan.loose and plan.content_weight > plan.loose:
            coverage = min(1.0, coverage * plan.content_weight / (plan.content_weight - plan.loose))
        if hit.alias and coverage >= MIN_COVERAGE_ALIAS:
            return True
        if hit.raw < MIN_SCORE:
            # A short question that says "coffee" and whose every word this article names or
            # tags ("coffee too bitter", 咖啡太苦怎么办) is on topic, however little it scores.
            return about_coffee and hit.named and coverage >= MIN_COVERAGE_SHORT
        need = MIN_COVERAGE_NAMED if hit.named else MIN_COVERAGE_BODY
        return coverage >= (need * DOMAIN_RELIEF if about_coffee else need)


def _build_state(articles: list[Article]) -> IndexState:
    """Build everything the index needs from the articles (see the module docstring)."""
    n = len(articles)
    field_terms: list[dict[str, list[str]]] = []
    # Which terms sit in each article's names/tags: a body-only match is weaker evidence.
    name_terms: list[frozenset[str]] = []
    name_surfaces: set[str] = set()
    body_surfaces: set[str] = set()
    for article in articles:
        names, names_latin = index_terms("\n".join(_names(article)))
        tags, tags_latin = index_terms("\n".join(article.tags))
        body, body_latin = index_terms(article.body_zh + "\n" + article.body_en)
        field_terms.append({"names": names, "tags": tags, "body": body})
        name_terms.append(frozenset(names) | frozenset(tags))
        name_surfaces.update(names_latin, tags_latin)
        body_surfaces.update(body_latin)
    avg = {f: max(1.0, sum(len(ft[f]) for ft in field_terms) / max(1, n)) for f in FIELD_BOOSTS}
    df: Counter[str] = Counter()
    per_doc_tf: list[dict[str, float]] = []
    for ft in field_terms:
        # Body first with a comprehension (it holds most terms), then the small fields.
        boost = FIELD_BOOSTS["body"] / (1 - B["body"] + B["body"] * len(ft["body"]) / avg["body"])
        pseudo = {term: boost * count for term, count in Counter(ft["body"]).items()}
        for name in ("names", "tags"):
            boost = FIELD_BOOSTS[name] / (1 - B[name] + B[name] * len(ft[name]) / avg[name])
            for term, count in Counter(ft[name]).items():
                pseudo[term] = pseudo.get(term, 0.0) + boost * count
        per_doc_tf.append(pseudo)
        df.update(pseudo.keys())
    idf = {term: math.log(1 + (n - d + 0.5) / (d + 0.5)) for term, d in df.items()}
    postings: dict[str, list[tuple[int, float]]] = {term: [] for term in df}
    for doc, pseudo in enumerate(per_doc_tf):
        for term, tf in pseudo.items():
            postings[term].append((doc, idf[term] * tf * (K1 + 1) / (tf + K1)))
    in_names = Counter(t for terms_ in name_terms for t in terms_ if len(t) > 1)
    domain_terms = frozenset(t for t, c in in_names.items() if c >= DOMAIN_SHARE * n)
    # Titles and aliases are matched in queries; only aliases (names, not descriptions) expand.
    alias_entries: list[tuple[str, int]] = []
    cross_names: list[tuple[list[Token], list[Token]]] = []
    for doc, article in enumerate(articles):
        alias_entries.extend((name, doc) for name in _names(article))
        zh = [t for name in article.aliases_zh for t in tokens(name) if has_cjk(t[0])]
        en = [t for name in article.aliases_en for t in tokens(name) if not has_cjk(t[0])]
        cross_names.append((zh, en))
    # What naming an article adds to every other article through its names in the other
    # language (see Expansion): the terms, and per reached article the best score, once.
    cross_terms: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    cross_reach: list[tuple[dict[int, float], dict[int, float]]] = []
    for zh_names, en_names in cross_names:
        pair: list[tuple[str, ...]] = []
        reach_pair: list[dict[int, float]] = []
        for side_names in (zh_names, en_names):
            found = tuple(dict.fromkeys(t for t, w, _ in side_names if w >= 1.0 and t not in domain_terms))
            reach: dict[int, float] = {}
            for term in found:
                for other, impact in postings.get(term, ()):
                    value = EXPANSION_WEIGHT * impact
                    if value >= REACH_FLOOR and value > reach.get(other, 0.0):
                        reach[other] = value
            pair.append(found)
            reach_pair.append(reach)
        cross_terms.append((pair[0], pair[1]))
        cross_reach.append((reach_pair[0], reach_pair[1]))
    # Typo targets: Latin words of names and tags only (surface -> stem).
    typo_targets = {w: stem(w) for w in name_surfaces if len(w) >= 5 and w.isalpha()}
    deletion_index: dict[str, set[str]] = {}
    for word in typo_targets:
        for variant in _deletes(word) | {word}:
            deletion_index.setdefault(variant, set()).add(word)
    # Each body parsed into paragraphs, lists and sentences, per language (for answers).
    places = PlaceNames(
        en=[n for a in articles if a.category == "origin" for n in (*a.aliases_en, _bare_title(a.title_en))],
        zh=[n for a in articles if a.category == "origin" for n in a.aliases_zh],
    )
    texts = [
        (
            text_state(parse_body(a.body_zh, language="zh", places=places)),
            text_state(parse_body(a.body_en, language="en", places=places)),
        )
        for a in articles
    ]
    return {
        "name_terms": name_terms,
        "idf": idf,
        "postings": postings,
        "domain_terms": domain_terms,
        "aliases": PhraseMatcher(alias_entries).table,
        "cross_terms": cross_terms,
        "cross_reach": cross_reach,
        "typo_targets": typo_targets,
        "surface_vocab": frozenset(body_surfaces | name_surfaces),
        "deletion_index": {k: frozenset(v) for k, v in deletion_index.items()},
        "synonyms": _load_synonyms(),
        "texts": texts,
        "proper_nouns": _proper_nouns([a.body_en for a in articles]),
        "title_terms": [
            frozenset(terms(a.title_zh.split("：")[0] + "\n" + a.title_en.split(":")[0])) for a in articles
        ],
    }


def _load_synonyms() -> dict[str, tuple[str, ...]]:
    """term -> the other terms of its synonym groups (``data/synonyms.json``)."""
    data = json.loads(resources.files("kai_bridge.knowledge").joinpath("data", "synonyms.json").read_text("utf-8"))
    table: dict[str, set[str]] = {}
    for language in ("en", "zh"):
        for group in data[language]:
            keys: set[str] = set()
            for word in group:
                found = terms(word)
                # A Chinese word stands for its whole form (a bigram or one character).
                keys.update(t for t in found if len(found) == 1 or len(t) == len(word) or not has_cjk(t))
            for key in keys:
                table.setdefault(key, set()).update(keys - {key})
    return {key: tuple(sorted(others)) for key, others in table.items()}


def _bare_title(title: str) -> str:
    return re.sub(r"\s*(?:coffee|\(.*\))\s*", " ", title).strip()


def _proper_nouns(bodies: Sequence[str]) -> frozenset[str]:
    """English words only ever written capitalized (Turkish, AeroPress): kept as written when
    a list item is joined into a sentence, while ordinary words are lower-cased."""
    capital: set[str] = set()
    lower: set[str] = set()
    for body in bodies:
        for word in re.findall(r"[A-Za-z][A-Za-z0-9'-]*", body):
            (capital if word[0].isupper() else lower).add(word.lower() if word[0].isupper() else word)
    return frozenset(capital - lower)


def _names(article: Article) -> list[str]:
    return [article.title_zh, article.title_en, *article.aliases_zh, *article.aliases_en]


def _only_stopwords(phrase: str) -> bool:
    return not has_cjk(phrase) and all(word in EN_STOPWORDS for word in phrase.split())


def span_terms(units_: list[str]) -> list[str]:
    """The index terms a run of query units stands for (CJK chars + bigrams, Latin stems)."""
    return list(_span_terms(tuple(units_)))


@functools.lru_cache(maxsize=MEMO_SIZE)
def _span_terms(units_: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for i, unit in enumerate(units_):
        out.append(unit)
        if has_cjk(unit) and i + 1 < len(units_) and has_cjk(units_[i + 1]):
            out.append(unit + units_[i + 1])
    return tuple(out)


def _straddling(query_units: list[str], hits: list[PhraseHit[int]], domain_terms: frozenset[str]) -> set[str]:
    """The Chinese bigrams of the query that straddle the edge of a word it is known to hold: a
    name of an article (油脂 in 那层油脂, 脱因 in 给咖啡脱因) or "咖啡". 层油 and 啡脱 are no words;
    counted, they weigh like rare topic words and dilute the share of the question an article
    explains (the off-topic gate's measure). A bigram inside another known word stays."""
    # (a unit is one CJK character or an ASCII word: above U+2FFF means CJK)
    spans = [(h.start, h.end) for h in hits if h.end - h.start > 1 and query_units[h.start] > "\u2fff"]
    # (each pair of neighbouring units joined and looked up in C: few are "coffee")
    pairs = map(domain_terms.__contains__, map(operator.add, query_units, query_units[1:]))
    spans += [(i, i + 2) for i in compress(range(len(query_units) - 1), pairs)]
    if not spans:
        return set()
    size = len(query_units)
    inside = {i for start, end in spans for i in range(start, end - 1)}  # bigram starts within a word
    found: set[str] = set()
    for start, end in spans:
        for i in (start - 1, end - 1):
            if 0 <= i < size - 1 and i not in inside and query_units[i] > "\u2fff" and query_units[i + 1] > "\u2fff":
                found.add(query_units[i] + query_units[i + 1])
    return found


def _alias_strength(plan: QueryPlan) -> dict[int, tuple[float, bool]]:
    """Per article: (how much of the query its aliases explain, in (0, 1]; whether that counts
    as being named). "How much" is by idf mass, so "coffee history" explains less of "typica
    coffee history" than "typica" does. A hit inside a longer hit of another article (摩卡
    inside 摩卡壶) is shadowed: a small bonus, and not a naming.
    """
    if not plan.alias_hits:
        return {}
    total = plan.content_weight or 1.0
    strength: dict[int, tuple[float, bool]] = {}
    hits = plan.alias_hits
    several = len(hits) > 1
    masses = plan.masses  # (as plan.mass() reads them: empty only when the query has no terms)
    for hit in hits:
        length = hit.end - hit.start
        shadowed = several and any(
            other.start <= hit.start
            and hit.end <= other.end
            and (other.end - other.start) > length
            and not (other.payloads & hit.payloads)
            for other in hits
        )
        mass = sum([masses.get(t, 0.0) for t in set(span_terms(plan.units[hit.start : hit.end]))])
        share = min(1.0, mass / total) / len(hit.payloads)
        value = (0.5 + 0.5 * share, True) if not shadowed else (0.2 * share, False)
        for doc in hit.payloads:
            strength[doc] = max(strength.get(doc, (0.0, False)), value)
    return strength
