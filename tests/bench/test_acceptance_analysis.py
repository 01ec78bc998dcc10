"""The acceptance benchmark's arithmetic: percentiles and the recovery timeline it reports."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
BREAKER = "tool 'send_message' failed: Coze is unavailable: the last 5 calls failed; next try in 9.9s"
DROPPED = "tool 'send_message' failed: stream_chat: no answer from Coze (RemoteProtocolError)"
SERVER_ERROR = "tool 'send_message' failed: Coze error 5000: Server internal error (code=5000, logid={})"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_acceptance", REPO / "scripts" / "bench" / "bench_acceptance.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def calls(bench: ModuleType, plan: str, *, start: float = 0.0, step: float = 1.0, error: str = BREAKER) -> list[object]:
    """One call per character, ``step`` apart, each lasting a tenth of a step: ``+`` ok, ``-`` failed."""
    return [bench.Outcome(start + i * step, start + i * step + step / 10, c == "+", "" if c == "+" else error)
            for i, c in enumerate(plan)]


@pytest.mark.parametrize(("q", "expected"), [(50, 50.0), (90, 90.0), (99, 99.0), (100, 100.0), (1, 1.0)])
def test_percentile_is_nearest_rank(bench: ModuleType, q: float, expected: float) -> None:
    assert bench.percentile([float(v) for v in range(100, 0, -1)], q) == expected


def test_recovery_counts_from_clearing_to_the_success_run_that_lasts(bench: ModuleType) -> None:
    # ok until t=3, fault on at 3 (first call a drop, then the breaker), cleared at 8, a lone
    # success at 9 (the half-open probe) then one more failure, then successes from t=11 on.
    outcomes = [*calls(bench, "+++"), *calls(bench, "-", start=3, error=DROPPED),
                *calls(bench, "-----", start=4), *calls(bench, "+-", start=9), *calls(bench, "++++", start=11)]
    rec = bench.analyse_recovery(outcomes, injected=2.95, cleared=8.0, settle=3)
    assert rec.detect_s == pytest.approx(3.1 - 2.95)
    assert rec.first_ok_s == pytest.approx(9.1 - 8.0)
    assert rec.sustained_s == pytest.approx(11.1 - 8.0)
    assert (rec.calls_under_fault, rec.failed_under_fault) == (5, 5)
    assert [(c.example, c.under_fault, c.after_clear) for c in rec.classes] == [(BREAKER, 4, 2), (DROPPED, 1, 0)]


@pytest.mark.parametrize("tail", ["++", "+++-"], ids=["run shorter than settle", "run broken at the end"])
def test_recovery_is_not_claimed_without_a_settled_run(bench: ModuleType, tail: str) -> None:
    outcomes = [*calls(bench, "+"), *calls(bench, "---", start=1), *calls(bench, tail, start=4)]
    rec = bench.analyse_recovery(outcomes, injected=0.5, cleared=3.5, settle=3)
    assert rec.first_ok_s == pytest.approx(4.1 - 3.5)
    assert rec.sustained_s is None


def test_failures_that_differ_only_in_logid_or_numbers_are_one_kind(bench: ModuleType) -> None:
    outcomes = [*calls(bench, "-", error=SERVER_ERROR.format("2026112514534830946275")),
                *calls(bench, "-", start=1, error=SERVER_ERROR.format("20261125145348511ACC96")),
                *calls(bench, "-", start=2, error=BREAKER.replace("9.9", "8.7"))]
    rec = bench.analyse_recovery(outcomes, injected=0.0, cleared=5.0, settle=1)
    assert [(c.under_fault, c.after_clear) for c in rec.classes] == [(2, 0), (1, 0)]
