"""Text analysis shared by the index and the answer composer: one tokenizer for Chinese and English.

Chinese has no spaces, so CJK runs become character bigrams (the specific signal) plus
unigrams (a weak fallback for one-character words such as 酸 or 豆). Latin runs become
lower-cased words reduced by a small suffix stripper, so "roasted", "roasting" and "roasts"
meet at "roast". Hyphenated words also yield their joined form ("pour-over" -> pour, over,
pourover). Traditional Chinese characters are folded to Simplified (``data/t2s.json``, see
``scripts/build_t2s.py``), so 濃縮咖啡 meets 浓缩咖啡. The same analysis runs over articles and
queries, so whatever it gets wrong it gets wrong on both sides alike.
"""

from __future__ import annotations

import functools
import json
import operator
import re
import unicodedata
from importlib import resources
from typing import Literal

Language = Literal["zh", "en"]

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{_CJK}]")
# A CJK run, or a Latin word (letters/digits, inner hyphens or apostrophes kept for now).
_SEGMENT_RE = re.compile(f"[{_CJK}]+|[a-z0-9]+(?:['\u2019-][a-z0-9]+)*")
_APOSTROPHE_RE = re.compile("['\u2019]")
_COMBINING_RE = re.compile("[\u0300-\u036f]")  # accents on Latin letters (café -> cafe)

# Chinese function words and question scaffolding. They are cut out (leaving a boundary, so
# no bigram spans the gap) because they carry no topic and would otherwise match everywhere.
# Longest first, so 为什么 goes before 什么.
_ZH_STOP_TEXT = (
    # Question scaffolding and pronouns.
    "为什么 为啥 怎么样 怎么办 咋回事 咋样 咋办 是什么 有什么 有哪些 什么样 哪一个 请问 什么 怎么 怎样 如何 哪些 哪个 "
    "哪里 一下 介绍 关于 请你 告诉 我们 你们 他们 它们 这个 那个 这些 那些 以及 或者 还是 就是 "
    "可以 能否 是否 应该 需要 一些 一种 所谓 意思 出来 "
    # The comparison frame (A和B的区别): the topic is A and B, not "difference".
    "有什么不一样 不一样 一样 区别 差别 差异 不同 "
    # "X起来" (drinks/looks like): a frame around the topic, rare enough to outweigh it.
    "喝起来 尝起来 闻起来 看起来 起来 "
    # Single characters only where they are almost never part of a content word.
    "的 了 吗 呢 吧 啊 呀 么 嘛 是 和 与 我 你 他 她 它 很 都 也 请 在"
)
_ZH_STOP = sorted(set(_ZH_STOP_TEXT.split()), key=len, reverse=True)
_ZH_STOP_RE = re.compile("|".join(re.escape(word) for word in _ZH_STOP))

_EN_STOP_TEXT = """a about above after again all also am an and any are as at be because been before being
    between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just me more most my no
    nor not of off on once only or other our ours out own same she should so some such than
    that the their theirs them then there these they this those through to too until up very
    was we were what when where which while who whom why will with would you your yours tell
    please explain describe know want like get give much many way ways make made good best use
    used using vs versus difference differences different differ compare compared comparison
    shouldn wouldn couldn doesn don didn isn aren wasn weren haven hasn can't cannot
    go goes going gone happen happens happened happening anything something thing things
    really actually ever okay ok"""
EN_STOPWORDS = frozenset(_EN_STOP_TEXT.split())
# "over" and "under" are deliberately not stopwords: "pour over", "under extraction".


def detect_language(text: str) -> Language:
    """CJK characters present -> zh, else en."""
    return "zh" if _CJK_RE.search(text) else "en"


def has_cjk(text: str) -> bool:
    return _CJK_RE.search(text) is not None


def _load_t2s() -> dict[int, str]:
    data = resources.files("kai_bridge.knowledge").joinpath("data", "t2s.json").read_text(encoding="utf-8")
    table: dict[str, str] = json.loads(data)["table"]
    return {ord(traditional): simplified for traditional, simplified in table.items()}


T2S = _load_t2s()


def to_simplified(text: str) -> str:
    """``text`` with Traditional Chinese characters folded to Simplified (one per character)."""
    return text.translate(T2S)


def normalize(text: str) -> str:
    """NFKC (full-width -> ASCII), lower case, Traditional -> Simplified, accents stripped."""
    text = unicodedata.normalize("NFKC", text).lower()
    if text.isascii():
        return text
    text = text.translate(T2S)
    if unicodedata.is_normalized("NFD", text):
        return text
    return unicodedata.normalize("NFC", _COMBINING_RE.sub("", unicodedata.normalize("NFD", text)))


# Irregular verb forms that a suffix stripper cannot join to their verb ("where was coffee
# first drunk" must meet "drinking"). Only forms that are not also other words: no "found"
# (founded), "ground" (ground coffee), "left", "lead".
_IRREGULAR = {
    "drunk": "drink", "drank": "drink", "grew": "grow", "grown": "grow", "brought": "bring",
    "made": "make", "took": "take", "taken": "take", "knew": "know", "known": "know", "sold": "sell",
    "bought": "buy", "ate": "eat", "eaten": "eat", "began": "begin", "begun": "begin", "came": "come",
    "went": "go", "gone": "go", "gave": "give", "given": "give", "kept": "keep", "held": "hold",
    "rose": "rise", "risen": "rise", "fell": "fall", "fallen": "fall", "froze": "freeze",
    "frozen": "freeze", "chose": "choose", "chosen": "choose", "spoke": "speak", "written": "write",
    "wrote": "write", "drove": "drive", "driven": "drive", "stood": "stand", "thought": "think",
    # Words whose suffix makes another word: cupping (the tasting protocol) is not a form of cup.
    "cupping": "cupping", "cupper": "cupper", "cuppers": "cuppers",
}


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A deliberately small suffix stripper (plural, -ing, -ed, final -e), plus irregular verbs.

    Not Porter: it only has to make inflections of the same word meet, on both sides.
    """
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses") or (word.endswith("es") and word[-3] in "sxz" and len(word) > 4):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            if not any(ch in "aeiouy" for ch in base):
                break
            word = base
            if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]
            break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


# One index term: (term, weight, surface). Weight < 1 for the weak kind (CJK unigrams);
# surface is the Latin word before stemming, "" for CJK terms. A plain tuple because the
# index builder makes tens of thousands of them and named tuples cost twice as much.
Token = tuple[str, float, str]


UNIGRAM_WEIGHT = 0.25


def _cjk_tokens(run: str, out: list[Token]) -> None:
    for chunk in _ZH_STOP_RE.split(run):
        if len(chunk) == 1:
            # A character standing alone between function words is a word (很酸怎么办 -> 酸).
            out.append((chunk, 1.0, ""))
        elif chunk:
            out.extend([(ch, UNIGRAM_WEIGHT, "") for ch in chunk])
            out.extend([(chunk[i : i + 2], 1.0, "") for i in range(len(chunk) - 1)])


# A number glued to its unit (15g粉250g水, 9bar): the number and the unit, as "15 g" reads.
_NUMBER_UNIT = re.compile(r"(\d+(?:\.\d+)?)(g|kg|mg|ml|l|bar|mm|cm|m|oz)")


def _latin_words(segment: str) -> list[str]:
    """Words of one Latin segment: hyphenated parts (stopwords dropped) plus the joined form.

    An apostrophe ends the word (coffee's -> coffee, what's -> what).
    """
    if segment.isalnum():
        if segment[0].isdigit() and (glued := _NUMBER_UNIT.fullmatch(segment)) is not None:
            return [glued.group(1), glued.group(2)]
        return [] if segment in EN_STOPWORDS else [segment]
    segment = _APOSTROPHE_RE.split(segment, maxsplit=1)[0]
    if "-" not in segment:
        return [] if segment in EN_STOPWORDS else [segment]
    parts = [p for p in segment.split("-") if p]
    words = [p for p in parts if p not in EN_STOPWORDS]
    words.append("".join(parts))
    return words


def tokens(text: str) -> list[Token]:
    """Analyse ``text`` into index terms (see the module docstring)."""
    out: list[Token] = []
    for segment in _SEGMENT_RE.findall(normalize(text)):
        if segment[0] > "\u2fff":  # a CJK run (every CJK character is above U+2FFF, Latin ones below)
            _cjk_tokens(segment, out)
        else:
            out.extend(_latin_tokens(segment))
    return out


@functools.lru_cache(maxsize=65536)
def _latin_tokens(segment: str) -> tuple[Token, ...]:
    """The tokens of one Latin segment (memoised: questions reuse the same few thousand words)."""
    return tuple([(stem(word), 1.0, word) for word in _latin_words(segment)])


def index_terms(text: str) -> tuple[list[str], list[str]]:
    """``(terms, latin_surfaces)`` of ``text``: what :func:`tokens` yields, without weights.

    The index builder's fast path (document side, where every term counts once per
    occurrence): it avoids a tuple per character, which dominated start-up time.
    """
    out: list[str] = []
    surfaces: list[str] = []
    for segment in _SEGMENT_RE.findall(normalize(text)):
        if _CJK_RE.match(segment):
            for chunk in _ZH_STOP_RE.split(segment):
                if chunk:
                    out.extend(chunk)
                    out.extend(map(operator.add, chunk, chunk[1:]))
        else:
            words = _latin_words(segment)
            out.extend([stem(word) for word in words])
            surfaces.extend(words)
    return out, surfaces


def terms(text: str) -> list[str]:
    return index_terms(text)[0]


_EN_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(])")


def sentences(body: str) -> list[str]:
    """Split an article body into sentences (Chinese and English punctuation)."""
    out: list[str] = []
    for paragraph in body.split("\n"):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if has_cjk(paragraph):
            out.extend(s.strip() for s in re.findall(r"[^。！？]+[。！？]?[”」）)]?", paragraph) if s.strip())
        else:
            out.extend(s.strip() for s in _EN_SENTENCE_END.split(paragraph) if s.strip())
    return out
