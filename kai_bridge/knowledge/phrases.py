"""Finding known names (article aliases, CQI countries) inside a query, in one left-to-right pass.

A name is a sequence of units: one unit per CJK character, one per (stemmed) Latin word, so
"埃塞俄比亚", "Ethiopian coffee" and "耶加雪菲G1" are all matched the same way and Chinese
needs no word segmentation. A prefix set stops each scan as soon as no name can continue,
so a query costs a few dictionary look-ups per unit rather than one per known name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from kai_bridge.knowledge.text import has_cjk, normalize, stem

__all__ = ["PhraseHit", "PhraseMatcher", "units"]

T = TypeVar("T")

_UNIT_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[a-z0-9]+")


def units(text: str) -> list[str]:
    """CJK characters and stemmed Latin words of ``text``, in order (hyphens split words)."""
    return [u if has_cjk(u) else stem(u) for u in _UNIT_RE.findall(normalize(text))]


@dataclass(frozen=True, slots=True)
class PhraseHit(Generic[T]):
    start: int  # unit offsets in the query, end exclusive
    end: int
    phrase: str
    payloads: frozenset[T]


class PhraseMatcher(Generic[T]):
    """Maps unit sequences to payload sets; ``find`` returns every known name in a unit list."""

    def __init__(self, entries: Iterable[tuple[str, T]], *, min_cjk_chars: int = 2) -> None:
        table: dict[tuple[str, ...], set[T]] = {}
        for phrase, payload in entries:
            key = tuple(units(phrase))
            if not key:
                continue
            # One CJK character is too ambiguous to be a name (豆, 酸); one Latin word is fine.
            if len(key) < min_cjk_chars and all(has_cjk(u) for u in key):
                continue
            table.setdefault(key, set()).add(payload)
            words = _UNIT_RE.findall(normalize(phrase))
            if len(key) > 1 and not any(has_cjk(u) for u in key):
                # "pour over" is also written "pourover"
                table.setdefault((stem("".join(words)),), set()).add(payload)
        self._install({key: frozenset(value) for key, value in table.items()})

    def _install(self, table: dict[tuple[str, ...], frozenset[T]]) -> None:
        self._table = table
        self._prefixes = {key[:n] for key in table for n in range(1, len(key) + 1)}

    @property
    def table(self) -> dict[tuple[str, ...], frozenset[T]]:
        """unit sequence -> payloads: everything the matcher knows (for the prebuilt index)."""
        return self._table

    @classmethod
    def from_table(cls, table: dict[tuple[str, ...], frozenset[T]]) -> PhraseMatcher[T]:
        """A matcher over an existing :attr:`table`."""
        matcher = cls.__new__(cls)
        matcher._install(table)
        return matcher

    def __len__(self) -> int:
        return len(self._table)

    def find(self, query_units: list[str]) -> list[PhraseHit[T]]:
        hits: list[PhraseHit[T]] = []
        size = len(query_units)
        for start in range(size):
            end = start + 1
            while end <= size:
                key = tuple(query_units[start:end])
                if key not in self._prefixes:
                    break
                payloads = self._table.get(key)
                if payloads is not None:
                    hits.append(PhraseHit(start, end, "".join(key) if has_cjk(key[0]) else " ".join(key), payloads))
                end += 1
        return hits
