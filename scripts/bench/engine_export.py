"""Another commit's engine as a folder, for the benches that compare two engines in one run
(``bench_knowledge.py --against``, ``bench_instructions.py --against``, ``same_answers.py``):
``git archive REV kai_bridge`` unpacked, to put first on a subprocess's ``PYTHONPATH``."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def export_engine(rev: str, dest: Path) -> Path:
    """Unpack commit ``rev``'s ``kai_bridge`` package into ``dest`` (created if missing); ``dest``."""
    archive = subprocess.run(["git", "archive", rev, "kai_bridge"], cwd=REPO, capture_output=True, check=True).stdout
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest
