"""Recent calls, bounded: the monitoring page's rates, averages and p95 come from here.

Why not from the histograms: those are cumulative since start, so a p95 read from them mixes
this minute with last week, and interpolating inside a bucket (0.25 s .. 0.5 s, say) can be off
by the bucket's whole width. A live panel wants "the last few minutes, exactly". Each series
(door x tool, Coze endpoint) keeps its last :data:`WINDOW_SIZE` calls as ``(time, seconds,
ok)``: 512 entries, about 40 KiB per series, appended in O(1); the statistics are computed
when a snapshot is asked for (a sort of at most a few thousand floats). Prometheus keeps the
histograms for queries over any range; this window is only the page's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["WINDOW_SIZE", "RecentCalls", "WindowStats", "summarize"]

WINDOW_SIZE: Final = 512


class RecentCalls:
    """The last ``size`` calls of one series."""

    __slots__ = ("_entries",)

    def __init__(self, *, size: int = WINDOW_SIZE) -> None:
        self._entries: deque[tuple[float, float, bool]] = deque(maxlen=size)

    def add(self, *, at: float, seconds: float, ok: bool) -> None:
        self._entries.append((at, seconds, ok))

    def since(self, start: float) -> tuple[list[tuple[float, float, bool]], float | None]:
        """Entries at or after ``start`` (oldest first), and where they are known complete from.

        The second value is None when every call since ``start`` is still held; else the
        time of the oldest entry held (calls before it, inside the period, were dropped).
        """
        out: list[tuple[float, float, bool]] = []
        for entry in reversed(self._entries):
            if entry[0] < start:
                break
            out.append(entry)
        out.reverse()
        dropped = len(out) == len(self._entries) == self._entries.maxlen
        return out, (out[0][0] if dropped and out else None)


@dataclass(frozen=True, slots=True)
class WindowStats:
    calls: int
    errors: int
    rate_per_s: float  # calls per second over the period (or over what the window still holds)
    success_rate: float | None  # None without calls
    avg_ms: float | None
    p95_ms: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "calls": self.calls,
            "errors": self.errors,
            "rate_per_s": self.rate_per_s,
            "success_rate": self.success_rate,
            "avg_ms": self.avg_ms,
            "p95_ms": self.p95_ms,
        }


def _p95(sorted_seconds: list[float]) -> float:
    # Nearest rank: the smallest value with at least 95 % of the values at or below it.
    rank = max(1, math.ceil(0.95 * len(sorted_seconds)))
    return sorted_seconds[rank - 1]


def summarize(windows: Iterable[RecentCalls], *, now: float, period: float) -> WindowStats:
    """Statistics over the calls of ``windows`` in the last ``period`` seconds."""
    start = now - period
    held: list[tuple[float, float, bool]] = []
    complete_from = start
    for window in windows:
        recent, known_from = window.since(start)
        if known_from is not None:
            # A busy series dropped calls inside the period: keep to the part every series still holds.
            complete_from = max(complete_from, known_from)
        held.extend(recent)
    entries = [entry for entry in held if entry[0] >= complete_from]
    span_start = complete_from
    if not entries:
        return WindowStats(calls=0, errors=0, rate_per_s=0.0, success_rate=None, avg_ms=None, p95_ms=None)
    seconds = sorted(entry[1] for entry in entries)
    errors = sum(1 for entry in entries if not entry[2])
    covered = max(now - span_start, 1e-9)
    return WindowStats(
        calls=len(entries),
        errors=errors,
        rate_per_s=round(len(entries) / covered, 4),
        success_rate=round((len(entries) - errors) / len(entries), 4),
        avg_ms=round(sum(seconds) / len(seconds) * 1000, 3),
        p95_ms=round(_p95(seconds) * 1000, 3),
    )
