"""Loading articles: the shipped corpus, a custom directory, and broken files."""

from __future__ import annotations

from pathlib import Path

import pytest

from kai_bridge.errors import KnowledgeError
from kai_bridge.knowledge import KnowledgeBase
from kai_bridge.knowledge.corpus import CATEGORIES, load_articles, shipped_corpus

GOOD = """id = "brew-test"
category = "brewing"
title_zh = "测试冲煮"
title_en = "Test brewing"
aliases_zh = ["测试"]
aliases_en = ["test brew"]
tags = ["brewing"]
body_zh = "这是一篇测试文章。"
body_en = "This is a test article."
"""


def _write(root: Path, name: str, text: str) -> None:
    (root / "brewing").mkdir(parents=True, exist_ok=True)
    (root / "brewing" / name).write_text(text, encoding="utf-8")


def test_shipped_corpus_loads_with_unique_ids_and_known_categories(kb: KnowledgeBase) -> None:
    articles = load_articles(shipped_corpus())
    assert len(articles) == kb.article_count > 0
    assert articles == kb.articles
    assert len({a.id for a in articles}) == len(articles)
    assert {a.category for a in articles} <= CATEGORIES.keys()
    assert all(a.body_zh and a.body_en for a in articles)


def test_custom_corpus_directory_is_used(tmp_path: Path) -> None:
    _write(tmp_path, "brew-test.toml", GOOD)
    kb = KnowledgeBase.load(corpus_dir=tmp_path)
    assert kb.article_count == 1
    assert kb.query("测试冲煮").passages[0].article_id == "brew-test"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("id = ", "not valid TOML", id="bad-toml"),
        pytest.param(GOOD.replace('category = "brewing"', 'category = "baking"'), "unknown category", id="category"),
        pytest.param(GOOD.replace('title_en = "Test brewing"\n', ""), "'title_en'", id="missing-title"),
        pytest.param(GOOD.replace('tags = ["brewing"]', 'tags = "brewing"'), "'tags' must be a list", id="tags"),
    ],
)
def test_broken_article_fails_loading_with_its_path(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path, "broken.toml", text)
    with pytest.raises(KnowledgeError, match=message) as caught:
        KnowledgeBase.load(corpus_dir=tmp_path)
    assert "corpus/brewing/broken.toml" in str(caught.value)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, "a.toml", GOOD)
    _write(tmp_path, "b.toml", GOOD)
    with pytest.raises(KnowledgeError, match="duplicate article id 'brew-test'"):
        KnowledgeBase.load(corpus_dir=tmp_path)


def test_missing_or_empty_corpus_directory_is_a_knowledge_error(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match="not found"):
        KnowledgeBase.load(corpus_dir=tmp_path / "nope")
    with pytest.raises(KnowledgeError, match="empty"):
        KnowledgeBase.load(corpus_dir=tmp_path)
