"""Turning ranked hits into a :class:`KnowledgeAnswer`: the sentence that carries the fact, its context.

Answers are extractive on purpose: every sentence comes from a shipped article, so the answer
is exactly as right as the corpus and always traceable to its source, which it names.

How the answer is built:

1. What the question asks for (:func:`facts.question_kinds`: a duration, a temperature, a
   ratio, a quantity, a date, a place, a person, a definition, steps, a comparison, a cause,
   a taste) and which words matter (the query plan's terms, idf-weighted).
2. Every sentence of the credible articles is scored: its words in common with the question,
   a bonus when it carries the kind of fact asked for (precomputed per sentence), a bonus
   when it sits in a list item labelled with the thing asked about ("Flat white: ..."), part
   of its list intro's score, and the rank of its article. The best one is the anchor.
3. The anchor is given the context a reader needs, in the article's own shape: a list intro
   comes with its (relevant) items; an unlabelled item comes with its intro; a labelled item
   is given whole; a sentence of prose gets its neighbours when they are relevant (or when
   it opens with "It", "This", 它...). Items are joined into one sentence with ";" or "；":
   no list markers, and the text never ends on a colon.
4. The article it came from is named at the end; CQI figures, when the question names a
   country or process, follow on a second line.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter

from kai_bridge.knowledge.corpus import CATEGORIES, Article
from kai_bridge.knowledge.cqi import CqiKey, CqiTable
from kai_bridge.knowledge.facts import (
    ALTITUDE,
    DATE,
    DEFINITION,
    DURATION,
    PERSON,
    PROFILE,
    QUANTITY,
    RATIO,
    STEPS,
    TEMPERATURE,
    PlaceNames,
    carries_value,
    sentence_kinds,
)
from kai_bridge.knowledge.index import Hit, Index, QueryPlan, span_terms
from kai_bridge.knowledge.models import CqiFigure, KnowledgeAnswer, Passage
from kai_bridge.knowledge.structure import INTRO, ITEM, ArticleText
from kai_bridge.knowledge.structure import strip_end as _strip_end
from kai_bridge.knowledge.text import Language, has_cjk, terms, to_simplified

__all__ = ["ANSWER_ARTICLES", "compose"]

# Origins named as examples when nothing is found (the best known ones, if present).
_EXAMPLE_ORIGINS = ("origin-ethiopia", "origin-kenya", "origin-colombia", "origin-brazil", "origin-yunnan-china")
# A hit lower than this share of the best one is noise, not a related article.
RELATIVE_CUTOFF = 0.15
MAX_FIGURES = 3
SNIPPET_CHARS = {"zh": 120, "en": 280}
ANSWER_CHARS = {"zh": 240, "en": 560}
CONTEXT_SENTENCES = 2  # sentences of prose added around a prose anchor, at most
ANSWER_ARTICLES = 3  # articles whose sentences may anchor the answer
TIED_HITS = 0.9  # the answer's article leads the passages when its hit scores this share of the first's

# Sentence scoring (tuned on tests/data/knowledge_answers_tuning.jsonl).
PRIMARY_BONUS = 4.0  # carries the kind of fact the question asks for first
KIND_BONUS = 1.5  # carries another kind the question asks for
HEAD_BONUS = 4.0  # in a list item labelled with what the question names ("Flat white: ...")
INTRO_SHARE = 0.5  # an item inherits this share of its intro's word score
BLOCK_SHARE = 0.5  # ... and of the best word score of its own paragraph or item
FOCUS_SHARE = 0.6  # the question's subject: its words with at least this share of the top idf
LEAD_BONUS = 0.5  # the article's first sentence (it usually defines the subject)
LEAD_DEFINITION_BONUS = 2.0  # ... when the question asks what the article's subject is
SUBJECT_BONUS = 1.0  # a sentence opening with what a definition question asks about (structure.opening)
ARTICLE_BONUS = 3.0  # x the article's score relative to the best article
NAMED_BONUS = 3.0  # the question names the article (one of its titles or aliases)
NAMED_SHARE = 1.0  # ... by its title: each of its sentences counts this share of the title words as said
PROXIMITY = 0.25  # x the share of the question one sentence of the article carries (re-ranks kept hits)
CONTEXT_SHARE = 0.35  # a neighbour joins the anchor when it scores this share of it
FLAVOUR_BONUS = 0.75  # per tasting note in a sentence, when the question asks what something is like
TOTAL_BONUS = 1.5  # a duration sentence giving the total time, when the question names no phase
NORM_BONUS = 1.0  # a sentence giving the ideal / recommended value, when the question asks for a good one
SHORT_ANCHOR = {"zh": 25, "en": 70}
# A second anchor: the next most relevant sentence joins an answer shorter than SECOND_ROOM
# when it scores at least SECOND_SHARE of the anchor (tuned on the tuning set and held-out 2-3).
SECOND_SHARE = 0.6
SECOND_ROOM = {"zh": 160, "en": 400}
EXTRA_ANCHORS = 2  # at most this many join the anchor
EXTRA_TRIES = 3  # candidates rendered for each extra anchor, at most (query cost)
# ... and when the question asks for a value the answer lacks, the best sentence carrying one
# joins it when it scores at least KIND_SHARE of the anchor.
KIND_SHARE = 0.5
LONG_LIST = 3  # a list of more items than this, one of them named by the question, is trimmed harder
UNKNOWN_SHARE = 0.6  # a question not saying coffee, this much of it in words no article uses: off topic
TYPED = DURATION | TEMPERATURE | RATIO | QUANTITY | DATE | PERSON | ALTITUDE
ITEM_SHARE = 0.8  # a long list item shows its sentences scoring this share of its best one  # a prose anchor shorter than this brings its next sentence

_FIRST_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]*")
_INNER_END = re.compile(r"[.!?]\s")  # an item of more than one sentence
_LAST_LATIN = "\u2fff"  # a term whose first character is above this is Chinese
_NO_PLACES = PlaceNames(en=(), zh=())  # clause kinds at render time: the curated place names only

# A question asking for the good value ("a good extraction yield", 水温多少合适), and the
# sentences that give one ("Its ideal zone is...", SCA推荐..., and superlatives: "foams most
# easily", 最易打出 answer 什么奶最好打).
_ASKS_NORM_EN = re.compile(r"\b(?:good|ideal|right|recommended|optimal|best|proper|correct|target)\b")
_ASKS_NORM_ZH = re.compile("合适|理想|最佳|最好|推荐|标准|正常")
# (the sentences: facts.NORM_VALUE, marked at index build as ArticleText.norms)
# A phase of a brew a duration question may name (the sentences giving a whole brew's time:
# facts.TOTAL_TIME, marked at index build as ArticleText.totals).
_PHASE = re.compile(
    r"\b(?:bloom\w*|steep\w*|press\w*|plung\w*|rest\w*|ferment\w*|dry\w*|cool\w*|stretch\w*|heat\w*|roast\w*|shot|extract\w*)\b"
    "|闷蒸|浸泡|泡|下压|压|养豆|发酵|干燥|晾晒|冷却|打发|加热|烘|萃取|保存|放"
)
# "蓝山咖啡是什么品种": the noun after 什么 ending the question names the kind of thing asked for.
_ASKED_NOUN = re.compile("什么([\u4e00-\u9fff]{2,3})[的呢吗啊？?]*$")
# Prose that leans on the sentence before it.
_LEANS_BACK = re.compile(
    r"^(?:It|Its|This|These|That|Those|They|Their|So|Because|But|However|Both|Such|The result)\b|^(?:它|这|该|此|因此|所以|但|不过|两者|其)"
)
# A sentence that continues the one before it ("Roasters also watch...", "The second, led by
# Peet's..."): a reader needs that one first.
_CONTINUES = re.compile(
    r"^(?:\S+\s+){0,3}(?:also|too|then)\b|^(?:The|A) (?:second|third|fourth|other|latter|former|next)\b"
    r"|^(?:Another|Other|Then|Later|Next|Still|Yet|Also|Instead|Otherwise)\b|^(?:[^，。]{0,6}(?:也|还|又))|^(?:另外|此外|其次|后来|随后|同时|第二|第三)"
)
# Words that say a question is about coffee as surely as "coffee" does (the off-topic gate
# then asks less of the wording: "刚烘的豆子放几天再冲" is on topic, only phrased loosely).
_BREW_WORDS = frozenset(
    t
    for t in terms(
        "豆子 烘豆 手冲 冲煮 萃取 意式 拿铁 奶泡 生豆 熟豆 咖啡因 养豆 磨豆 espresso barista cappuccino caffeine"
    )
    if not has_cjk(t) or len(t) > 1
)
# Words that make a bare country or process name a coffee question ("中国股市" is not).
_COFFEE_CONTEXT = frozenset(
    terms("咖啡 咖啡豆 生豆 杯测 评分 产区 精品 coffee bean cupping score grade specialty arabica robusta")
)


@dataclass(frozen=True, slots=True)
class _Wanted:
    """What makes a sentence relevant to this question."""

    weights: tuple[tuple[str, float, bool], ...]  # term, weight x idf, a query word (not an expansion)
    content: float  # the question's own words' weight (x idf), all of them
    strong: frozenset[str]  # whole words of the question and their alternatives
    focus: frozenset[str]  # the question's most specific words (its subject)
    named_focus: frozenset[str]  # its strong words but lone Chinese characters (the subject of a named article)
    kinds: int
    primary: int
    norm: bool = False  # the question asks for the good / ideal / recommended value
    total: bool = False  # a duration question naming no phase (bloom, steep...): the total time
    # The terms of ``weights`` alone: which of them an article has is then tested in C (most it has not).
    terms: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "terms", tuple([term for term, _, _ in self.weights]))

    @classmethod
    def of(
        cls,
        plan: QueryPlan,
        index: Index,
        *,
        kinds: int,
        primary: int,
        language: str,
        norm: bool = False,
        total: bool = False,
        asked: frozenset[str] = frozenset(),
    ) -> _Wanted:
        idf = index.idf
        own = plan.wanted
        # English sentences hold no Chinese terms; Chinese ones hold both (V60, Geisha...).
        english = language == "en"
        wanted = {t: w for t, w in own.items() if t[0] <= _LAST_LATIN} if english else dict(own)
        mine = len(wanted)  # the question's own words come first, then those of the expansions
        for exp in plan.expansions:
            side = exp.side
            if english and side == 0:  # Chinese names
                continue
            if side >= 0:  # (each term's weight is the same in every article's names)
                for doc in exp.docs:
                    for t, w in index.cross_wanted[doc][side].items():
                        if t not in wanted:
                            wanted[t] = w
            else:
                for t, w in exp.terms.items():
                    if t not in wanted and not (english and t[0] > _LAST_LATIN):
                        wanted[t] = w * idf.get(t, 0.0)
        domain = index.domain_terms
        strong_terms = [qt for qt in plan.terms if qt.weight >= 1.0 and qt.term not in domain]
        # (list comprehensions, not generator expressions, in what runs per question: no
        # generator to resume per element; the same elements in the same order)
        strong = frozenset([t for qt in strong_terms for t, _ in qt.alternatives])
        top = max([qt.idf for qt in strong_terms], default=0.0)
        focus = frozenset([t for qt in strong_terms if qt.idf >= FOCUS_SHARE * top for t, _ in qt.alternatives])
        if asked:  # 是什么品种: what kind of thing the answer is, as much the subject as X is
            focus |= asked
        return cls(
            tuple([(t, w, i < mine) for i, (t, w) in enumerate(wanted.items()) if w >= 0.05]),
            sum(own.values()),
            strong,
            focus,
            frozenset([t for t in strong if len(t) > 1 or t[0] <= _LAST_LATIN]),
            kinds,
            primary,
            norm,
            total,
        )

    def _counts_focus(self, sentence: str) -> bool:
        """A number in ``sentence`` is followed (within three words) by one of the question's
        most specific words: it counts that thing."""
        for match in _COUNT.finditer(sentence):
            if not self.focus.isdisjoint(terms(match.group(1) or match.group(2))):
                return True
        return False

    def scores(self, text: ArticleText, *, named: frozenset[str] | None) -> tuple[list[float], float, float]:
        """Each sentence's relevance (module docstring, step 2), and the largest word score of
        one sentence (how much of the question one sentence says), and what every sentence was
        credited for the article being named. ``named``: when the question names the article by
        its title, the words that name it: every sentence of the article is about that subject,
        so those words count as said in each of them."""
        sentences, postings = text.sentences, text.postings
        count = len(sentences)
        if not count:
            return [], 0.0, 0.0
        subject = named or frozenset()
        # Within an article the question names, its subject is what the question adds to the name:
        # its most specific words but the name, else its other words ("south indian filter coffee"
        # in the India article), a lone Chinese character aside (干 of 干什么用).
        focus = (
            ((self.focus - subject) or (self.named_focus - subject) or self.focus)
            if named
            else (self.focus or self.named_focus)
        )
        words = [0.0] * count
        own = [0.0] * count  # the question's own words only, as written (for ``together``)
        focused: set[int] = set()
        implied = 0.0
        for term, weight, mine in compress(self.weights, map(postings.__contains__, self.terms)):
            found = postings[term]
            said = weight
            # In a named article, the subject's words and the names the question brought in from
            # the other language (V60 -> 手冲, 滤杯) are said by every sentence of it, not by some.
            if named is not None and (term in subject or not mine):
                implied += NAMED_SHARE * weight
                said = weight - NAMED_SHARE * weight
            if mine:
                for i in found:
                    own[i] += weight
                    words[i] += said
            else:
                for i in found:
                    words[i] += said
            if term in focus:
                focused.update(found)
        together = max(own) / self.content if self.content > 0 else 0.0
        # What a sentence says itself; the words implied by a named article are added to every
        # sentence once (an item must not inherit them again through its intro).
        scores = [w + implied for w in words] if implied else list(words)
        for first, end in text.multi:
            best = max(words[first:end])
            if best:  # (else it adds nothing)
                for i in range(first, end):
                    scores[i] += BLOCK_SHARE * (best - words[i])
        strong = self.strong
        for segment, span in text.heads:
            # A label made of the question's words, one of them its subject ("Flat white: ..."
            # for "what is a flat white"; not "Espresso: ..." for "the order of dialing in espresso").
            if segment <= strong and not segment.isdisjoint(focus):
                for i in span:
                    scores[i] += HEAD_BONUS
                focused.update(span)
        if text.items:
            intro_words = {lid: max(words[first:end]) for lid, first, end in text.intros}
            for i, lid in text.items:
                scores[i] += INTRO_SHARE * intro_words[lid]
        kinds, primary = self.kinds, self.primary
        by_kind = text.by_kind
        rest = kinds
        while rest:
            bit = rest & -rest  # the kinds asked, lowest bit first
            rest ^= bit
            carrying = by_kind.get(bit)
            if carrying is None:
                continue
            bonus = PRIMARY_BONUS if bit == primary else KIND_BONUS
            if bit == DEFINITION:  # only a definition of what the question is about
                for i in carrying:
                    if i in focused:
                        scores[i] += bonus
            elif bit == PROFILE:  # the more tasting notes, the better the taste answer
                for i in carrying:
                    scores[i] += bonus
                    scores[i] += FLAVOUR_BONUS * min(4, sentences[i].flavour)
            else:
                for i in carrying:
                    scores[i] += bonus
        if primary == QUANTITY:
            # "how many folds does a Kalita Wave filter have": a number counting the thing asked
            # about ("20 wave-shaped pleats") is the quantity, though it has no unit.
            quantity = text.by_kind.get(QUANTITY, ())
            for i in {i for t in self.focus for i in postings.get(t, ())}:
                if i not in quantity and self._counts_focus(sentences[i].text):
                    scores[i] += PRIMARY_BONUS
        if self.total:  # "Chemex要冲多久": the whole brew's time, not the bloom's
            for i in text.totals:
                scores[i] += TOTAL_BONUS
        if self.norm:  # "what is a good extraction yield": the sentence that gives the ideal
            for i in text.norms:
                scores[i] += NORM_BONUS
        scores[0] += LEAD_DEFINITION_BONUS if primary == DEFINITION and 0 in focused else LEAD_BONUS
        if primary == DEFINITION and SUBJECT_BONUS:
            # "74110是什么品种": the sentence whose subject is the thing asked about (it opens
            # with it: "74110和74112均于..."), not any sentence that mentions it.
            asked, openings = self.focus, text.openings
            candidates = {i for t in asked for i in postings.get(t, ())}
            for i in candidates.intersection([i for t in asked for i in openings.get(t, ())]):
                scores[i] += SUBJECT_BONUS
        return scores, together, implied


_COUNT = re.compile(r"(?<![\w.,:])\d+\s+((?:[A-Za-z][\w-]*\s+){0,2}[A-Za-z][\w-]*)|(?<![\w.,:])\d+(?:个|种|颗|层|道|条)?([\u4e00-\u9fff]{2})")


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    # End at a clause boundary when there is one in the last third.
    for mark in ("；", "，", "; ", ", "):
        at = cut.rfind(mark)
        if at > limit * 2 // 3:
            cut = cut[:at]
            break
    return cut.rstrip(" ,;，；:：") + "…"


def _lower_first(text: str, proper: frozenset[str]) -> str:
    word = _FIRST_WORD.match(text)
    if not word or not word.group()[0].isupper() or word.group().isupper():
        return text
    if word.group().lower() in proper or (len(word.group()) == 1 and text[1:2] == " " and word.group() != "A"):
        return text
    return text[0].lower() + text[1:]


class _Renderer:
    """Turns an anchor sentence into answer text (see the module docstring, step 3)."""

    def __init__(
        self,
        text: ArticleText,
        scores: list[float],
        *,
        language: str,
        proper: frozenset[str],
        strong: frozenset[str],
        wanted: _Wanted | None = None,
        implied: float = 0.0,
    ) -> None:
        self.text, self.scores, self.language, self.proper, self.strong = text, scores, language, proper, strong
        self.zh = language == "zh"
        self.budget = ANSWER_CHARS[language]
        self.wanted = wanted
        self.implied = implied  # credited to every sentence (the article is named): not relevance
        self._block_scores: dict[int, float] = {}

    def fit(self, text: str, limit: int) -> str:
        """``text`` within ``limit`` characters. A long sentence made of clauses ("a; b; c")
        keeps its first clause and the clauses that carry what was asked, in order, rather
        than being cut wherever the limit falls (the fact may sit in its last clause)."""
        if len(text) <= limit or self.wanted is None:
            return _clip(text, limit)
        mark = "；" if self.zh else "; "
        clauses = [c for c in text.split(mark) if c.strip()]
        if len(clauses) < 3:
            return _clip(text, limit)
        weights = {t: w for t, w, _ in self.wanted.weights}
        primary, kinds = self.wanted.primary, self.wanted.kinds
        scored: list[tuple[float, int]] = []
        for i, clause in enumerate(clauses):
            found = sentence_kinds(clause, language=self.language, places=_NO_PLACES)
            score = sum([weights.get(t, 0.0) for t in set(terms(clause))])
            if found & primary:
                score += PRIMARY_BONUS
            elif found & kinds:
                score += KIND_BONUS
            scored.append((score, i))
        keep = {0}
        used = len(clauses[0])
        for score, i in sorted(scored, key=lambda p: (-p[0], p[1])):
            if i in keep or score <= 0.0:
                continue
            if used + len(clauses[i]) + len(mark) > limit:
                continue
            keep.add(i)
            used += len(clauses[i]) + len(mark)
        if len(keep) == 1:
            return _clip(text, limit)
        gap = "……" if self.zh else " … "
        out = ""
        last = -1
        for i in sorted(keep):
            if out:
                out = out.rstrip() + (mark if i == last + 1 else gap)
            out += clauses[i].strip()
            last = i
        if last != len(clauses) - 1:
            out = _strip_end(out) + "…"
        return out

    def item_text(self, block_index: int, *, anchor: int | None = None) -> str:
        """A list item as it is shown: all of it when it is one sentence, else its relevant
        sentences (the best one, the anchor, and those scoring a share of the best)."""
        block = self.text.blocks[block_index]
        full = self.block_text(block_index)
        if block.end - block.first <= 1 or len(full) <= self.budget // 2:
            return full
        best = max(self.scores[block.first : block.end])
        keep = {i for i in range(block.first, block.end) if i == anchor or self.scores[i] >= ITEM_SHARE * best}
        for i in sorted(keep):  # a short opener ("Stretch:", "Maillard phase: ...") brings its next sentence
            if len(self.text.sentences[i].text) < SHORT_ANCHOR[self.language] and i + 1 < block.end:
                keep.add(i + 1)
        parts = [self.text.sentences[i].text for i in sorted(keep)]
        return ("" if self.zh else " ").join(parts)

    def headed(self, block_index: int) -> bool:
        """The item's label names what the question asks about."""
        return any(segment <= self.strong for segment in self.text.blocks[block_index].heads)

    def block_text(self, block_index: int) -> str:
        return self.text.block_texts[block_index]

    def block_score(self, block_index: int) -> float:
        found = self._block_scores.get(block_index)
        if found is None:
            block = self.text.blocks[block_index]
            found = self._block_scores[block_index] = max(self.scores[block.first : block.end])
        return found

    def render(self, anchor: int, *, kinds: int) -> str:
        sentence = self.text.sentences[anchor]
        block = self.text.blocks[sentence.block]
        if block.role == INTRO:
            return self._list(block.list_id, anchor_block=None, kinds=kinds)
        if block.role == ITEM and block.list_id >= 0 and not (block.heads and self.headed(sentence.block)):
            return self._list(block.list_id, anchor_block=sentence.block, kinds=kinds)
        if block.role == ITEM:
            return self._labelled_item(sentence.block, kinds=kinds)
        return self._prose(anchor)

    def _join_items(self, intro: str | None, items: list[str]) -> str:
        if self.zh:
            body = "；".join([_strip_end(item) for item in items]) + "。"
            return f"{_strip_end(intro)}：{body}" if intro else body
        single = all(not _INNER_END.search(_strip_end(item)) for item in items)
        if single:
            parts = [_strip_end(item) for item in items]
            if intro:
                parts = [_lower_first(p, self.proper) for p in parts]
            body = "; ".join(parts) + "."
        else:
            body = " ".join([_strip_end(item) + "." for item in items])
        return f"{_strip_end(intro)}: {body}" if intro else body

    def _list(self, list_id: int, *, anchor_block: int | None, kinds: int) -> str:
        intro_block, items = self.text.list_blocks(list_id)
        intro = self.block_text(intro_block) if intro_block is not None else None
        if intro_block is not None and anchor_block is not None:
            intro = self._intro_for(intro_block, anchor_block)
        # Steps and recipes come whole (as far as they fit); other lists keep their relevant items.
        whole = bool(kinds & STEPS) and any(self.text.blocks[i].steps for i in items)
        chosen = self._pick_items(items, intro, anchor_block=anchor_block, whole=whole)
        if whole and anchor_block is not None and anchor_block not in chosen:
            chosen = self._pick_items(items, intro, anchor_block=anchor_block, whole=False)
        if not chosen:
            return _strip_end(intro or "") + ("。" if self.zh else ".")
        texts = [self.shown(i, whole=whole) for i in chosen]
        return self._join_items(intro, [self.fit(t, self.budget) for t in texts])

    def _intro_for(self, intro_block: int, anchor_block: int) -> str:
        """The intro of a list anchored on one of its items: the sentence announcing the list
        and those of the intro holding a word of the question, not the whole paragraph before it
        (a definition of what the list is about delays the item that answers)."""
        block = self.text.blocks[intro_block]
        if block.end - block.first <= 1 or self.wanted is None:
            return self.block_text(intro_block)
        said = {i for term in self.wanted.strong for i in self.text.postings.get(term, ())}
        keep = [i for i in range(block.first, block.end - 1) if i in said]
        parts = [self.text.sentences[i].text for i in (*keep, block.end - 1)]
        return ("" if self.zh else " ").join(parts)

    def shown(self, block_index: int, *, whole: bool) -> str:
        return self.block_text(block_index) if whole else self.item_text(block_index)

    def _pick_items(self, items: list[int], intro: str | None, *, anchor_block: int | None, whole: bool) -> list[int]:
        budget = self.budget - (len(intro) if intro else 0)
        chosen: list[int] = []
        if anchor_block is not None and not whole:
            chosen.append(anchor_block)
            budget -= len(self.shown(anchor_block, whole=whole))
        ranked = sorted(items, key=self.block_score, reverse=True)  # best first, ties in block order (stable)
        best = self.block_score(ranked[0]) if ranked else 0.0
        # In a long list the question names an item of, what every item scores (each carries a
        # time, say) tells none of them apart: an item is relevant by what it scores above the
        # least relevant one ("espresso extraction time": not the nine other brew methods).
        trim = len(ranked) > LONG_LIST and self._names_an_item(items)
        least = self.block_score(ranked[-1]) if trim else 0.0
        ordered = items if whole else ranked
        for item in ordered:
            if item in chosen:
                continue
            size = len(self.shown(item, whole=whole))
            if not whole and chosen and self.block_score(item) - least < CONTEXT_SHARE * (best - least):
                continue
            if size > budget and chosen:
                continue
            chosen.append(item)
            budget -= size
        chosen.sort()
        return chosen

    def _names_an_item(self, items: list[int]) -> bool:
        """One of the question's most specific words is in one of ``items`` ("espresso" of
        "espresso extraction time" in "Espresso: 25-30 seconds")."""
        if self.wanted is None:
            return False
        sentences, postings = self.text.sentences, self.text.postings
        return any(sentences[i].block in items for term in self.wanted.focus for i in postings.get(term, ()))

    def _labelled_item(self, block_index: int, *, kinds: int) -> str:
        text = _clip(self.block_text(block_index), self.budget)
        block = self.text.blocks[block_index]
        # A comparison asks about two things: another item labelled with the question's words.
        _, items = self.text.list_blocks(block.list_id)
        chosen = [block_index]
        budget = self.budget - len(text)
        for item in sorted(items, key=self.block_score, reverse=True):
            if item == block_index or self.block_score(item) < 0.6 * self.block_score(block_index):
                continue
            size = len(self.block_text(item))
            if size <= budget:
                chosen.append(item)
                budget -= size
            break
        chosen.sort()
        return self._join_items(None, [_clip(self.block_text(i), self.budget) for i in chosen])

    def _prose(self, anchor: int) -> str:
        sentences = self.text.sentences
        picked = {anchor}
        used = len(sentences[anchor].text)
        block = self.text.blocks[sentences[anchor].block]
        leans = _LEANS_BACK.match(sentences[anchor].text) is not None
        if anchor > block.first and leans:
            picked.add(anchor - 1)
            used += len(sentences[anchor - 1].text)
        if len(sentences[anchor].text) < SHORT_ANCHOR[self.language] and anchor + 1 < block.end:
            picked.add(anchor + 1)  # a one-line opener says little on its own
            used += len(sentences[anchor + 1].text)
        scores, implied = self.scores, self.implied
        floor = CONTEXT_SHARE * (scores[anchor] - implied)
        # Neighbours first (same paragraph), then the rest of the article's prose (a stray list
        # item reads as a non sequitur in prose), each best first, ties in article order.
        near = [i for i in range(block.first, block.end) if i not in picked]
        # The anchor's block is a plain paragraph: its sentences are a run of the (ascending) others.
        paragraph = self.text.paragraph
        far = paragraph[: bisect_left(paragraph, block.first)] + paragraph[bisect_left(paragraph, block.end) :]
        for group in (near, far):
            relevant = [i for i in group if (own := scores[i] - implied) >= floor and own > 0.0]
            for i in sorted(relevant, key=scores.__getitem__, reverse=True):
                if len(picked) >= 1 + CONTEXT_SENTENCES:
                    break
                if used + len(sentences[i].text) > self.budget:
                    continue
                picked.add(i)
                used += len(sentences[i].text)
        # The anchor leads (it carries the fact), the sentences before it follow; unless it leans
        # on what comes before it ("It...", "The second, led by..."): then in the article's order.
        order = sorted(picked)
        # (match: every branch of _CONTINUES is anchored at the start; search would try each position)
        if not (leans or _CONTINUES.match(sentences[anchor].text)):
            order = [i for i in order if i >= anchor] + [i for i in order if i < anchor]
        parts = [self.fit(sentences[i].text, self.budget) for i in order]
        text = ("" if self.zh else " ").join(parts)
        if text.endswith((":", "：")):
            text = text[:-1] + ("。" if self.zh else ".")
        return text


def _snippet(text: ArticleText, scores: list[float], language: str) -> str:
    if not text.sentences:
        return ""
    best = scores.index(max(scores))  # the first of the best
    snippet = _strip_end(text.sentences[best].text) if text.sentences[best].text.endswith((":", "：")) else (
        text.sentences[best].text
    )
    return _clip(snippet, SNIPPET_CHARS[language])


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
    listed, examples = _coverage_topics(index, language)
    if language == "zh":
        return (
            f"咖啡知识库里没有找到与“{_clip(query, 40)}”相关的内容。"
            f"这里能回答的咖啡话题有：{listed}"
            + (f"（产地如{examples}等）" if examples else "")
            + "，以及 Coffee Quality Institute 杯测评分统计。可以这样问：“埃塞俄比亚咖啡特点”“手冲咖啡的水温”。"
        )
    return (
        f'The coffee knowledge base has nothing on "{_clip(query, 60)}". '
        f"It covers: {listed}"
        + (f" (origins such as {examples})" if examples else "")
        + ', plus Coffee Quality Institute cupping statistics. Try e.g. "What are Ethiopian coffees like?" '
        'or "pour-over water temperature".'
    )


@functools.lru_cache(maxsize=8)
def _coverage_topics(index: Index, language: Language) -> tuple[str, str]:
    """(the topics listed, the origins named as examples) of the not-found answer: the same for
    every question to one index (it walks all the articles), so built once per language."""
    present = {a.category for a in index.articles}
    topics = [names for cat, names in CATEGORIES.items() if cat in present]
    by_id = {a.id: a for a in index.articles}
    origins = [by_id[i] for i in _EXAMPLE_ORIGINS if i in by_id] or [
        a for a in index.articles if a.category == "origin"
    ][:5]
    if language == "zh":
        return "、".join(zh for zh, _ in topics), "、".join(a.title_zh for a in origins)
    return ", ".join(en for _, en in topics), ", ".join(a.title_en for a in origins)


def _naming_terms(plan: QueryPlan, index: Index, docs: set[int]) -> dict[int, frozenset[str]]:
    """Per article of ``docs`` the question names by its title: the question's terms that name it.

    Only title words count ("Kenyan coffee" for "Kenya AA"): an alias that names a part of
    an article ("AA", "flat white", "blade grinder") is what the answer must be about, not
    what every sentence of the article is about.
    """
    if not docs:
        return {}
    by_term = {qt.term: qt for qt in plan.terms}
    found: dict[int, set[str]] = {}
    titles = index.title_terms
    for hit in plan.alias_hits:
        named = hit.payloads & docs
        if not named:
            continue
        for term in span_terms(plan.units[hit.start : hit.end]):
            qt = by_term.get(term)
            alternatives = [alt for alt, _ in qt.alternatives] if qt else [term]
            for doc in named:
                if not titles[doc].isdisjoint(alternatives):
                    found.setdefault(doc, set()).update([term, *alternatives])
    for expansion in plan.expansions:  # the same names in the other language
        for doc in expansion.docs:
            if doc in found:
                if expansion.side >= 0:
                    found[doc].update(index.cross_title[doc][expansion.side])
                else:
                    found[doc].update(t for t in expansion.terms if t in titles[doc])
    return {doc: frozenset(words) for doc, words in found.items()}


def _extra_anchor(
    said: str,
    best: float,
    candidates: list[tuple[float, int, int]],
    *,
    missing: bool,
    kept: list[tuple[Hit, Article]],
    rendered: Callable[[int, int], str],
    index: Index,
    wanted: _Wanted,
    language: Language,
    kinds: int,
) -> tuple[str, str] | None:
    """The next most relevant sentence (``candidates``: score, article rank, sentence; best
    first), rendered, when the answer so far (``said``) is short and it scores close to the
    anchor: a second chance for the fact when the anchor is near it but not on it. When the
    question asks for a value the answer lacks (``missing``: a time, a temperature, a name...),
    the best sentence that carries one, if it is relevant enough."""
    if not missing and len(said) >= SECOND_ROOM[language]:
        return None
    floor = (KIND_SHARE if missing else SECOND_SHARE) * best
    primary = wanted.primary
    tries = EXTRA_TRIES
    for score, rank, i in candidates:
        if score < floor or not tries:
            return None
        hit, article = kept[rank]
        text = index.texts[hit.doc][language]
        if missing and i not in text.by_kind.get(primary, ()):
            continue
        if text.stripped[i] in said:
            continue  # said already (a list item joined into a sentence has lost its end mark)
        extra = rendered(rank, i)
        tries -= 1
        if len(said) + len(extra) > ANSWER_CHARS[language]:
            # Its list or paragraph does not fit: the sentence alone may.
            extra = text.sentences[i].text
            if (
                extra.endswith((":", "："))
                or _LEANS_BACK.match(extra)
                or len(said) + len(extra) > ANSWER_CHARS[language]
            ):
                continue
        if _repeats(text.stripped, extra, said):
            continue  # it repeats what the answer already says
        return extra, article.title(language)
    return None


def _repeats(parts: tuple[str, ...], extra: str, said: str) -> bool:
    """A sentence of ``parts`` (longer than 5 characters) is in both ``extra`` and ``said``
    (a loop rather than any() over a generator: this runs over every sentence of an article)."""
    for part in parts:  # noqa: SIM110 - see the docstring
        if len(part) > 5 and part in extra and part in said:
            return True
    return False


def _says_any(postings: dict[str, tuple[int, ...]], words: Iterable[str]) -> bool:
    """An article whose sentence postings are ``postings`` says one of ``words`` (a look-up per
    word: ``frozenset.isdisjoint(postings)`` would walk every key of the dict)."""
    return any(word in postings for word in words)


def _named_by_subject(doc: int, plan: QueryPlan, wanted: _Wanted, index: Index, language: Language) -> bool:
    """The question names article ``doc`` by its subject (one of its most specific words is in
    the alias), or the article says the subject. Not so when a modifier names it: "roasted" of
    "how long do roasted beans stay fresh" names the roasting article, which never says "fresh"."""
    focus = wanted.focus
    if _says_any(index.texts[doc][language].postings, focus):
        return True
    return any(
        doc in alias_hit.payloads and not focus.isdisjoint(span_terms(plan.units[alias_hit.start : alias_hit.end]))
        for alias_hit in plan.alias_hits
    )


def _unknown_share(plan: QueryPlan) -> float:
    """The share of the question's words (by idf) that no article uses, nor any spelling or
    word-form neighbour of them (kombucha). A Chinese bigram of two known characters (会苦) is
    a pairing, not an unknown word."""
    total = unknown = 0.0
    for qt in plan.terms:
        if qt.weight < 1.0:
            continue
        total += qt.idf
        if not qt.alternatives and qt.term[0] <= _LAST_LATIN:  # (a term is CJK or Latin throughout)
            unknown += qt.idf
    return unknown / total if total > 0 else 0.0


def _off_topic(plan: QueryPlan, index: Index, *, about_coffee: bool) -> bool:
    """The question is about something else: another drink or field (:meth:`Index.foreign`), or,
    not saying coffee, mostly words no article uses; or, not saying coffee and naming nothing the
    base knows by name, a word no article uses ("how long to boil an egg for a runny yolk": runny),
    though its other words meet in one sentence (Vietnam's egg coffee topped with egg yolk). A name
    ("SCA roast color tiles": roast) keeps it on topic, the unknown word a spelling variant; so does
    a word one slip from the corpus's (a typo: measured on typo'd tuning questions)."""
    if index.foreign(plan):
        return True
    if about_coffee:
        return False
    unknown = _unknown_share(plan)
    return unknown >= UNKNOWN_SHARE or (
        unknown > 0.0 and not plan.alias_hits and _holds_a_stranger(plan, index.idf)
    )


def _guessed_subject(plan: QueryPlan, doc: int) -> bool:
    """The question's most specific words are all typo guesses and the answer's article says none
    of them: "coffee stock price" (stock, read as shock) is answered from coffee prices, not stocks.
    A real typo ("extarct") is the word the answer is about, so its article says the guess."""
    strong = [qt for qt in plan.terms if qt.weight >= 1.0 and qt.alternatives]
    top = max((qt.idf for qt in strong), default=0.0)
    subject = [qt for qt in strong if qt.idf >= FOCUS_SHARE * top]
    return bool(subject) and all(
        all(alt != qt.term for alt, _ in qt.alternatives)
        and doc not in plan.term_docs.get(qt.term, ())
        for qt in subject
    )


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _holds_a_stranger(plan: QueryPlan, idf: dict[str, float]) -> bool:
    """A word of the question no article uses that is not one slip (a letter dropped, added,
    changed or swapped, the first kept) from a word some article uses: "runny", not "ghsot"
    (ghost) or "staemed" (steamed), which the names-only typo correction leaves unknown."""
    for qt in plan.terms:
        word = qt.term
        if qt.weight < 1.0 or qt.alternatives or has_cjk(word) or not word.isalpha():
            continue
        size = len(word)
        # (every slip starts at the second letter: the first is kept)
        slips = {word[:i] + word[i + 1 :] for i in range(1, size)}
        slips.update(word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(1, size - 1))
        slips.update(word[:i] + c + word[i + 1 :] for i in range(1, size) for c in _LETTERS)
        slips.update(word[:i] + c + word[i:] for i in range(1, size + 1) for c in _LETTERS)
        if not any(slip in idf for slip in slips):
            return True
    return False


def _tie_break(best: int, scores: list[float], text: ArticleText, wanted: _Wanted) -> int:
    """Among the sentences scoring exactly as much as ``best`` (an item's inherited share and
    a kind bonus can make a whole list tie), the one holding the most of the question's words
    and their alternatives; then the first."""
    top = scores[best]
    if scores.count(top) < 2:  # the common case, counted in C (``best`` is the first of the best)
        return best
    tied = [j for j in range(best, len(scores)) if scores[j] == top]
    if len(tied) < 2:
        return best
    said = dict.fromkeys(tied, 0)
    for term in wanted.strong:
        for j in text.postings.get(term, ()):
            if j in said:
                said[j] += 1
    return max(tied, key=lambda j: (said[j], -j))


def _attributed(text: str, title: str, language: str) -> str:
    if language == "zh":
        return f"{text}（出自《{title}》）"
    return f'{text} (from "{title}")'


def compose(
    *,
    query: str,
    kinds: int,
    primary: int,
    plan: QueryPlan,
    hits: list[Hit],
    index: Index,
    cqi: CqiTable,
    language: Language,
    top_k: int,
) -> KnowledgeAnswer:
    kept: list[tuple[Hit, Article]] = []
    # A brewing word says "coffee" only loosely (豆子 may be any beans): not when the question
    # also holds a word no article has ever used (豆子怎么煮才烂), its topic lies elsewhere.
    about_coffee = index.about_coffee(plan) or (
        not _BREW_WORDS.isdisjoint(qt.term for qt in plan.terms)
        and not any(qt.weight >= 1.0 and not qt.alternatives and qt.idf >= index.max_idf for qt in plan.terms)
    )
    pool = hits[: max(top_k, ANSWER_ARTICLES)]
    foreign = _off_topic(plan, index, about_coffee=about_coffee)
    if not foreign and any(index.credible(hit, about_coffee=about_coffee, plan=plan) for hit in pool[:top_k]):
        floor = hits[0].score * RELATIVE_CUTOFF
        # Articles named in the question stay even when another one scores far higher.
        kept = [(h, index.articles[h.doc]) for h in pool if h.score >= floor or h.alias]
    norm = (_ASKS_NORM_ZH if has_cjk(query) else _ASKS_NORM_EN).search(query.lower()) is not None
    total = primary == DURATION and _PHASE.search(query.lower()) is None
    noun = _ASKED_NOUN.search(to_simplified(query))
    asked = frozenset(t for t in terms(noun.group(1)) if len(t) > 1 and t in index.idf) if noun else frozenset()
    wanted = _Wanted.of(
        plan, index, kinds=kinds, primary=primary, language=language, norm=norm, total=total, asked=asked
    )
    naming = _naming_terms(plan, index, {h.doc for h, _ in kept if h.alias}) if plan.alias_hits else {}
    # Every sentence of a named article says its name, but only when the name is what the question
    # is about: "roasted" of "how long do roasted beans stay fresh" names the roasting article by a
    # modifier; when another article says the question's subject ("fresh") and the named one does
    # not, the named one's batch times must not outscore the storage article's facts. (English
    # subjects only: a Chinese subject is a bigram, often one straddling two words, 缩萃 of
    # 浓缩萃取, which tells nothing; measured, the rule over them cost held-out 2 and 6 answers.)
    subject = [t for t in wanted.focus if t[0] <= _LAST_LATIN]
    if naming and subject and any(_says_any(index.texts[h.doc][language].postings, subject) for h, _ in kept):
        naming = {doc: named for doc, named in naming.items() if _named_by_subject(doc, plan, wanted, index, language)}
    scored_by_doc: dict[int, tuple[list[float], float, float]] = {
        hit.doc: wanted.scores(index.texts[hit.doc][language], named=naming.get(hit.doc)) for hit, _ in kept
    }
    if PROXIMITY and len(kept) > 1:
        # An article that says more of the question in one sentence moves up.
        kept.sort(key=lambda pair: -pair[0].score * (1 + PROXIMITY * scored_by_doc[pair[0].doc][1]))
    scored = [scored_by_doc[hit.doc][0] for hit, _ in kept]
    best: tuple[float, int, int] | None = None  # (score, rank, sentence)
    top_score = kept[0][0].score if kept else 1.0
    bonuses: list[float] = []  # each article's bonus, by rank (for the extra anchors too)
    for rank, (hit, _article) in enumerate(kept[:ANSWER_ARTICLES]):
        scores = scored[rank]
        bonus = ARTICLE_BONUS * min(1.0, hit.score / top_score if top_score > 0 else 1.0)
        bonus += NAMED_BONUS if hit.alias and _named_by_subject(hit.doc, plan, wanted, index, language) else 0.0
        bonuses.append(bonus)
        if scores:
            i = scores.index(max(scores))  # the first of the best
            i = _tie_break(i, scores, index.texts[hit.doc][language], wanted)
            if best is None or scores[i] + bonus > best[0]:
                best = (scores[i] + bonus, rank, i)
    # A question saying coffee and naming nothing, whose subject is only a typo guess its answer
    # never says, asks about something else ("coffee stock price": stock, read as shock). Not
    # without "coffee" (the guess may be coffee misspelt: "cofee" read as a rare word) nor with a
    # name ("when did cup of excellence strat"): measured on typo'd copies of the tuning questions.
    if (
        best is not None
        and about_coffee
        and plan.corrections
        and not plan.alias_hits
        and _guessed_subject(plan, kept[best[1]][0].doc)
    ):
        kept, best = [], None
    # The article the answer comes from leads the passages; the rest keep their rank.
    order = list(range(len(kept)))
    if best is not None and best[1] != 0 and (
        not index.credible(kept[0][0], about_coffee=about_coffee, plan=plan)
        or (
            kept[best[1]][0].score >= TIED_HITS * kept[0][0].score
            and primary & TYPED
            and primary not in index.texts[kept[0][0].doc][language].by_kind
        )
    ):
        order.remove(best[1])
        order.insert(0, best[1])
    order = order[:top_k]
    # A question about another drink or field gets no CQI figures for a country it names either.
    figures = [] if foreign else _figures(plan=plan, passages=[kept[i] for i in order], cqi=cqi, language=language)
    if not kept and not figures:
        return KnowledgeAnswer(
            query=query, language=language, found=False, answer=_coverage_answer(query, index=index, language=language)
        )
    # Built from the index's own typed data: constructed without re-validation (~20 us a query).
    passages = [
        Passage.model_construct(
            article_id=kept[i][1].id,
            title=kept[i][1].title(language),
            category=kept[i][1].category,
            snippet=_snippet(index.texts[kept[i][0].doc][language], scored[i], language),
            score=round(kept[i][0].score, 3),
        )
        for i in order
    ]
    answer_parts: list[str] = []
    if best is not None:
        _, rank, anchor = best
        article = kept[rank][1]

        renderers: dict[int, _Renderer] = {}
        renderings: dict[tuple[int, int], str] = {}

        def rendered(rank: int, sentence: int) -> str:
            """The answer text for ``sentence`` of the article kept at ``rank`` (one renderer per
            article; each sentence rendered once, though a second extra anchor may try it again)."""
            found = renderings.get((rank, sentence))
            if found is None:
                renderer = renderers.get(rank)
                if renderer is None:
                    doc = kept[rank][0].doc
                    renderer = renderers[rank] = _Renderer(
                        index.texts[doc][language],
                        scored[rank],
                        language=language,
                        proper=index.proper_nouns,
                        strong=wanted.strong,
                        wanted=wanted,
                        implied=scored_by_doc[doc][2],
                    )
                found = renderings[(rank, sentence)] = renderer.render(sentence, kinds=kinds)
            return found

        said = rendered(rank, anchor)
        gap = "" if language == "zh" else " "
        segments = [(article.title(language), said)]  # (source title, text), in the order said
        low = min(SECOND_SHARE, KIND_SHARE) * best[0]
        candidates: list[tuple[float, int, int]] = []  # by rank and sentence, then best first (stable)
        for rank, scores in enumerate(scored[:ANSWER_ARTICLES]):
            bonus = bonuses[rank]
            candidates += [(value, rank, i) for i, score in enumerate(scores) if (value := score + bonus) >= low]
        candidates.sort(key=itemgetter(0), reverse=True)
        asks = primary & TYPED
        missing = bool(asks) and not carries_value(said, asks)
        for _ in range(EXTRA_ANCHORS if best[0] > 0.0 else 0):
            extra = _extra_anchor(
                said,
                best[0],
                candidates,
                missing=missing,
                kept=kept,
                rendered=rendered,
                index=index,
                wanted=wanted,
                language=language,
                kinds=kinds,
            )
            if extra is None:
                break
            missing = missing and not carries_value(extra[0], asks)
            text, title = extra
            said += gap + text
            if title == segments[-1][0]:
                segments[-1] = (title, segments[-1][1] + gap + text)
            else:
                segments.append((title, text))
        answer_parts.append(gap.join([_attributed(text, title, language) for title, text in segments]))
    if figures:
        answer_parts.append(figures[0].summary)
    sources = [p.article_id for p in passages]
    sources += [f"cqi:{f.key}" if f.kind == "country" else f"cqi-process:{f.key}" for f in figures]
    return KnowledgeAnswer.model_construct(
        query=query,
        language=language,
        found=True,
        answer="\n".join(answer_parts),
        passages=passages,
        figures=figures,
        sources=sources,
        backend="local",
    )

