"""Shared helpers for the knowledge tests: the labelled query sets and the recall metrics."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kai_bridge.knowledge import KnowledgeAnswer, KnowledgeBrief

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
QUERY_SETS = ("origins", "topics", "none")


@dataclass(frozen=True)
class Labelled:
    set: str
    query: str
    lang: Literal["zh", "en"]
    expected: tuple[str, ...]


def labelled_queries() -> list[Labelled]:
    """Every labelled query present (files arrive in batches, so a missing set is skipped)."""
    out: list[Labelled] = []
    for name in QUERY_SETS:
        path = DATA / f"knowledge_queries_{name}.jsonl"
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out.append(Labelled(name, row["query"], row["lang"], tuple(row["expected"])))
    return out


def offtopic_questions() -> list[tuple[str, Literal["zh", "en"]]]:
    """The off-topic questions written with the answer sets (knowledge_offtopic_*.jsonl):
    (query, lang), each to be answered found=false with what the base covers."""
    out: list[tuple[str, Literal["zh", "en"]]] = []
    for path in sorted(DATA.glob("knowledge_offtopic_*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out.append((row["query"], row["lang"]))
    return out


def recall_at(answer: KnowledgeAnswer, expected: tuple[str, ...], k: int) -> float:
    """Share of the expected articles in the top k; for an off-topic query, 1 if nothing found."""
    if not expected:
        return 0.0 if answer.found else 1.0
    top = [p.article_id for p in answer.passages[:k]]
    return sum(1 for e in expected if e in top) / min(len(expected), k)


def reciprocal_rank(answer: KnowledgeAnswer, expected: tuple[str, ...]) -> float:
    if not expected:
        return 0.0 if answer.found else 1.0
    for rank, passage in enumerate(answer.passages, start=1):
        if passage.article_id in expected:
            return 1.0 / rank
    return 0.0


# --- answer-level evaluation ---------------------------------------------------------------

ANSWER_SPLITS = ("tuning", "heldout", "heldout2", "heldout3", "heldout4", "heldout5", "heldout6", "heldout7", "heldout8")
# How the tables name them: held-out 1 was written before any tuning, held-out 2 (from the
# corpus text) before the second round of changes, held-out 3 (from the corpus text, short and
# colloquial, zh-heavy, weighted to definitions, durations, causes and people) before the third
# round; held-out 4 (from the corpus text, 238 questions, facts the other sets mostly do not ask
# for) before the fourth. From the fourth round on, held-out 2 and 3 are tuning material; held-out
# 1 and 4 are never tuned on. Held-out 5 (from the corpus text, 150 short colloquial questions,
# zh and en, on (fact, article) pairs no other set uses, mostly origins) was written before the
# fifth round (issue 12) and is never tuned on. Held-out 6 (from the corpus text only, 218 short
# colloquial questions, zh and en, 7 in Traditional Chinese, every article, no (fact, article) pair
# of another set) was written blind from the corpus text (its writer never ran the engine nor read
# its code) while the sixth round was under way; it is tuning material from the sixth round on,
# with its 21 off-topic questions (knowledge_offtopic_heldout6.jsonl). Held-out 7 (164 plain
# factual questions, zh and en, 5 in Traditional Chinese, 87 of the 88 articles, as an outside
# evaluator would write them) was written blind from the corpus text at the start of the sixth
# round and kept from the sessions that tuned: only its rates were read, by the lead, on the engine
# before the sixth round (151/164 = 0.921) and after each round; it is never tuned on. One
# question its writer wrote word for word as held-out 6's did (全世界一年产多少咖啡) was taken
# out of it: held-out 6 is tuning material. Held-out 8 (plain factual questions, zh incl. 5 in
# Traditional Chinese and en) was written blind from the corpus text at the start of the ninth
# round (stop 16) and kept from the session that tuned; of its writer's 160 questions, the 25 that
# another set asks word for word (case and end mark aside) were taken out, which leaves 135 (72 zh,
# 63 en, 83 articles): 129/135 = 0.956 on the engine the round started from (b97a9d8); never tuned on.
# The splits whose misses may be read and tuned on (held-out 1, 5, 7 and 8: their rates only).
TUNING_MATERIAL = ("tuning", "heldout2", "heldout3", "heldout4", "heldout6")
SPLIT_TITLES = {
    "tuning": "tuning",
    "heldout": "held-out 1",
    "heldout2": "held-out 2",
    "heldout3": "held-out 3",
    "heldout4": "held-out 4",
    "heldout5": "held-out 5",
    "heldout6": "held-out 6",
    "heldout7": "held-out 7",
    "heldout8": "held-out 8",
}
# Kinds of question the labelled answer sets use (what the question asks for).
ANSWER_KINDS = (
    "duration",
    "temperature",
    "ratio",
    "quantity",
    "date",
    "place",
    "person",
    "definition",
    "steps",
    "comparison",
    "cause",
    "profile",
)

_DASHES = re.compile("[\u2010-\u2015\u2212~\uff5e]")
_SPACES = re.compile(r"\s+")
# A list marker inside a line of prose: "- ", "1. ", "三、" after a sentence or clause end.
_MID_MARKER = re.compile(
    r"(?<!\d)[.:;!?]\s+(?:[-\u2022]\s|\d{1,2}\.\s)|[。；：！？]\s*(?:[-\u2022]\s|\d{1,2}\.\s|[一二三四五六七八九十]{1,3}、)"
)
_LINE_MARKER = re.compile(r"^\s*(?:[-\u2022]\s|\d+\.\s|[一二三四五六七八九十]+、)")


@dataclass(frozen=True)
class AnswerCase:
    split: str
    query: str
    lang: Literal["zh", "en"]
    kind: str
    facts: tuple[str, ...]  # any one of them must be in the answer
    expected: tuple[str, ...]  # the articles that carry the fact


def answer_cases(split: str) -> list[AnswerCase]:
    """The labelled answer set ``split`` (one of :data:`ANSWER_SPLITS`)."""
    path = DATA / f"knowledge_answers_{split}.jsonl"
    out: list[AnswerCase] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append(
                AnswerCase(split, row["query"], row["lang"], row["kind"], tuple(row["facts"]), tuple(row["expected"]))
            )
    return out


def fact_text(text: str) -> str:
    """What fact matching compares: NFKC, lower case, one kind of dash, single spaces."""
    return _SPACES.sub(" ", _DASHES.sub("-", unicodedata.normalize("NFKC", text).lower()))


def carries_fact(answer: KnowledgeAnswer | KnowledgeBrief, case: AnswerCase) -> bool:
    """The answer text (titles of its sources taken out) contains one of the case's facts."""
    return _says_fact(answer.answer, answer, case)


def _says_fact(text: str, answer: KnowledgeAnswer | KnowledgeBrief, case: AnswerCase) -> bool:
    """``text`` (part of ``answer``), the titles of the answer's sources taken out, contains one
    of the case's facts."""
    for passage in answer.passages:
        text = text.replace(passage.title, " ")
    folded = fact_text(text)
    return any(fact_text(fact) in folded for fact in case.facts)


_FIRST_SENTENCE = re.compile(r"(?<=[.!?。！？])\s*")


def leads_with_fact(answer: KnowledgeAnswer | KnowledgeBrief, case: AnswerCase) -> bool:
    """The answer's first sentence (titles of its sources taken out) contains one of the case's facts."""
    return _says_fact(_FIRST_SENTENCE.split(answer.answer.split("\n")[0], maxsplit=1)[0], answer, case)


def ends_on_colon(answer: KnowledgeAnswer | KnowledgeBrief) -> bool:
    return any(line.rstrip().endswith((":", "：")) for line in answer.answer.splitlines() if line.strip())


def has_list_marker(answer: KnowledgeAnswer | KnowledgeBrief) -> bool:
    """A list marker at the start of a line or in the middle of prose."""
    return any(_MID_MARKER.search(line) or _LINE_MARKER.match(line) for line in answer.answer.splitlines())
