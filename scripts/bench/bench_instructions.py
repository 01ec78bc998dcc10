#!/usr/bin/env python3
"""Count the CPU instructions the knowledge engine spends on one new question (callgrind).

    .venv/bin/python scripts/bench/bench_instructions.py                # this tree
    .venv/bin/python scripts/bench/bench_instructions.py --against REV  # and commit REV's engine

Timings on a shared 2-core machine are noise; instruction counts are not. For each engine
this runs, under ``valgrind --tool=callgrind``, a Python process (``PYTHONHASHSEED=0``) that
loads the KnowledgeBase from a prebuilt index in a cache directory (built beforehand,
outside valgrind), warms it on the labelled queries (tests/data/knowledge_queries_*.jsonl:
per-word memos filled, as in a running server) and then asks every question of tests/data
(all knowledge_*.jsonl: labelled queries and answer sets) once with a suffix no call had
(``f"{q} {i}"``: a new question, no answer reused); and the same process without that last
pass. Instructions per new question = (with - without) / N. ``--against REV`` measures the
engine of ``git archive REV kai_bridge`` the same way, for a before / after pair.
The whole run takes a few minutes per engine.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from engine_export import export_engine

REPO = Path(__file__).resolve().parents[2]

# argv = data dir, cache dir, "with" | "without" | "build"; the engine under test first on sys.path.
_WORKER = r"""
import json, sys
from pathlib import Path
from kai_bridge.knowledge import KnowledgeBase

data, cache, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
def read(pattern):
    rows = []
    for path in sorted(data.glob(pattern)):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(row["query"], row["lang"]) for row in rows]
kb = KnowledgeBase.load(cache_dir=cache)
if mode != "build":
    for query, lang in read("knowledge_queries_*.jsonl"):
        kb.query(query, top_k=3, language=lang)
    questions = read("knowledge_*.jsonl")
    if mode == "with":
        for i, (query, lang) in enumerate(questions):
            kb.query(f"{query} {i}", top_k=3, language=lang)
    print(len(questions))
"""

_TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


def _start(tree: Path, cache: Path, mode: str, out: Path | None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    command = [sys.executable, "-c", _WORKER, str(REPO / "tests" / "data"), str(cache), mode]
    if out is not None:
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-line=no", *command]
    return subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen[str], out: Path | None) -> tuple[int, int]:
    """(questions asked, instructions executed; 0 when not under callgrind)."""
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"a run failed:\n{stderr[-4000:]}")
    asked = int(stdout.split()[-1]) if stdout.split() else 0
    if out is None:
        return asked, 0
    found = _TOTALS.search(out.read_text(encoding="utf-8", errors="replace"))
    if found is None:
        raise SystemExit(f"no instruction total in {out}")
    return asked, int(found.group(1))


def measure(tree: Path, work: Path) -> tuple[int, int, int]:
    """(N, instructions with the pass, without it) for the engine under ``tree``."""
    cache = work / "cache"
    _finish(_start(tree, cache, "build", None), None)  # the prebuilt index, written once outside valgrind
    # Both runs at once (instruction counts do not depend on what else runs).
    runs = [(_start(tree, cache, mode, work / f"{mode}.out"), work / f"{mode}.out") for mode in ("with", "without")]
    (asked, with_pass), (_, without) = (_finish(process, out) for process, out in runs)
    return asked, with_pass, without


def _report(name: str, asked: int, with_pass: int, without: int) -> str:
    per = (with_pass - without) / asked if asked else 0.0
    return f"| {name} | {asked} | {with_pass:,} | {without:,} | {per:,.0f} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--against", metavar="REV", help="also measure the engine of commit REV")
    args = parser.parse_args()
    rows = ["| engine | N | with the pass | without | instructions per new question |", "|---|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        if args.against:
            base = export_engine(args.against, Path(tmp) / "base")
            (Path(tmp) / "work-base").mkdir()
            rows.append(_report(args.against, *measure(base, Path(tmp) / "work-base")))
            print(rows[-1], flush=True)
        (Path(tmp) / "work-here").mkdir()
        rows.append(_report("this tree", *measure(REPO, Path(tmp) / "work-here")))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
