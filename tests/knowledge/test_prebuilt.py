"""The prebuilt index in a cache directory: written once, read back, rebuilt when stale or damaged."""

from __future__ import annotations

import logging
import shutil
from dataclasses import astuple
from pathlib import Path

import pytest

from kai_bridge.knowledge import KnowledgeBase
from kai_bridge.knowledge.corpus import shipped_corpus
from kai_bridge.knowledge.index import Index
from kai_bridge.knowledge.prebuilt import _write, index_key

QUESTIONS = ("how long should espresso extract", "埃塞俄比亚咖啡特点", "SHB极硬豆是什么意思", "how to make green tea")


def _cache_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("knowledge-index-*.marshal"))


def _corpus_copy(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    shutil.copytree(str(shipped_corpus()), root)
    return root


def test_the_first_load_saves_the_index_and_the_next_one_answers_the_same(tmp_path: Path) -> None:
    cache = tmp_path / "data"
    first = KnowledgeBase.load(cache_dir=cache)
    [saved] = _cache_files(cache)
    assert index_key(shipped_corpus()) in saved.name
    second = KnowledgeBase.load(cache_dir=cache)
    assert _cache_files(cache) == [saved]
    assert second.article_ids() == first.article_ids()
    for question in QUESTIONS:
        assert second.query(question) == first.query(question)


def test_a_saved_index_is_what_the_next_process_reads(tmp_path: Path) -> None:
    cache = tmp_path / "data"
    base = KnowledgeBase.load(cache_dir=cache)
    [saved] = _cache_files(cache)
    # Rewrite the saved state with a marker the build would never produce: a load that reads
    # the cache sees it, a load that rebuilt would not.
    state = base.index.state()
    state["articles"] = [astuple(a) for a in base.articles]
    state["proper_nouns"] = frozenset({"marker-from-the-cache"})
    _write(cache, saved, state)
    assert "marker-from-the-cache" in KnowledgeBase.load(cache_dir=cache).index.proper_nouns


def test_a_damaged_cache_file_is_rebuilt_not_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "data"
    KnowledgeBase.load(cache_dir=cache)
    [saved] = _cache_files(cache)
    data = bytearray(saved.read_bytes())
    data[len(data) // 2] ^= 0xFF
    saved.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="kai_bridge.knowledge.prebuilt"):
        base = KnowledgeBase.load(cache_dir=cache)
    assert "damaged" in caplog.text
    assert base.query("how long should espresso extract").found
    assert saved.read_bytes() != bytes(data)  # saved again, whole


def test_a_changed_article_changes_the_key_and_replaces_the_old_file(tmp_path: Path) -> None:
    corpus = _corpus_copy(tmp_path)
    cache = tmp_path / "data"
    KnowledgeBase.load(corpus_dir=corpus, cache_dir=cache)
    [old] = _cache_files(cache)
    article = corpus / "brewing" / "brew-espresso.toml"
    article.write_text(article.read_text(encoding="utf-8").replace("25-30 seconds", "20-25 seconds"), encoding="utf-8")
    base = KnowledgeBase.load(corpus_dir=corpus, cache_dir=cache)
    [new] = _cache_files(cache)
    assert new != old
    assert "20-25 seconds" in base.query("how long should espresso extract").answer


def test_an_unwritable_cache_directory_only_costs_the_build(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the cache directory should be", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="kai_bridge.knowledge.prebuilt"):
        base = KnowledgeBase.load(cache_dir=blocked)
    assert base.query("埃塞俄比亚咖啡特点").found
    assert "not saved" in caplog.text


def test_no_cache_directory_builds_in_memory(tmp_path: Path) -> None:
    base = KnowledgeBase.load()
    assert base.article_count == len(Index(base.articles).articles)
    assert not list(tmp_path.iterdir())
