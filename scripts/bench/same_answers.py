#!/usr/bin/env python3
"""Check that the knowledge engine of this tree answers exactly as another commit's does.

    .venv/bin/python scripts/bench/same_answers.py            # against main
    .venv/bin/python scripts/bench/same_answers.py --base REV  # against any commit

Speed work on the engine (kai_bridge/knowledge) must not change a single answer. This runs
every question of the labelled query and answer sets (tests/data/knowledge_*.jsonl) through
both engines, each in its own subprocess (the base one imported from ``git archive REV``),
in several shapes: as written with its language, with the language detected, with a suffix
no other call had (what the benchmarks call a new question), and with top_k 1 and 5. It
compares the whole result (the tool's brief may leave fields out; what it keeps must be equal) (from an index loaded from a prebuilt cache, and checked against one
built in memory) (``KnowledgeAnswer`` and the tool's ``brief()`` as JSON, scores
included) plus the query plan and hits, byte for byte, and prints the first differences.
Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from engine_export import export_engine

REPO = Path(__file__).resolve().parents[2]

# Run in each subprocess, with the engine to dump first on sys.path.
_DUMP = r"""
import json, sys
from pathlib import Path
from kai_bridge.knowledge import KnowledgeBase

data = Path(sys.argv[1])
questions = []
for path in sorted(data.glob("knowledge_*.jsonl")):
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            questions.append((row["query"], row["lang"]))
import tempfile
fresh = KnowledgeBase.load()  # built in memory
cache = tempfile.mkdtemp(prefix="same-answers-cache-")
KnowledgeBase.load(cache_dir=Path(cache))  # builds and saves the prebuilt index
kb = KnowledgeBase.load(cache_dir=Path(cache))  # loads it, as a server does
out = sys.stdout
for number, (query, lang) in enumerate(questions):
    for variant, text, language, top_k in (
        ("as written", query, lang, 3),
        ("detected", query, None, 3),
        ("new suffix", f"{query} {number}", lang, 3),
        ("top_k 1", query, lang, 1),
        ("top_k 5", query, None, 5),
    ):
        answer = kb.query(text, top_k=top_k, language=language)
        record = {
            "q": text, "variant": variant,
            "answer": answer.model_dump(mode="json"),
            "brief": answer.brief().model_dump(mode="json"),
        }
        if variant == "as written":
            from kai_bridge.knowledge.facts import name_text, question_kinds, strip_scaffolding
            from kai_bridge.knowledge.text import to_simplified
            folded = to_simplified(text)
            kinds, primary = question_kinds(folded)
            plan = kb.index.plan(name_text(text, kinds=kinds), analysed=strip_scaffolding(folded, kinds=kinds, primary=primary))
            hits = kb.index.search(plan, limit=5)
            record["plan"] = repr((sorted((t.term, t.weight, t.idf, t.alternatives) for t in plan.terms),
                                   sorted(plan.weights.items()), sorted(plan.expansion.items()),
                                   plan.corrections, plan.units, plan.content_weight))
            record["hits"] = repr([(h.doc, h.score, h.raw, h.coverage, h.alias, h.named) for h in hits])
        if variant in ("as written", "new suffix"):
            again = fresh.query(text, top_k=top_k, language=language)
            if again.model_dump(mode="json") != record["answer"]:
                record["fresh build differs"] = again.model_dump(mode="json")
        out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
"""


def _dump(root: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONHASHSEED": "0"}
    done = subprocess.run(
        [sys.executable, "-c", _DUMP, str(REPO / "tests" / "data")],
        cwd=root, env=env, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the dump failed in {root}:\n{done.stderr}")
    return done.stdout.splitlines()


def _within(ours: object, base: object) -> bool:
    """``ours`` is ``base`` or, for dicts, ``base`` with some keys left out (a leaner brief)."""
    if isinstance(ours, dict) and isinstance(base, dict):
        return ours.keys() <= base.keys() and all(_within(value, base[key]) for key, value in ours.items())
    if isinstance(ours, list) and isinstance(base, list):
        return len(ours) == len(base) and all(_within(o, b) for o, b in zip(ours, base, strict=True))
    return ours == base


def _same(base: dict[str, object], ours: dict[str, object]) -> bool:
    """Everything equal, except that the tool's brief may leave fields of the base's out."""
    return base.keys() == ours.keys() and all(
        _within(ours[key], value) if key == "brief" else ours[key] == value for key, value in base.items()
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--base", default="main", help="the commit to compare with (default: main)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="same-answers-") as tmp:
        base = _dump(export_engine(args.base, Path(tmp)))
    ours = _dump(REPO)
    if len(base) != len(ours):
        print(f"different number of results: base {len(base)}, this tree {len(ours)}")
        return 1
    differing = [(b, o) for b, o in zip(base, ours, strict=True) if not _same(json.loads(b), json.loads(o))]
    for b, o in differing[:5]:
        before, after = json.loads(b), json.loads(o)
        print(f"- {before['variant']}: {before['q']!r}")
        for key in before:
            if before[key] != after.get(key):
                print(f"    {key}:\n      base: {json.dumps(before[key], ensure_ascii=False)[:400]}\n"
                      f"      ours: {json.dumps(after.get(key), ensure_ascii=False)[:400]}")
    print(f"{len(ours)} results compared with {args.base}: {len(differing)} differ")
    return 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
