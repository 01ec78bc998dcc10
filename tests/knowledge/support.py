"""Shared helpers for the knowledge tests: the labelled query sets and the recall metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kai_bridge.knowledge import KnowledgeAnswer

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
