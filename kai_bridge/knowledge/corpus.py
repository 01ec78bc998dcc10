"""Loading the shipped articles: one TOML file per article under ``corpus/<category>/``.

Articles are validated on load so a broken file fails start-up with its path in the message,
instead of surfacing later as a strange answer.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from kai_bridge.errors import KnowledgeError

__all__ = ["CATEGORIES", "Article", "load_articles", "shipped_corpus"]

# Category -> (zh, en) display names, in the order topics are listed to the user.
CATEGORIES: dict[str, tuple[str, str]] = {
    "origin": ("产地", "origins"),
    "species": ("品种", "species and varieties"),
    "processing": ("处理法", "processing"),
    "roasting": ("烘焙", "roasting"),
    "grinding": ("研磨", "grinding"),
    "brewing": ("冲煮", "brewing"),
    "extraction": ("萃取", "extraction"),
    "drinks": ("咖啡饮品", "drinks"),
    "storage": ("储存", "storage"),
    "cupping": ("杯测与风味", "cupping and tasting"),
    "history": ("历史", "history"),
    "health": ("健康", "health"),
}


@dataclass(frozen=True, slots=True)
class Article:
    id: str
    category: str
    title_zh: str
    title_en: str
    aliases_zh: tuple[str, ...]
    aliases_en: tuple[str, ...]
    tags: tuple[str, ...]
    body_zh: str
    body_en: str
    cqi_country: str | None = None
    cqi_process: str | None = None

    def title(self, language: str) -> str:
        return self.title_zh if language == "zh" else self.title_en

    def body(self, language: str) -> str:
        return self.body_zh if language == "zh" else self.body_en


def shipped_corpus() -> Traversable:
    return resources.files("kai_bridge.knowledge").joinpath("corpus")


def _str(data: dict[str, object], key: str, where: str, *, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        raise KnowledgeError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def _list(data: dict[str, object], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KnowledgeError(f"{where}: '{key}' must be a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def parse_article(text: str, *, where: str) -> Article:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise KnowledgeError(f"{where}: not valid TOML ({exc})") from exc

    def req(key: str) -> str:
        value = _str(data, key, where)
        assert value is not None  # _str raises for a missing required key
        return value

    category = req("category")
    if category not in CATEGORIES:
        raise KnowledgeError(f"{where}: unknown category {category!r}; expected one of {sorted(CATEGORIES)}")
    return Article(
        id=req("id"),
        category=category,
        title_zh=req("title_zh"),
        title_en=req("title_en"),
        aliases_zh=_list(data, "aliases_zh", where),
        aliases_en=_list(data, "aliases_en", where),
        tags=_list(data, "tags", where),
        body_zh=req("body_zh"),
        body_en=req("body_en"),
        cqi_country=_str(data, "cqi_country", where, optional=True),
        cqi_process=_str(data, "cqi_process", where, optional=True),
    )


def _walk(root: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    found: list[tuple[str, Traversable]] = []
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.extend(_walk(entry, f"{name}/"))
        elif entry.name.endswith(".toml"):
            found.append((name, entry))
    return found


def load_articles(root: Traversable | Path) -> list[Article]:
    """Every ``*.toml`` article below ``root``, sorted by id; ids must be unique."""
    if not root.is_dir():
        raise KnowledgeError(f"knowledge corpus directory not found: {root}")
    articles: dict[str, Article] = {}
    for name, entry in _walk(root):
        article = parse_article(entry.read_text(encoding="utf-8"), where=f"corpus/{name}")
        if article.id in articles:
            raise KnowledgeError(f"corpus/{name}: duplicate article id {article.id!r}")
        articles[article.id] = article
    if not articles:
        raise KnowledgeError(f"knowledge corpus is empty: no *.toml articles under {root}")
    return [articles[key] for key in sorted(articles)]
