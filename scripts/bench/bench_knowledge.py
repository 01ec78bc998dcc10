#!/usr/bin/env python3
"""Benchmark the coffee knowledge base: build time, query latency, retrieval quality.

    .venv/bin/python scripts/bench/bench_knowledge.py                 # Markdown tables on stdout
    .venv/bin/python scripts/bench/bench_knowledge.py --compare-fts5  # plus SQLite FTS5 trigram

Build time is the median of ``--builds`` full loads (parse TOML, CQI table, index). Latency
is ``KnowledgeBase.query`` end to end (analysis, ranking, answer composition) over every
labelled query, repeated ``--repeat`` times. Quality is recall@1, recall@3 and MRR against
tests/data/knowledge_queries_*.jsonl; an off-topic query counts as a hit when nothing is
found. ``--compare-fts5`` runs the alternative design (SQLite FTS5, trigram tokenizer,
bm25 with the same field weights) on the same queries, for the record in index.py.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kai_bridge.knowledge import KnowledgeBase  # noqa: E402
from kai_bridge.knowledge.corpus import Article, load_articles, shipped_corpus  # noqa: E402
from kai_bridge.knowledge.index import Index  # noqa: E402
from tests.knowledge.support import Labelled, labelled_queries, recall_at, reciprocal_rank  # noqa: E402


@dataclass
class Quality:
    n: int = 0
    r1: float = 0.0
    r3: float = 0.0
    mrr: float = 0.0

    def add(self, *, r1: float, r3: float, rr: float) -> None:
        self.n += 1
        self.r1 += r1
        self.r3 += r3
        self.mrr += rr

    def row(self, name: str) -> str:
        if not self.n:
            return f"| {name} | 0 | - | - | - |"
        return f"| {name} | {self.n} | {self.r1 / self.n:.3f} | {self.r3 / self.n:.3f} | {self.mrr / self.n:.3f} |"


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _time_builds(count: int) -> tuple[float, float, float]:
    """Medians in ms: full load (wall), full load (CPU of this thread), index only (wall)."""
    full: list[float] = []
    full_cpu: list[float] = []
    index_only: list[float] = []
    articles = load_articles(shipped_corpus())
    for _ in range(count):
        started, started_cpu = time.perf_counter(), time.thread_time()
        KnowledgeBase.load()
        full.append(time.perf_counter() - started)
        full_cpu.append(time.thread_time() - started_cpu)
        started = time.perf_counter()
        Index(articles)
        index_only.append(time.perf_counter() - started)
    return tuple(statistics.median(v) * 1000 for v in (full, full_cpu, index_only))  # type: ignore[return-value]


def _time_queries(
    run: Callable[[str, str], object], queries: list[Labelled], repeat: int, *, clock: Callable[[], float]
) -> list[float]:
    for item in queries:  # warm caches (sentence splits, stems) once
        run(item.query, item.lang)
    samples: list[float] = []
    for _ in range(repeat):
        for item in queries:
            started = clock()
            run(item.query, item.lang)
            samples.append(clock() - started)
    return samples


# --- the alternative: SQLite FTS5 with the trigram tokenizer -------------------------------

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_WORD = re.compile(r"[A-Za-z0-9]{3,}")


class Fts5Trigram:
    """Same articles and field weights, in an in-memory FTS5 table (trigram tokenizer)."""

    def __init__(self, articles: Sequence[Article]) -> None:
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE VIRTUAL TABLE docs USING fts5(id UNINDEXED, names, tags, body, tokenize='trigram')")
        self.db.executemany(
            "INSERT INTO docs VALUES (?, ?, ?, ?)",
            [
                (
                    a.id,
                    "\n".join([a.title_zh, a.title_en, *a.aliases_zh, *a.aliases_en]),
                    " ".join(a.tags),
                    a.body_zh + "\n" + a.body_en,
                )
                for a in articles
            ],
        )

    @staticmethod
    def match_expression(query: str) -> str:
        # Trigrams cannot match shorter strings: each CJK run becomes its 3-character windows
        # (a 2-character run such as 手冲 cannot be searched at all), each Latin word of 3+
        # letters a phrase; any of them may match (OR), bm25 ranks.
        parts: list[str] = []
        for run in _CJK_RUN.findall(query):
            parts.extend(run[i : i + 3] for i in range(len(run) - 2))
        parts.extend(w.lower() for w in _WORD.findall(query))
        return " OR ".join(f'"{p}"' for p in dict.fromkeys(parts))

    def search(self, query: str, k: int) -> list[str]:
        expression = self.match_expression(query)
        if not expression:
            return []
        rows = self.db.execute(
            "SELECT id FROM docs WHERE docs MATCH ? ORDER BY bm25(docs, 0.0, 3.0, 1.5, 1.0) LIMIT ?", (expression, k)
        ).fetchall()
        return [row[0] for row in rows]


def _fts_quality(fts: Fts5Trigram, queries: list[Labelled]) -> tuple[Quality, float]:
    quality = Quality()
    off_topic_clean = [0, 0]
    for item in queries:
        ids = fts.search(item.query, 3)
        if not item.expected:
            off_topic_clean[0] += not ids
            off_topic_clean[1] += 1
            continue
        r1 = sum(1 for e in item.expected if e in ids[:1]) / min(len(item.expected), 1)
        r3 = sum(1 for e in item.expected if e in ids[:3]) / min(len(item.expected), 3)
        rr = next((1 / (i + 1) for i, found in enumerate(ids) if found in item.expected), 0.0)
        quality.add(r1=r1, r3=r3, rr=rr)
    return quality, off_topic_clean[0] / max(1, off_topic_clean[1])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--builds", type=int, default=15, help="full loads to time (median)")
    parser.add_argument("--repeat", type=int, default=20, help="passes over the labelled queries")
    parser.add_argument("--compare-fts5", action="store_true", help="also measure SQLite FTS5 trigram")
    parser.add_argument("--misses", action="store_true", help="list the queries below recall@3 = 1")
    args = parser.parse_args(argv)

    queries = labelled_queries()
    kb = KnowledgeBase.load()
    build_ms, build_cpu_ms, index_ms = _time_builds(args.builds)

    def run(query: str, lang: str) -> object:
        return kb.query(query, top_k=3, language=lang)  # type: ignore[arg-type]

    latencies = _time_queries(run, queries, args.repeat, clock=time.perf_counter)
    # CPU time of this thread: what a query costs, whatever else shares the machine.
    cpu = _time_queries(run, queries, args.repeat, clock=time.thread_time)

    groups: dict[str, Quality] = {"all": Quality(), "zh": Quality(), "en": Quality()}
    misses: list[str] = []
    for item in queries:
        answer = kb.query(item.query, top_k=3, language=item.lang)
        r1, r3, rr = recall_at(answer, item.expected, 1), recall_at(answer, item.expected, 3), 0.0
        rr = reciprocal_rank(answer, item.expected)
        for key in ("all", item.lang, f"set:{item.set}"):
            groups.setdefault(key, Quality()).add(r1=r1, r3=r3, rr=rr)
        if r3 < 1.0:
            misses.append(f"- [{item.set}/{item.lang}] {item.query} -> {[p.article_id for p in answer.passages]}")

    print(f"## Knowledge base ({kb.article_count} articles, {len(queries)} labelled queries)\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| build, full load (median of {args.builds}) | {build_ms:.1f} ms (CPU {build_cpu_ms:.1f} ms) |")
    print(f"| build, index only (median of {args.builds}) | {index_ms:.1f} ms |")
    print(f"| query p50 ({len(latencies)} queries) | {_percentile(latencies, 0.50) * 1000:.3f} ms |")
    print(f"| query p99 | {_percentile(latencies, 0.99) * 1000:.3f} ms |")
    print(f"| query max | {max(latencies) * 1000:.3f} ms |")
    print(f"| query CPU p50 / p99 | {_percentile(cpu, 0.50) * 1000:.3f} / {_percentile(cpu, 0.99) * 1000:.3f} ms |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"| machine | {os.cpu_count()} CPUs, load average {load:.2f} during the run |")
    print()
    print("| queries | n | recall@1 | recall@3 | MRR |")
    print("|---|---|---|---|---|")
    for key in ("all", "zh", "en", "set:origins", "set:topics", "set:none"):
        if key in groups:
            print(groups[key].row(key))
    if args.misses and misses:
        print("\nMisses (recall@3 < 1):\n")
        print("\n".join(misses))

    if args.compare_fts5:
        articles = load_articles(shipped_corpus())
        builds: list[float] = []
        for _ in range(args.builds):
            started = time.perf_counter()
            fts = Fts5Trigram(articles)
            builds.append(time.perf_counter() - started)
        fts_latency = _time_queries(lambda q, _lang: fts.search(q, 3), queries, args.repeat, clock=time.perf_counter)
        fts_quality, fts_clean = _fts_quality(fts, queries)
        ours = Quality()
        ours_clean = [0, 0]
        for item in queries:
            answer = kb.query(item.query, top_k=3, language=item.lang)
            if item.expected:
                ours.add(
                    r1=recall_at(answer, item.expected, 1),
                    r3=recall_at(answer, item.expected, 3),
                    rr=reciprocal_rank(answer, item.expected),
                )
            else:
                ours_clean[0] += not answer.found
                ours_clean[1] += 1
        print("\n## Design comparison (answerable queries; off-topic = share returning nothing)\n")
        print("| engine | build | p50 | p99 | recall@1 | recall@3 | MRR | off-topic clean |")
        print("|---|---|---|---|---|---|---|---|")
        for name, b_ms, lat, qual, clean in (
            ("BM25F bigrams+stems (chosen)", build_ms, latencies, ours, ours_clean[0] / max(1, ours_clean[1])),
            ("SQLite FTS5 trigram + bm25", statistics.median(builds) * 1000, fts_latency, fts_quality, fts_clean),
        ):
            print(
                f"| {name} | {b_ms:.1f} ms | {_percentile(lat, 0.5) * 1000:.3f} ms | "
                f"{_percentile(lat, 0.99) * 1000:.3f} ms | {qual.r1 / qual.n:.3f} | {qual.r3 / qual.n:.3f} | "
                f"{qual.mrr / qual.n:.3f} | {clean:.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
