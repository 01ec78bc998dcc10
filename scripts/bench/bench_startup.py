#!/usr/bin/env python3
"""Start-up cost of the ``kai-bridge`` command: whole-process wall time and import time.

For each command (``--help``, ``keygen``, a local ``call``) it measures, interleaved round by
round on this noisy machine, the wall time of the whole process and the import time Python
reports with ``-X importtime`` (the sum over top-level imports). The baseline in the same run
is the bare interpreter (``python -c pass``). ``--before DIR`` adds the same commands run from
another checkout's ``kai_bridge`` package (``PYTHONPATH=DIR``, same virtual environment), e.g.
an earlier commit exported with ``git archive <commit> kai_bridge | tar -x -C DIR``.

Every process runs in a fresh temporary folder with HOME and the XDG folders inside it, no
``KAI_BRIDGE_*`` variable (so the embedded defaults), and nothing but 127.0.0.1. Prints Markdown.

    python scripts/bench/bench_startup.py [--rounds 10] [--before DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
QUERY = '{"query": "埃塞俄比亚咖啡特点"}'
COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "keygen": ["keygen", "--out", "{tmp}/keys"],
    "call coffee_knowledge_query": ["call", "coffee_knowledge_query", QUERY],
}
_TOP_LEVEL = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (\S.*)$")


@dataclass
class Sample:
    wall_ms: list[float] = field(default_factory=list)
    import_ms: list[float] = field(default_factory=list)


def _env(tmp: Path, source: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAI_BRIDGE_", "XDG_", "PYTHON"))}
    env.update({"HOME": str(tmp / "home"), "XDG_DATA_HOME": str(tmp / "data"), "XDG_STATE_HOME": str(tmp / "state")})
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return env


def _argv(args: list[str] | None, tmp: Path) -> list[str]:
    if args is None:
        return [PY, "-c", "pass"]
    return [PY, "-m", "kai_bridge.cli", *(a.replace("{tmp}", str(tmp)) for a in args)]


def _run(args: list[str] | None, source: Path | None, *, importtime: bool) -> float:
    """One process in a fresh folder; returns wall ms, or import ms when ``importtime``."""
    tmp = Path(tempfile.mkdtemp(prefix="kb-startup-"))
    try:
        argv = _argv(args, tmp)
        if importtime:
            argv = [argv[0], "-X", "importtime", *argv[1:]]
        started = time.perf_counter()
        run = subprocess.run(argv, cwd=tmp, env=_env(tmp, source), capture_output=True, text=True, timeout=120,
                             check=False)
        wall = (time.perf_counter() - started) * 1000
        if run.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({run.returncode}):\n{run.stderr[-2000:]}")
        if not importtime:
            return wall
        total_us = 0
        for line in run.stderr.splitlines():
            match = _TOP_LEVEL.match(line)
            if match:  # no indentation before the module name: a top-level import
                total_us += int(match.group(1))
        return total_us / 1000
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--before", type=Path, default=None, help="a checkout whose kai_bridge is the 'before'")
    args = parser.parse_args()
    variants: list[tuple[str, Path | None]] = [("now", None)]
    if args.before is not None:
        variants.insert(0, ("before", args.before.resolve()))
    cases: list[tuple[str, str, list[str] | None, Path | None]] = [("python -c pass", "-", None, None)]
    for name, cmd in COMMANDS.items():
        cases += [(name, label, cmd, source) for label, source in variants]
    samples = {(name, label): Sample() for name, label, _, _ in cases}
    for _ in range(max(1, args.rounds)):
        for name, label, argv, source in cases:  # interleaved: every case once per round
            samples[name, label].wall_ms.append(_run(argv, source, importtime=False))
            samples[name, label].import_ms.append(_run(argv, source, importtime=True))
    base = statistics.median(samples["python -c pass", "-"].wall_ms)
    print(f"Start-up of kai-bridge, {args.rounds} interleaved rounds, medians (python {sys.version.split()[0]})\n")
    print("| command | code | wall time (ms) | vs bare python | import time (ms) |")
    print("|---|---|---:|---:|---:|")
    for name, label, _, _ in cases:
        s = samples[name, label]
        wall = statistics.median(s.wall_ms)
        print(f"| `{name}` | {label} | {wall:.0f} | {wall / base:.1f}x | {statistics.median(s.import_ms):.0f} |")


if __name__ == "__main__":
    main()
