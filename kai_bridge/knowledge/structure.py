"""Article bodies as structure: paragraphs, list intros and list items, split into sentences.

The articles are written as prose with lists: a line ending in a colon announces a list
("A starting recipe:", "参考做法："), its items follow as "- ..." / "1. ..." / "一、..." lines
(or, in Chinese, as "标签：..." lines or a single line). An answer must keep that shape in
mind: a list announced by a colon comes with its items, an item without a label ("25-30
seconds, timed from pressing the button") needs its intro to make sense, and list markers
never appear in the middle of prose. Everything here is computed once per article and
language, at index build (and stored in the prebuilt index), never per question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kai_bridge.knowledge.facts import (
    DEFINITION,
    DURATION,
    NORM_VALUE,
    STEPS,
    TOTAL_TIME,
    PlaceNames,
    flavour_notes,
    sentence_kinds,
    steps_intro,
)
from kai_bridge.knowledge.text import has_cjk, terms

__all__ = [
    "INTRO",
    "ITEM",
    "PARA",
    "SUBJECT_CHARS",
    "SUBJECT_WORDS",
    "ArticleText",
    "Block",
    "Sentence",
    "opening",
    "parse_body",
    "strip_end",
    "text_from_state",
    "text_state",
]

PARA, INTRO, ITEM = 0, 1, 2
SUBJECT_CHARS = 10  # a sentence's opening: its first this many characters (Chinese)
SUBJECT_WORDS = 5  # ... or words (English)

# A list marker at the start of a line: "- ", "* ", "• ", "1. ", "1) ", "一、", "（1）".
_MARKER = re.compile(r"^\s*(?:[-*\u2022]\s+|\d{1,2}[.)]\s+|[一二三四五六七八九十]{1,3}、|[（(]\d{1,2}[）)]\s*)")
# A label at the start of an item or paragraph: "Flat white: ...", "拿铁（Caffè latte）：...".
_HEAD_EN = re.compile(r"^([^.;:!?]{1,48}?):\s")
_HEAD_ZH = re.compile(r"^([^。；：！？]{1,24}?)：")
# An enumeration written inside one line ("典型流程：一、...；二、..."): the markers go, the
# clauses stay (list markers never appear in the middle of an answer).
_INLINE_MARKER = re.compile(r"(?<=[：；:;。])\s*(?:[一二三四五六七八九十]{1,3}、|[（(]\d{1,2}[）)]\s*)")
_EN_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(])")
_ZH_SENTENCE = re.compile(r"[^。！？]+[。！？]?[”」）)]?")
_LATIN_RUN = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str  # as displayed: list marker stripped
    kinds: int  # facts.* bits
    block: int  # index into ArticleText.blocks
    position: int  # order in the article (0 = the lead sentence)
    flavour: int  # tasting notes it names (jasmine, blueberry, 茉莉...)


@dataclass(frozen=True, slots=True)
class Block:
    """A paragraph line, a list intro or a list item: one or more sentences."""

    role: int  # PARA, INTRO or ITEM
    first: int  # index of its first sentence
    end: int  # one past its last sentence
    list_id: int  # shared by an intro and its items; -1 outside lists
    # Its label ("Flat white", "Pour-over and drip") as the terms of each thing it names;
    # empty when unlabelled. The item is "about" a question that names one of them whole.
    heads: tuple[frozenset[str], ...]
    steps: bool  # an intro announcing steps/recipe/advice, or an item of such a list
    item_kinds: int  # for an intro: the kinds its items carry, together


@dataclass(frozen=True, slots=True)
class ArticleText:
    """One article body in one language, parsed, with the indexes the answer scorer reads
    (all derived from ``sentences`` and ``blocks`` by :func:`text_of`)."""

    sentences: tuple[Sentence, ...]
    blocks: tuple[Block, ...]
    postings: dict[str, tuple[int, ...]]  # term -> sentences containing it
    by_kind: dict[int, tuple[int, ...]]  # kind bit -> sentences carrying it (an intro: its items')
    heads: tuple[tuple[frozenset[str], tuple[int, ...]], ...]  # label segment -> its item's sentences
    items: tuple[tuple[int, int], ...]  # (sentence, list id) of every item sentence in a list
    intros: tuple[tuple[int, int, int], ...]  # (list id, first, end) sentences of each list intro
    multi: tuple[tuple[int, int], ...]  # (first, end) of blocks of more than one sentence
    # What the answer composer tests per sentence, computed here once instead of per question:
    openings: dict[str, tuple[int, ...]]  # term -> sentences whose opening (see opening()) holds it
    totals: tuple[int, ...]  # duration sentences (as by_kind says) giving a whole time (TOTAL_TIME)
    norms: tuple[int, ...]  # sentences giving an ideal / recommended value (NORM_VALUE)
    stripped: tuple[str, ...]  # each sentence's text without its end mark (strip_end)
    paragraph: tuple[int, ...]  # sentences of plain paragraphs (not list intros or items)
    block_texts: tuple[str, ...]  # each block's sentences joined (as an answer shows a whole block)

    def list_blocks(self, list_id: int) -> tuple[int | None, list[int]]:
        """(intro block, item blocks) of a list."""
        intro: int | None = None
        items: list[int] = []
        for i, block in enumerate(self.blocks):
            if block.list_id == list_id:
                if block.role == INTRO:
                    intro = i
                elif block.role == ITEM:
                    items.append(i)
        return intro, items


def strip_end(text: str) -> str:
    """``text`` without its closing punctuation (a list item joined into a sentence)."""
    return text.rstrip().rstrip(".。;；:：").rstrip()


def opening(text: str) -> str:
    """What a sentence opens with, where a definition names its subject ("74110和74112均于..."):
    its first characters and the rest of a Latin word or number cut by them (74110), or its
    first words."""
    if has_cjk(text[:4]):
        cut = _LATIN_RUN.match(text, SUBJECT_CHARS)
        return text[:SUBJECT_CHARS] + (cut.group() if cut else "")
    return " ".join(text.split()[:SUBJECT_WORDS])


def _split(text: str) -> list[str]:
    if has_cjk(text):
        return [s.strip() for s in _ZH_SENTENCE.findall(text) if s.strip()]
    return [s.strip() for s in _EN_SENTENCE_END.split(text) if s.strip()]


def _head(text: str) -> str:
    match = (_HEAD_ZH if has_cjk(text[:30]) else _HEAD_EN).match(text)
    return match.group(1) if match else ""


_HEAD_PARENS = re.compile(r"[（(][^）)]*[）)]")
_HEAD_SPLIT = re.compile(r"\s+(?:and|or)\s+|[,/、和与及或]")


def head_segments(head: str) -> tuple[frozenset[str], ...]:
    """The things a label names, as term sets: "Latte (caffè latte, ...)" -> {latte};
    "Pour-over and drip" -> {pour, over, pourover}, {drip}; "拿铁（Caffè latte）" -> {拿铁}.
    Chinese words count by their bigrams (their single characters are too weak)."""
    segments: list[frozenset[str]] = []
    for part in _HEAD_SPLIT.split(_HEAD_PARENS.sub(" ", head)):
        found = terms(part)
        if any(len(t) > 1 for t in found if has_cjk(t)):
            found = [t for t in found if not has_cjk(t) or len(t) > 1]
        if found:
            segments.append(frozenset(found))
    return tuple(segments)


def _ends_with_colon(text: str) -> bool:
    return text.rstrip().endswith((":", "："))


def parse_body(body: str, *, language: str, places: PlaceNames) -> ArticleText:
    """Parse one body (see the module docstring for the shapes recognised)."""
    # First pass: classify lines into blocks (role, list id, text).
    raw_blocks: list[tuple[int, int, str, bool]] = []  # role, list_id, text, steps
    list_id = -1  # the open list, or -1
    lists = 0
    open_items = 0  # items seen in the open list
    labelled = False  # the open list's items carry labels ("即饮型：...")
    steps = False
    for line in body.split("\n"):
        text = line.strip()
        if not text:
            if list_id >= 0 and open_items:
                list_id = -1  # a blank line ends a list once it has items
            continue
        marker = _MARKER.match(text)
        stripped = _INLINE_MARKER.sub("", text[marker.end() :].strip() if marker else text)
        role = PARA
        if list_id >= 0:
            if marker or open_items == 0 or (labelled and _head(stripped)):
                role = ITEM
            else:
                list_id = -1
        elif marker:
            lists += 1
            list_id, open_items, labelled, steps = lists, 0, False, True
            role = ITEM
        if role == ITEM:
            if open_items == 0:
                labelled = bool(_head(stripped))
            open_items += 1
            raw_blocks.append((ITEM, list_id, stripped, steps or bool(marker and marker.group().strip()[:1].isdigit())))
            continue
        if _ends_with_colon(stripped):
            lists += 1
            list_id, open_items, labelled = lists, 0, False
            steps = steps_intro(_split(stripped)[-1])
            raw_blocks.append((INTRO, list_id, stripped, steps))
            continue
        raw_blocks.append((PARA, -1, stripped, steps_intro(_head(stripped))))

    sentences: list[Sentence] = []
    sentence_terms: list[list[str]] = []
    blocks: list[Block] = []
    for role, lid, text, is_steps in raw_blocks:
        first = len(sentences)
        head = _head(text) if role != INTRO else ""
        for sentence_text in _split(text):
            kinds = sentence_kinds(sentence_text, language=language, places=places)
            if len(sentences) == 0 or (role == ITEM and head and len(sentences) == first):
                kinds |= DEFINITION  # the lead sentence, a labelled item's first sentence
            if is_steps:
                kinds |= STEPS
            sentences.append(Sentence(sentence_text, kinds, len(blocks), len(sentences), flavour_notes(sentence_text)))
            sentence_terms.append(terms(sentence_text))
        if len(sentences) > first:
            blocks.append(Block(role, first, len(sentences), lid, head_segments(head) if head else (), is_steps, 0))
    # An intro carries what its items carry (a table of brew times answers "how long").
    for b, block in enumerate(blocks):
        if block.role == INTRO:
            carried = 0
            for other in blocks:
                if other.list_id == block.list_id and other.role == ITEM:
                    for sentence in sentences[other.first : other.end]:
                        carried |= sentence.kinds
            blocks[b] = Block(block.role, block.first, block.end, block.list_id, block.heads, block.steps, carried)
    return _text_of(tuple(sentences), tuple(blocks), sentence_terms, language)


def _text_of(
    sentences: tuple[Sentence, ...], blocks: tuple[Block, ...], sentence_terms: list[list[str]], language: str
) -> ArticleText:
    """An :class:`ArticleText` with its scoring indexes derived from its sentences and blocks."""
    postings: dict[str, list[int]] = {}
    by_kind: dict[int, list[int]] = {}
    for i, sentence in enumerate(sentences):
        for term in dict.fromkeys(sentence_terms[i]):
            postings.setdefault(term, []).append(i)
        carried = sentence.kinds | blocks[sentence.block].item_kinds
        bit = 1
        while bit <= carried:
            if carried & bit:
                by_kind.setdefault(bit, []).append(i)
            bit <<= 1
    heads: list[tuple[frozenset[str], tuple[int, ...]]] = []
    items: list[tuple[int, int]] = []
    intros: list[tuple[int, int, int]] = []
    multi: list[tuple[int, int]] = []
    for block in blocks:
        span = tuple(range(block.first, block.end))
        heads.extend((segment, span) for segment in block.heads)
        if block.role == ITEM and block.list_id >= 0:
            items.extend((i, block.list_id) for i in span)
        if block.role == INTRO:
            intros.append((block.list_id, block.first, block.end))
        if len(span) > 1:
            multi.append((block.first, block.end))
    listed = {list_id for list_id, _, _ in intros}
    openings: dict[str, list[int]] = {}
    for i, sentence in enumerate(sentences):
        for term in dict.fromkeys(terms(opening(sentence.text))):
            openings.setdefault(term, []).append(i)
    return ArticleText(
        sentences,
        blocks,
        {t: tuple(v) for t, v in postings.items()},
        {k: tuple(v) for k, v in by_kind.items()},
        tuple(heads),
        tuple((i, lid) for i, lid in items if lid in listed),
        tuple(intros),
        tuple(multi),
        {t: tuple(v) for t, v in openings.items()},
        tuple(i for i in by_kind.get(DURATION, ()) if TOTAL_TIME.search(sentences[i].text) is not None),
        tuple(i for i, s in enumerate(sentences) if NORM_VALUE.search(s.text) is not None),
        *_plain_views(sentences, blocks, language),
    )


def _plain_views(
    sentences: tuple[Sentence, ...], blocks: tuple[Block, ...], language: str
) -> tuple[tuple[str, ...], tuple[int, ...], tuple[str, ...]]:
    """The views of the text that cost only string joins to derive (``stripped``, ``paragraph``,
    ``block_texts``): derived again when a prebuilt index is loaded, not stored in it."""
    gap = "" if language == "zh" else " "
    return (
        tuple(strip_end(s.text) for s in sentences),
        tuple(i for i, s in enumerate(sentences) if blocks[s.block].role == PARA),
        tuple(gap.join(s.text for s in sentences[b.first : b.end]) for b in blocks),
    )


# --- the prebuilt index stores parsed bodies as plain tuples (see prebuilt.py) ----------------
TextState = tuple[object, ...]


def text_state(text: ArticleText) -> TextState:
    """``text`` as nested tuples, dicts and frozensets only (what ``marshal`` can store)."""
    return (
        tuple((s.text, s.kinds, s.block, s.position, s.flavour) for s in text.sentences),
        tuple((b.role, b.first, b.end, b.list_id, b.heads, b.steps, b.item_kinds) for b in text.blocks),
        text.postings,
        text.by_kind,
        text.heads,
        text.items,
        text.intros,
        text.multi,
        text.openings,
        text.totals,
        text.norms,
    )


def text_from_state(state: TextState, *, language: str) -> ArticleText:
    """The inverse of :func:`text_state` (``language``: the body's, as :func:`parse_body` was given)."""
    sentences_state, blocks_state, postings, by_kind, heads, items, intros, multi, openings, totals, norms = state
    sentences = tuple(Sentence(*row) for row in sentences_state)  # type: ignore[attr-defined]
    blocks = tuple(Block(*row) for row in blocks_state)  # type: ignore[attr-defined]
    return ArticleText(
        sentences,
        blocks,
        postings,  # type: ignore[arg-type]
        by_kind,  # type: ignore[arg-type]
        heads,  # type: ignore[arg-type]
        items,  # type: ignore[arg-type]
        intros,  # type: ignore[arg-type]
        multi,  # type: ignore[arg-type]
        openings,  # type: ignore[arg-type]
        totals,  # type: ignore[arg-type]
        norms,  # type: ignore[arg-type]
        *_plain_views(sentences, blocks, language),
    )
