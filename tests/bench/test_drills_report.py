"""The drill bench's pure parts: its options stay bounded, its tables say PASS/FAIL/— per goal."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench"


@pytest.fixture(scope="module")
def drills() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))  # the bench imports its neighbours (bench_acceptance, drill_cluster)
    try:
        yield importlib.import_module("bench_drills")
    finally:
        sys.path.remove(str(BENCH))


def test_quick_is_smaller_than_the_full_run_in_every_count(drills: ModuleType) -> None:
    full, quick = drills.parse_args([]), drills.parse_args(["--quick"])
    for name in ("calls", "seconds", "fault_calls", "hang_seconds", "slow_clients", "events", "sessions"):
        assert getattr(quick, name) < getattr(full, name), name
    assert full.calls == 100  # the seed's 100 consecutive calls
    assert full.fault_calls >= 1000  # the goal is over at least 1,000 calls
    assert drills.parse_args(["--only", "2,3"]).only == {2, 3}


def test_a_table_shows_each_figure_beside_the_seed_target_and_our_goal(drills: ModuleType) -> None:
    text = drills.table(
        "T",
        [("a", "≥ 99 %", "100 %", "99/100", False), ("b", "—", "0", "0", True), ("c", "—", "—", "x", None)],
        ["note"],
    )
    lines = text.splitlines()
    assert lines[2] == "| figure | seed target | our goal | measured | result |"
    assert lines[4:7] == [
        "| a | ≥ 99 % | 100 % | 99/100 | **FAIL** |",
        "| b | — | 0 | 0 | **PASS** |",
        "| c | — | — | x | — |",
    ]
    assert lines[-1] == "- note"
