"""The index on a small corpus written in tmp_path, so each mechanism is seen on its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from kai_bridge.knowledge import KnowledgeBase


def _article(
    root: Path,
    *,
    id: str,
    category: str,
    title_zh: str,
    title_en: str,
    body_zh: str,
    body_en: str,
    aliases_zh: tuple[str, ...] = (),
    aliases_en: tuple[str, ...] = (),
    extra: str = "",
) -> None:
    def lst(items: tuple[str, ...]) -> str:
        return "[" + ", ".join(f'"{i}"' for i in items) + "]"

    folder = root / category
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{id}.toml").write_text(
        f'id = "{id}"\ncategory = "{category}"\ntitle_zh = "{title_zh}"\ntitle_en = "{title_en}"\n'
        f"aliases_zh = {lst(aliases_zh)}\naliases_en = {lst(aliases_en)}\ntags = []\n{extra}"
        f'body_zh = """\n{body_zh}\n"""\nbody_en = """\n{body_en}\n"""\n',
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeBase:
    root = tmp_path_factory.mktemp("corpus")
    _article(
        root,
        id="origin-ethiopia",
        category="origin",
        title_zh="埃塞俄比亚咖啡",
        title_en="Ethiopian coffee",
        aliases_zh=("埃塞俄比亚", "耶加雪菲"),
        aliases_en=("Ethiopia", "Yirgacheffe"),
        body_zh="埃塞俄比亚是阿拉比卡咖啡的故乡。水洗豆有茉莉花香。",
        body_en="Ethiopia is the birthplace of arabica. Washed lots smell of jasmine.",
        extra='cqi_country = "Ethiopia"\n',
    )
    # Mentions Ethiopia only in its English body: a Chinese query reaches it by expansion.
    _article(
        root,
        id="history-legend",
        category="history",
        title_zh="牧羊人传说",
        title_en="The goatherd legend",
        body_zh="传说一位牧羊人发现山羊吃了红色果实后精神焕发。",
        body_en="The legend places Kaldi and his goats in Ethiopia.",
    )
    _article(
        root,
        id="drink-latte",
        category="drinks",
        title_zh="拿铁",
        title_en="Latte",
        aliases_zh=("拿铁咖啡",),
        aliases_en=("caffe latte",),
        body_zh="拿铁是意式浓缩加大量蒸汽牛奶。",
        body_en="A latte is espresso with plenty of steamed milk.",
    )
    _article(
        root,
        id="drink-cappuccino",
        category="drinks",
        title_zh="卡布奇诺",
        title_en="Cappuccino",
        body_zh="卡布奇诺的奶泡比拿铁更厚。",
        body_en="A cappuccino has more foam than a latte.",
    )
    _article(
        root,
        id="brew-espresso",
        category="brewing",
        title_zh="意式浓缩",
        title_en="Espresso",
        aliases_zh=("浓缩咖啡",),
        body_zh="意式浓缩在九个大气压下萃取。",
        body_en="Espresso is brewed at about nine bar of pressure.",
    )
    _article(
        root,
        id="brew-pour-over",
        category="brewing",
        title_zh="手冲咖啡",
        title_en="Pour-over coffee",
        aliases_zh=("手冲",),
        aliases_en=("pour over", "hand drip"),
        body_zh="手冲用细口壶把热水慢慢注入滤杯。",
        body_en="Pour-over means pouring hot water over grounds in a paper filter.",
    )
    return KnowledgeBase.load(corpus_dir=root)


def _ids(kb: KnowledgeBase, query: str) -> list[str]:
    return [p.article_id for p in kb.query(query).passages]


def test_chinese_name_expands_to_the_english_aliases_of_the_same_article(mini: KnowledgeBase) -> None:
    plan = mini.index.plan("埃塞俄比亚")
    assert {"ethiopia", "yirgacheff"} <= plan.expansion.keys()


def test_english_name_expands_to_the_chinese_aliases_of_the_same_article(mini: KnowledgeBase) -> None:
    plan = mini.index.plan("latte")
    assert {"拿铁", "铁咖"} <= plan.expansion.keys()


def test_expansion_reaches_an_article_that_names_the_place_only_in_english(mini: KnowledgeBase) -> None:
    hits = mini.index.search(mini.index.plan("埃塞俄比亚"), limit=5)
    ranked = [mini.index.articles[h.doc].id for h in hits]
    assert ranked[:2] == ["origin-ethiopia", "history-legend"]


def test_expansion_works_from_english_to_chinese_only_text(mini: KnowledgeBase) -> None:
    # "手冲" appears in Chinese only; "hand drip" is its English alias.
    assert _ids(mini, "hand drip")[0] == "brew-pour-over"


@pytest.mark.parametrize(
    ("typo", "article"),
    [
        pytest.param("Ethiopa", "origin-ethiopia", id="dropped-letter"),
        pytest.param("expresso", "brew-espresso", id="wrong-letter"),
        pytest.param("capuccino", "drink-cappuccino", id="missing-double"),
        pytest.param("Yirgachefe", "origin-ethiopia", id="long-word"),
        pytest.param("Yrigacheffe", "origin-ethiopia", id="transposition"),
    ],
)
def test_english_typos_are_corrected_against_article_names(mini: KnowledgeBase, typo: str, article: str) -> None:
    plan = mini.index.plan(typo)
    assert plan.corrections  # the word was not known as typed
    assert _ids(mini, typo)[0] == article


def test_ordinary_english_words_are_not_bent_into_coffee_names(mini: KnowledgeBase) -> None:
    # Only Latin words of titles/aliases are correction targets, never body words, and a
    # correction keeps the first letter.
    assert mini.index.correct("bread") is None  # "steamed"/"brewed" are body words only
    assert mini.index.correct("gatte") is None  # one letter from "latte", but not the first
    assert mini.index.correct("lattes") is None  # known: the plural stems to "latt"


def test_alias_match_ranks_the_named_article_first_in_either_language(mini: KnowledgeBase) -> None:
    assert _ids(mini, "拿铁和卡布奇诺的区别")[:2] in (
        ["drink-latte", "drink-cappuccino"],
        ["drink-cappuccino", "drink-latte"],
    )
    assert _ids(mini, "caffe latte")[0] == "drink-latte"


def test_a_name_inside_a_longer_name_of_another_article_does_not_win(mini: KnowledgeBase) -> None:
    # 拿铁 (drink-latte) sits inside 拿铁咖啡 (also drink-latte) -- fine; 浓缩 sits inside
    # 浓缩咖啡 (brew-espresso) while 卡布奇诺 mentions nothing of it.
    assert _ids(mini, "浓缩咖啡")[0] == "brew-espresso"


def test_off_topic_question_finds_nothing(mini: KnowledgeBase) -> None:
    for query in ("今天北京天气怎么样", "Apple stock price today", "how to bake sourdough bread"):
        assert not mini.query(query).found, query
