"""The typed answers of the coffee knowledge base (pydantic).

:class:`KnowledgeAnswer` is the rich in-process answer (full CQI figure objects).
:class:`KnowledgeBrief` is what the ``coffee_knowledge_query`` tool returns and declares as
its output schema: the same answer, each passage cut to what cites and supports it
(:class:`PassageBrief`: article id, title, snippet) and each CQI figure to its headline
(:class:`CqiFigureBrief`). Every MCP client re-validates a tool's structured result against
its output schema, and with ``jsonschema`` that costs 5-8 µs per value checked: a full figure
(species, ten attributes, varieties, altitude) is ~40 values, its headline 8. For the same
reason the brief leaves out what the caller has or can derive: the question it sent
(``query``), ``sources`` (the passages' article ids and the figures' keys again), a passage's
``category`` (its article id's prefix) and ``score`` (the passages come best first). That is
11 of the ~30 values a typical answer had, ~80 µs of every client's time per call
(scripts/bench/bench_mcp.py). The figure's one-line ``summary`` still carries the detail as text.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AltitudeRange",
    "CqiFigure",
    "CqiFigureBrief",
    "KnowledgeAnswer",
    "KnowledgeBrief",
    "NamedCount",
    "Passage",
    "PassageBrief",
]


_set = object.__setattr__
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def model_construct(cls, _fields_set: set[str] | None = None, **values: Any) -> Self:  # type: ignore[override]
        """pydantic's ``model_construct`` (no validation), with a fast path when every field is
        given in their order: the answer builds a few of these per query, and the general path (aliases,
        defaults) costs about twice as much. The instance is the same either way."""
        names = _FIELD_NAMES.get(cls)
        if names is None:
            names = _FIELD_NAMES[cls] = tuple(cls.__pydantic_fields__)
        if _fields_set is not None or tuple(values) != names:  # not every field, or not in their order
            return super().model_construct(_fields_set, **values)
        model = cls.__new__(cls)
        _set(model, "__dict__", values)
        _set(model, "__pydantic_fields_set__", set(names))
        _set(model, "__pydantic_extra__", None)
        _set(model, "__pydantic_private__", None)
        return model


class Passage(_Model):
    """One article that matched, with its most relevant sentences."""

    article_id: str = Field(description="stable article id, e.g. origin-ethiopia")
    title: str = Field(description="article title in the answer's language")
    category: str = Field(description="origin, species, processing, roasting, brewing, ...")
    snippet: str = Field(description="the article's sentences most relevant to the query")
    score: float = Field(description="relevance; higher is better, comparable within one answer")


class PassageBrief(_Model):
    """One article the answer draws on: enough to cite it and to read why it matched."""

    article_id: str = Field(description="stable article id, e.g. origin-ethiopia (its prefix is the category)")
    title: str = Field(description="article title in the answer's language")
    snippet: str = Field(description="the article's sentences most relevant to the query")

    @classmethod
    def of(cls, passage: Passage) -> PassageBrief:
        return cls.model_construct(article_id=passage.article_id, title=passage.title, snippet=passage.snippet)


class NamedCount(_Model):
    name: str
    count: int


class AltitudeRange(_Model):
    """Altitude of the reviewed lots in metres, after dropping values outside 100-3500 m."""

    samples: int = Field(description="lots with a usable altitude")
    p10_m: int
    p90_m: int
    min_m: int
    max_m: int


class CqiFigure(_Model):
    """Statistics of Coffee Quality Institute reviews for one country or processing method."""

    kind: Literal["country", "process"]
    key: str = Field(description="the exact CQI value, e.g. 'Ethiopia' or 'Natural / Dry'")
    label: str = Field(description="display name in the answer's language")
    source: str = Field(description="e.g. 'Coffee Quality Institute reviews (2018 scrape, n=44)'")
    samples: int
    species: dict[str, int] = Field(description="reviews per species (Arabica, Robusta)")
    total_cup_points_mean: float
    total_cup_points_median: float
    total_cup_points_min: float
    total_cup_points_max: float
    attributes: dict[str, float] = Field(description="mean cupping attribute scores (0-10)")
    varieties: list[NamedCount] = Field(description="most reviewed named varieties (top 3)")
    processing: list[NamedCount] = Field(description="processing methods reviewed (countries only)")
    altitude: AltitudeRange | None = Field(description="altitude p10-p90 and min-max, when recorded")
    summary: str = Field(description="the figures in one line, in the answer's language")


class CqiFigureBrief(_Model):
    """The headline of a :class:`CqiFigure` (what the tool returns; ``summary`` has the rest as text)."""

    key: str = Field(description="the exact CQI value, e.g. 'Ethiopia' or 'Natural / Dry'")
    label: str = Field(description="display name in the answer's language")
    source: str = Field(description="e.g. 'Coffee Quality Institute reviews (2018 scrape, n=44)'")
    samples: int = Field(description="reviews counted")
    total_cup_points_mean: float
    total_cup_points_median: float
    summary: str = Field(description="the figures in one line (scores, top attributes, altitude, varieties)")

    @classmethod
    def of(cls, figure: CqiFigure) -> CqiFigureBrief:
        # Fields of a validated figure: constructed without validating them again.
        return cls.model_construct(
            key=figure.key,
            label=figure.label,
            source=figure.source,
            samples=figure.samples,
            total_cup_points_mean=figure.total_cup_points_mean,
            total_cup_points_median=figure.total_cup_points_median,
            summary=figure.summary,
        )


class KnowledgeAnswer(_Model):
    """A coffee question answered from the base (in-process; the tool returns :meth:`brief`)."""

    query: str
    language: Literal["zh", "en"]
    found: bool = Field(description="false when the knowledge base has nothing on the question")
    answer: str = Field(description="a short answer composed from the best sources, or what is covered")
    passages: list[Passage] = Field(default_factory=list)
    figures: list[CqiFigure] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list, description="article ids and cqi:<name> entries")
    backend: Literal["local", "coze"] = Field(
        default="local", description="who composed the answer text: the local base or the Coze bot"
    )

    def brief(self) -> KnowledgeBrief:
        """This answer as the tool returns it (module docstring): passages and figures cut to
        what an agent uses (the fields of this validated answer, not validated again)."""
        return KnowledgeBrief.model_construct(
            language=self.language,
            found=self.found,
            answer=self.answer,
            passages=[PassageBrief.of(passage) for passage in self.passages],
            figures=[CqiFigureBrief.of(figure) for figure in self.figures],
            backend=self.backend,
        )


class KnowledgeBrief(_Model):
    """What ``coffee_knowledge_query`` returns: a :class:`KnowledgeAnswer` with brief passages and figures."""

    language: Literal["zh", "en"]
    found: bool = Field(description="false when the knowledge base has nothing on the question")
    answer: str = Field(description="a short answer composed from the best sources, or what is covered")
    passages: list[PassageBrief] = Field(
        default_factory=list, description="the articles the answer draws on, best first (cite them by article_id)"
    )
    figures: list[CqiFigureBrief] = Field(default_factory=list, description="CQI review statistics named or implied")
    backend: Literal["local", "coze"] = Field(
        default="local", description="who composed the answer text: the local base or the Coze bot"
    )
