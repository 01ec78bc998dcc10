"""Finding known names (article aliases, CQI countries) inside a query, in one left-to-right pass.

A name is a sequence of units: one unit per CJK character, one per (stemmed) Latin word, so
"埃塞俄比亚", "Ethiopian coffee" and "耶加雪菲G1" are all matched the same way and Chinese
needs no word segmentation. A prefix set stops each scan as soon as no name can continue,
so a query costs a few dictionary look-ups per unit rather than one per known name: the
table is walked as a trie (unit -> (children, payloads or None, phrase)), one look-up per unit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import compress
from typing import Generic, TypeVar

from kai_bridge.knowledge.text import has_cjk, normalize, stem

__all__ = ["PhraseHit", "PhraseMatcher", "units"]

T = TypeVar("T")
# unit -> (the trie below it, the payloads of the name ending here or None, that name as written)
_Trie = dict[str, tuple["_Trie[T]", frozenset[T] | None, str]]

_UNIT_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[a-z0-9]+")


def units(text: str) -> list[str]:
    """CJK characters and stemmed Latin words of ``text``, in order (hyphens split words)."""
    # A unit is one CJK character (all above U+2FFF) or a run of ASCII letters and digits.
    return [u if u > "\u2fff" else stem(u) for u in _UNIT_RE.findall(normalize(text))]


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
        trie: _Trie[T] = {}
        for key, payloads in table.items():
            node = trie
            for depth, unit in enumerate(key, 1):
                entry = node.get(unit)
                if entry is None:
                    entry = node[unit] = ({}, None, "")
                if depth == len(key):
                    entry = node[unit] = (entry[0], payloads, "".join(key) if has_cjk(key[0]) else " ".join(key))
                node = entry[0]
        self._trie = trie

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
        """Every known name in ``query_units``, by start, then by end."""
        hits: list[PhraseHit[T]] = []
        size = len(query_units)
        root = self._trie
        # Most units start no name: which do is tested in C, and only those are walked from.
        for start in compress(range(size), map(root.__contains__, query_units)):
            node, payloads, phrase = root[query_units[start]]
            if payloads is not None:
                hits.append(PhraseHit(start, start + 1, phrase, payloads))
            for end in range(start + 2, size + 1):
                entry = node.get(query_units[end - 1])
                if entry is None:
                    break
                node, payloads, phrase = entry
                if payloads is not None:
                    hits.append(PhraseHit(start, end, phrase, payloads))
        return hits
