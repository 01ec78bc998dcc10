#!/usr/bin/env python3
"""Benchmark the coffee knowledge base: answers, retrieval quality, query latency, load time.

    .venv/bin/python scripts/bench/bench_knowledge.py                 # Markdown tables on stdout
    .venv/bin/python scripts/bench/bench_knowledge.py --compare-fts5  # plus SQLite FTS5 trigram
    .venv/bin/python scripts/bench/bench_knowledge.py --misses        # tuning-set misses too
    .venv/bin/python scripts/bench/bench_knowledge.py --against main  # speed only, vs main's engine

- Answers: the share of answers that carry the fact asked for (tests/data/knowledge_answers_
  {tuning,heldout,heldout2,heldout3,heldout4,heldout5}.jsonl), per language and per kind of question, and
  how many end on a colon or show a list marker; the "first sentence" row: the share whose
  first sentence carries the fact (the answer leads with it). Held-out misses are never printed: the set
  is not for tuning.
- Retrieval: recall@1, recall@3 and MRR against tests/data/knowledge_queries_*.jsonl; an
  off-topic query counts as a hit when nothing is found.
- Latency, CPU time of this thread (what a query costs, whatever else shares the machine)
  and wall time: "new question" is every labelled query with a suffix no earlier call had
  (so no answer is reused; per-word memos warm, as in a running server), "cold natural" is
  each held-out question asked once in a fresh base (nothing warm at all).
- Load: a full build (TOML + index) against loading the prebuilt index from a cache
  directory, and the candidate cache formats (marshal, pickle, JSON) on the same state.

``--against REV`` measures speed only: this tree's engine against the one of commit REV
(``git archive``), in alternating subprocesses (REV, this tree, REV, ...; each loads its
prebuilt index, warms as above, freezes the collector and times one pass of new questions),
so both sides see the same machine. Three workloads: the labelled queries with a new suffix,
the 16 questions of bench_mcp.py with a new suffix, and the same labelled pass with 4 MB of
memory swept between questions (what a server does between two calls: the engine is then
served from colder caches). ``--against 3664f36`` is the engine issue 12 was filed against: its
goal, p50 <= 0.25 ms where that engine took 0.52, is a ratio of 0.48x on any machine.

``--compare-fts5`` runs the alternative design (SQLite FTS5, trigram tokenizer, bm25 with
the same field weights) on the same queries, for the record in index.py.
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import marshal
import os
import pickle
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine_export import export_engine

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from kai_bridge.knowledge import KnowledgeBase  # noqa: E402
from kai_bridge.knowledge.corpus import Article, load_articles, shipped_corpus  # noqa: E402
from kai_bridge.knowledge.index import Index  # noqa: E402
from tests.knowledge.support import (  # noqa: E402
    ANSWER_KINDS,
    ANSWER_SPLITS,
    SPLIT_TITLES,
    TUNING_MATERIAL,
    Labelled,
    answer_cases,
    carries_fact,
    ends_on_colon,
    has_list_marker,
    labelled_queries,
    leads_with_fact,
    offtopic_questions,
    recall_at,
    reciprocal_rank,
)


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


def _time_builds(count: int) -> dict[str, float]:
    """Medians in ms: a full build (TOML + index), a load from the prebuilt cache, the index alone."""
    full: list[float] = []
    cached: list[float] = []
    index_only: list[float] = []
    articles = load_articles(shipped_corpus())
    with tempfile.TemporaryDirectory(prefix="bench-knowledge-") as tmp:
        KnowledgeBase.load(cache_dir=Path(tmp))  # write the cache once
        for _ in range(count):
            started = time.perf_counter()
            KnowledgeBase.load()
            full.append(time.perf_counter() - started)
            started = time.perf_counter()
            KnowledgeBase.load(cache_dir=Path(tmp))
            cached.append(time.perf_counter() - started)
            gc.unfreeze()  # the cache load freezes what it read; let this loop's copies go
            started = time.perf_counter()
            Index(articles)
            index_only.append(time.perf_counter() - started)
    return {k: statistics.median(v) * 1000 for k, v in (("full", full), ("cached", cached), ("index", index_only))}


def _formats(count: int) -> list[tuple[str, int, float]]:
    """(format, bytes, median ms to load the state): the candidates for the prebuilt index."""
    state = Index(load_articles(shipped_corpus())).state()

    def to_json(value: object) -> object:
        if isinstance(value, dict):
            return [[to_json(k), to_json(v)] for k, v in value.items()]
        if isinstance(value, (list, tuple, set, frozenset)):
            return [to_json(v) for v in value]
        return value

    blobs = {
        "marshal": marshal.dumps(state),
        "pickle (protocol 5)": pickle.dumps(state, protocol=5),
        "JSON (before turning lists back into tuples/sets)": json.dumps(to_json(state)).encode(),
    }
    loaders = {"marshal": marshal.loads, "pickle (protocol 5)": pickle.loads}
    rows: list[tuple[str, int, float]] = []
    for name, blob in blobs.items():
        load = loaders.get(name, json.loads)
        times: list[float] = []
        for _ in range(count):
            gc.disable()
            started = time.perf_counter()
            load(blob)
            times.append(time.perf_counter() - started)
            gc.enable()
        rows.append((name, len(blob), statistics.median(times) * 1000))
    return rows


def _time_queries(
    run: Callable[[str, str], object], queries: list[Labelled], repeat: int, *, clock: Callable[[], float]
) -> list[float]:
    """Each labelled query ``repeat`` times, each time with a suffix no call has seen (a new question)."""
    samples: list[float] = []
    for rep in range(repeat):
        for item in queries:
            question = f"{item.query} {rep}"
            started = clock()
            run(question, item.lang)
            samples.append(clock() - started)
    return samples


def _cold_natural(clock: Callable[[], float]) -> list[float]:
    """Every held-out question asked once, in a base loaded for it (nothing warm at all)."""
    kb = KnowledgeBase.load()
    gc.collect()
    gc.freeze()
    samples: list[float] = []
    for case in answer_cases("heldout"):
        started = clock()
        kb.query(case.query, language=case.lang)
        samples.append(clock() - started)
    gc.unfreeze()
    return samples


# One pass of one workload in a subprocess, with the engine under test first on sys.path:
# argv = data dir, cache dir, workload, pass number; prints the CPU seconds per question as JSON.
_WORKER = r"""
import gc, json, sys, time
from pathlib import Path
from kai_bridge.knowledge import KnowledgeBase

data, cache, workload, number = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
labelled = []
for name in ("origins", "topics", "none"):
    path = data / f"knowledge_queries_{name}.jsonl"
    if path.exists():
        labelled += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
questions = [(row["query"], row["lang"]) for row in labelled]
if workload == "mcp":  # as bench_mcp.py asks them: 64 calls, the language detected
    questions = [(q, None) for q in json.loads(sys.argv[5])] * 4
try:
    kb = KnowledgeBase.load(cache_dir=cache)
except TypeError:  # an engine from before the prebuilt index (e.g. 3664f36, when issue 12 was filed)
    kb = KnowledgeBase.load()
for query, lang in questions:
    kb.query(query, top_k=3, language=lang)
gc.collect()
gc.freeze()
sweep = bytearray(4 << 20) if workload == "swept" else None
samples = []
for i, (query, lang) in enumerate(questions):
    if sweep is not None:
        sweep[:] = bytes(len(sweep))  # 4 MB written: the caches hold other data now
    question = f"{query} {number}-{i}"
    started = time.thread_time()
    kb.query(question, top_k=3, language=lang)
    samples.append(time.thread_time() - started)
print(json.dumps(samples))
"""


def _against(rev: str, rounds: int) -> list[str]:
    """Speed of this tree's engine against commit ``rev``'s (see the module docstring)."""
    # bench_mcp.py's questions, read from its source (importing it would start its clients' imports).
    source = ast.parse((REPO / "scripts" / "bench" / "bench_mcp.py").read_text(encoding="utf-8"))
    listed = next(
        node.value
        for node in source.body
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "QUESTIONS" for t in node.targets)
    )
    mcp_questions = json.dumps(ast.literal_eval(listed))
    rows: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-knowledge-against-") as tmp:
        base = export_engine(rev, Path(tmp) / "base")
        trees = {rev: base, "this tree": REPO}
        for tree in trees.values():  # build each prebuilt index once, untimed
            _run_pass(tree, Path(tmp) / f"cache-{tree.name}", "labelled", 0, mcp_questions)
        for number in range(rounds):
            for workload in ("labelled", "mcp", "swept"):
                for name, tree in trees.items():
                    samples = _run_pass(tree, Path(tmp) / f"cache-{tree.name}", workload, number + 1, mcp_questions)
                    rows.setdefault((workload, name), []).extend(samples)
    titles = {
        "labelled": "labelled queries, new suffix",
        "mcp": "bench_mcp's 16 questions x 4, new suffix, language detected",
        "swept": "labelled queries, new suffix, 4 MB swept before each",
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out = [
        f"### Speed against {rev} (alternating processes, {rounds} rounds, CPU time per question; "
        f"load average {load:.2f} at the end)",
        "",
        f"| workload | n | {rev} p50 / p99 ms | this tree p50 / p99 ms | p50 ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for workload, title in titles.items():
        before, after = rows[(workload, rev)], rows[(workload, "this tree")]
        out.append(
            f"| {title} | {len(after)} | {_percentile(before, 0.5) * 1000:.3f} / {_percentile(before, 0.99) * 1000:.3f} | "
            f"{_percentile(after, 0.5) * 1000:.3f} / {_percentile(after, 0.99) * 1000:.3f} | "
            f"{_percentile(after, 0.5) / _percentile(before, 0.5):.2f}x |"
        )
    return out


def _run_pass(tree: Path, cache: Path, workload: str, number: int, mcp_questions: str) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, str(REPO / "tests" / "data"), str(cache), workload, str(number), mcp_questions],
        cwd=tree, env=env, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"a timing pass failed in {tree}:\n{done.stderr}")
    samples: list[float] = json.loads(done.stdout)
    return samples


def _answer_tables(kb: KnowledgeBase, *, show_misses: bool) -> list[str]:
    out = ["### Answers that carry the fact asked for", ""]
    rows: dict[tuple[str, str], list[int]] = {}
    colon = marker = 0
    misses: list[str] = []
    for split in ANSWER_SPLITS:
        for case in answer_cases(split):
            answer = kb.query(case.query, language=case.lang)
            good = carries_fact(answer, case)
            first = rows.setdefault((split, "first sentence"), [0, 0])
            first[0] += leads_with_fact(answer, case)
            first[1] += 1
            colon += ends_on_colon(answer)
            marker += has_list_marker(answer)
            for key in ("all", case.lang, case.kind):
                counts = rows.setdefault((split, key), [0, 0])
                counts[0] += good
                counts[1] += 1
            if split in TUNING_MATERIAL and not good:
                misses.append(f"- [{split}/{case.lang}/{case.kind}] {case.query} -> {answer.answer[:160]!r}")

    def cell(split: str, key: str) -> str:
        hit, n = rows.get((split, key), [0, 0])
        return f"{hit}/{n} = {hit / n:.3f}" if n else "-"

    out += ["| questions | " + " | ".join(SPLIT_TITLES[s] for s in ANSWER_SPLITS) + " |"]
    out += ["|---|" + "---:|" * len(ANSWER_SPLITS)]
    for key in ("all", "zh", "en", *ANSWER_KINDS, "first sentence"):
        out.append(f"| {key} | " + " | ".join(cell(s, key) for s in ANSWER_SPLITS) + " |")
    out += ["", f"- answers ending on a colon: {colon}; with a list marker: {marker} (all sets)"]
    offtopic = offtopic_questions()
    if offtopic:
        refused = sum(not kb.query(query, language=lang).found for query, lang in offtopic)
        out.append(f"- off-topic questions of the answer sets answered found=false: {refused}/{len(offtopic)}")
    if show_misses and misses:
        out += ["", "Misses of the tuning material (" + ", ".join(SPLIT_TITLES[s] for s in TUNING_MATERIAL) + "):", "", *misses]
    return out


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
    parser.add_argument("--builds", type=int, default=7, help="loads to time (median)")
    parser.add_argument("--repeat", type=int, default=5, help="passes over the labelled queries")
    parser.add_argument("--compare-fts5", action="store_true", help="also measure SQLite FTS5 trigram")
    parser.add_argument("--misses", action="store_true", help="list retrieval misses and the tuning material's answer misses")
    parser.add_argument("--against", metavar="REV", help="speed only: this engine against commit REV's")
    parser.add_argument("--rounds", type=int, default=6, help="alternations for --against")
    args = parser.parse_args(argv)
    if args.against:
        print("\n".join(_against(args.against, args.rounds)))
        return 0

    queries = labelled_queries()
    kb = KnowledgeBase.load()
    builds = _time_builds(args.builds)
    formats = _formats(args.builds)
    # The runtime freezes the long-lived objects out of the collector's scans; do the same.
    gc.collect()
    gc.freeze()

    def run(query: str, lang: str) -> object:
        return kb.query(query, top_k=3, language=lang)  # type: ignore[arg-type]

    for item in queries:  # warm what a running server has warm (regexes, per-word memos)
        run(item.query, item.lang)
    latencies = _time_queries(run, queries, args.repeat, clock=time.perf_counter)
    cpu = _time_queries(run, queries, args.repeat, clock=time.thread_time)
    gc.unfreeze()
    cold_cpu = _cold_natural(time.thread_time)

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

    def ms(values: Sequence[float], q: float) -> str:
        return f"{_percentile(values, q) * 1000:.3f}"

    print(f"## Knowledge base ({kb.article_count} articles, {len(queries)} labelled queries)\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| load, full build: TOML + index (median of {args.builds}) | {builds['full']:.1f} ms |")
    print(f"| load, prebuilt index from the cache dir (median of {args.builds}) | {builds['cached']:.1f} ms |")
    print(f"| build, index only | {builds['index']:.1f} ms |")
    print(f"| new question, CPU p50 / p99 ({len(cpu)} queries) | {ms(cpu, 0.5)} / {ms(cpu, 0.99)} ms |")
    print(f"| new question, wall p50 / p99 / max | {ms(latencies, 0.5)} / {ms(latencies, 0.99)} / "
          f"{max(latencies) * 1000:.3f} ms |")
    print(f"| cold natural question (held-out, each once, fresh base), CPU p50 / p99 ({len(cold_cpu)}) | "
          f"{ms(cold_cpu, 0.5)} / {ms(cold_cpu, 0.99)} ms |")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"| machine | {os.cpu_count()} CPUs, load average {load:.2f} during the run |")
    print()
    print("| prebuilt index format | bytes | load (median, collector paused) |")
    print("|---|---:|---:|")
    for name, size, load_ms in formats:
        print(f"| {name} | {size:,} | {load_ms:.1f} ms |")
    print()
    print("| queries | n | recall@1 | recall@3 | MRR |")
    print("|---|---|---|---|---|")
    for key in ("all", "zh", "en", "set:origins", "set:topics", "set:none"):
        if key in groups:
            print(groups[key].row(key))
    print()
    print("\n".join(_answer_tables(kb, show_misses=args.misses)))
    if args.misses and misses:
        print("\nRetrieval misses (recall@3 < 1):\n")
        print("\n".join(misses))

    if args.compare_fts5:
        articles = load_articles(shipped_corpus())
        fts_builds: list[float] = []
        for _ in range(args.builds):
            started = time.perf_counter()
            fts = Fts5Trigram(articles)
            fts_builds.append(time.perf_counter() - started)
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
            ("BM25F bigrams+stems (chosen)", builds["full"], latencies, ours, ours_clean[0] / max(1, ours_clean[1])),
            ("SQLite FTS5 trigram + bm25", statistics.median(fts_builds) * 1000, fts_latency, fts_quality, fts_clean),
        ):
            print(
                f"| {name} | {b_ms:.1f} ms | {_percentile(lat, 0.5) * 1000:.3f} ms | "
                f"{_percentile(lat, 0.99) * 1000:.3f} ms | {qual.r1 / qual.n:.3f} | {qual.r3 / qual.n:.3f} | "
                f"{qual.mrr / qual.n:.3f} | {clean:.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
