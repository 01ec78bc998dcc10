"""Coffee Quality Institute figures: the derived table shipped in ``data/cqi_stats.json``.

The table is built offline by ``scripts/build_cqi.py`` from the CQI review CSVs (MIT, see
``data/LICENSE-CQI``); here it is only read, named in both languages and turned into
:class:`CqiFigure` objects with a one-line summary. Country and process names are matched in
queries so "墨西哥咖啡评分" gets Mexico's figures even without a Mexico article.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from kai_bridge.errors import KnowledgeError
from kai_bridge.knowledge.models import AltitudeRange, CqiFigure, NamedCount
from kai_bridge.knowledge.phrases import PhraseMatcher

__all__ = ["COUNTRY_NAMES", "PROCESS_NAMES", "CqiTable"]

Kind = Literal["country", "process"]

# CQI Country.of.Origin -> (zh display, extra names matched in queries besides the CQI string).
COUNTRY_NAMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Brazil": ("巴西", ("巴西",)),
    "Burundi": ("布隆迪", ("布隆迪",)),
    "China": ("中国", ("中国", "云南", "Yunnan", "普洱", "保山")),
    "Colombia": ("哥伦比亚", ("哥伦比亚",)),
    "Costa Rica": ("哥斯达黎加", ("哥斯达黎加",)),
    "Cote d?Ivoire": ("科特迪瓦", ("科特迪瓦", "象牙海岸", "Cote d'Ivoire", "Ivory Coast")),
    "Ecuador": ("厄瓜多尔", ("厄瓜多尔",)),
    "El Salvador": ("萨尔瓦多", ("萨尔瓦多",)),
    "Ethiopia": ("埃塞俄比亚", ("埃塞俄比亚", "衣索比亚", "Ethiopian")),
    "Guatemala": ("危地马拉", ("危地马拉", "瓜地马拉")),
    "Haiti": ("海地", ("海地",)),
    "Honduras": ("洪都拉斯", ("洪都拉斯",)),
    "India": ("印度", ("印度", "Indian")),
    "Indonesia": ("印度尼西亚", ("印度尼西亚", "印尼", "Indonesian")),
    "Japan": ("日本", ("日本",)),
    "Kenya": ("肯尼亚", ("肯尼亚", "肯亚", "Kenyan")),
    "Laos": ("老挝", ("老挝",)),
    "Malawi": ("马拉维", ("马拉维",)),
    "Mauritius": ("毛里求斯", ("毛里求斯",)),
    "Mexico": ("墨西哥", ("墨西哥", "Mexican")),
    "Myanmar": ("缅甸", ("缅甸", "Burma")),
    "Nicaragua": ("尼加拉瓜", ("尼加拉瓜",)),
    "Panama": ("巴拿马", ("巴拿马",)),
    "Papua New Guinea": ("巴布亚新几内亚", ("巴布亚新几内亚",)),
    "Peru": ("秘鲁", ("秘鲁",)),
    "Philippines": ("菲律宾", ("菲律宾",)),
    "Rwanda": ("卢旺达", ("卢旺达",)),
    "Taiwan": ("台湾", ("台湾",)),
    "Tanzania, United Republic Of": ("坦桑尼亚", ("坦桑尼亚", "Tanzania")),
    "Thailand": ("泰国", ("泰国",)),
    "Uganda": ("乌干达", ("乌干达",)),
    "United States": ("美国", ("美国", "USA")),
    "United States (Hawaii)": ("美国夏威夷", ("夏威夷", "Hawaii", "Hawaiian", "科纳", "Kona")),
    "United States (Puerto Rico)": ("波多黎各", ("波多黎各", "Puerto Rico")),
    "Vietnam": ("越南", ("越南", "Vietnamese", "Viet Nam")),
    "Zambia": ("赞比亚", ("赞比亚",)),
}

# CQI Processing.Method -> (zh display, names matched in queries).
PROCESS_NAMES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Washed / Wet": ("水洗", ("水洗", "水洗法", "水洗处理", "washed", "wet process", "fully washed")),
    "Natural / Dry": (
        "日晒",
        ("日晒", "日晒法", "日晒处理", "自然处理", "干燥处理", "natural process", "dry process", "naturals"),
    ),
    "Semi-washed / Semi-pulped": (
        "半水洗/湿刨",
        ("半水洗", "湿刨", "湿刨法", "semi-washed", "semi washed", "wet-hulled", "wet hulling", "giling basah"),
    ),
    "Pulped natural / honey": (
        "蜜处理",
        ("蜜处理", "蜜处理法", "半日晒", "pulped natural", "honey process", "honey processed"),
    ),
}

_ATTRIBUTE_ZH = {
    "aroma": "香气",
    "flavor": "风味",
    "aftertaste": "余韵",
    "acidity": "酸质",
    "body": "醇厚度",
    "balance": "平衡",
    "sweetness": "甜度",
}


_MAX_CACHED_FIGURES = 4096


@dataclass(frozen=True, slots=True)
class CqiKey:
    kind: Kind
    key: str


class CqiTable:
    """The shipped statistics plus a matcher for country and process names."""

    def __init__(self, data: dict[str, Any]) -> None:
        try:
            self._countries: dict[str, dict[str, Any]] = data["countries"]
            self._processes: dict[str, dict[str, Any]] = data["processes"]
            self._label: str = data["source"]["label"]
        except (KeyError, TypeError) as exc:
            raise KnowledgeError(f"the CQI statistics table is malformed (missing {exc})") from exc
        entries: list[tuple[str, CqiKey]] = []
        for key in self._countries:
            entries.append((key, CqiKey("country", key)))
            entries.extend((name, CqiKey("country", key)) for name in COUNTRY_NAMES.get(key, ("", ()))[1])
        for key in self._processes:
            entries.extend((name, CqiKey("process", key)) for name in PROCESS_NAMES.get(key, ("", ()))[1])
        self.matcher: PhraseMatcher[CqiKey] = PhraseMatcher(entries)
        # Figures are frozen and the table never changes: each is built once per language.
        self._figures: dict[tuple[Kind, str, str], CqiFigure | None] = {}

    @classmethod
    def load_shipped(cls) -> CqiTable:
        path = resources.files("kai_bridge.knowledge").joinpath("data").joinpath("cqi_stats.json")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KnowledgeError(f"cannot read the shipped CQI statistics table: {exc}") from exc
        return cls(data)

    @property
    def countries(self) -> list[str]:
        return list(self._countries)

    @property
    def processes(self) -> list[str]:
        return list(self._processes)

    def has(self, *, kind: Kind, key: str) -> bool:
        return key in (self._countries if kind == "country" else self._processes)

    def figure(self, *, kind: Kind, key: str, language: str) -> CqiFigure | None:
        cache_key = (kind, key, language)
        if cache_key in self._figures:
            return self._figures[cache_key]
        figure = self._build_figure(kind=kind, key=key, language=language)
        if len(self._figures) < _MAX_CACHED_FIGURES:  # keys come from the table's own names: a bound for safety
            self._figures[cache_key] = figure
        return figure

    def _build_figure(self, *, kind: Kind, key: str, language: str) -> CqiFigure | None:
        stats = (self._countries if kind == "country" else self._processes).get(key)
        if stats is None:
            return None
        names = COUNTRY_NAMES if kind == "country" else PROCESS_NAMES
        label = names[key][0] if language == "zh" and key in names else key
        total = stats["total_cup_points"]
        alt = stats["altitude"]
        altitude = (
            AltitudeRange(
                samples=alt["samples"], p10_m=alt["p10_m"], p90_m=alt["p90_m"], min_m=alt["min_m"], max_m=alt["max_m"]
            )
            if alt.get("samples")
            else None
        )
        varieties = [NamedCount(name=v["name"], count=v["count"]) for v in stats["varieties"]]
        processing = [NamedCount(name=p["name"], count=p["count"]) for p in stats.get("processing", [])]
        source = self._label.replace(")", f", n={stats['samples']})")
        fig = CqiFigure(
            kind=kind,
            key=key,
            label=label,
            source=source,
            samples=stats["samples"],
            species=stats["species"],
            total_cup_points_mean=total["mean"],
            total_cup_points_median=total["median"],
            total_cup_points_min=total["min"],
            total_cup_points_max=total["max"],
            attributes=stats["attributes"],
            varieties=varieties,
            processing=processing,
            altitude=altitude,
            summary="",
        )
        return fig.model_copy(update={"summary": _summary(fig, language=language)})


def _top_attributes(fig: CqiFigure) -> list[tuple[str, float]]:
    flavour = {k: v for k, v in fig.attributes.items() if k in _ATTRIBUTE_ZH and k != "sweetness"}
    return sorted(flavour.items(), key=lambda kv: -kv[1])[:3]


def _summary(fig: CqiFigure, *, language: str) -> str:
    alt = fig.altitude
    species = fig.species
    if language == "zh":
        parts = [
            f"CQI 评测（{fig.label}，2018 年抓取，n={fig.samples}）：总分均值 {fig.total_cup_points_mean:.2f}，"
            f"中位数 {fig.total_cup_points_median:.2f}（{fig.total_cup_points_min:.2f}–{fig.total_cup_points_max:.2f}）"
        ]
        top = "、".join(f"{_ATTRIBUTE_ZH[k]} {v:.2f}" for k, v in _top_attributes(fig))
        if top:
            parts.append(f"单项较高：{top}")
        if alt is not None:
            parts.append(f"海拔 p10–p90 {alt.p10_m}–{alt.p90_m} 米（{alt.samples} 批有记录）")
        if fig.varieties:
            parts.append("常见品种 " + "、".join(f"{v.name}（{v.count}）" for v in fig.varieties))
        if fig.processing:
            names = {k: v[0] for k, v in PROCESS_NAMES.items()}
            parts.append("处理法 " + "、".join(f"{names.get(p.name, p.name)} {p.count}" for p in fig.processing))
        if len(species) > 1:
            parts.append("物种 " + "、".join(f"{k} {v}" for k, v in species.items()))
        return "；".join(parts) + "。"
    parts = [
        f"CQI reviews ({fig.label}, 2018 scrape, n={fig.samples}): mean total cup score "
        f"{fig.total_cup_points_mean:.2f}, median {fig.total_cup_points_median:.2f} "
        f"(range {fig.total_cup_points_min:.2f}-{fig.total_cup_points_max:.2f})"
    ]
    top = ", ".join(f"{k} {v:.2f}" for k, v in _top_attributes(fig))
    if top:
        parts.append(f"highest attributes {top}")
    if alt is not None:
        parts.append(f"altitude p10-p90 {alt.p10_m:,}-{alt.p90_m:,} m ({alt.samples} lots recorded)")
    if fig.varieties:
        parts.append("varieties " + ", ".join(f"{v.name} ({v.count})" for v in fig.varieties))
    if fig.processing:
        parts.append("processing " + ", ".join(f"{p.name} {p.count}" for p in fig.processing))
    if len(species) > 1:
        parts.append("species " + ", ".join(f"{k} {v}" for k, v in species.items()))
    return "; ".join(parts) + "."
