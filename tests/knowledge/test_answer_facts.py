"""Answer-level quality: the answer carries the fact the question asks for.

Six labelled sets (tests/data/knowledge_answers_*.jsonl): ``tuning``, which the composer was
tuned on; ``heldout``, written before any tuning and never used to tune; ``heldout2``, written
from the corpus text, as a stranger would ask, before any change of the second round, and never
used to tune either; ``heldout3``, written from the corpus text before any change of the third
round (short, colloquial, zh-heavy, a few in Traditional Chinese or mixed with English, weighted
to definitions, durations, causes and people); ``heldout4``, 238 questions written from the corpus
text before any change of the fourth round, on facts the other sets mostly do not ask for. From the
fourth round on, held-out 2 and 3 are tuning material; held-out 1 and 4 are never tuned on (see
tests/knowledge/support.py); ``heldout5``, 150 questions written from the corpus text before any
change of the fifth round (issue 12), on (fact, article) pairs no other set uses, never tuned on.
Each case names the facts (any one) the answer must contain; the titles of the sources are taken
out of the answer first, so naming the article does not count as carrying its fact. The floors are
the rates measured at the end of the fourth round (held-out 4 when frozen: 0.853; held-out 5, measured on the engine it was written for: 0.940, zh
0.952, en 0.925), rounded down: a change that makes answers worse fails here. ``heldout6``, 218
questions written blind from the corpus text during the sixth round (with 21 off-topic questions,
knowledge_offtopic_heldout6.jsonl), is tuning material from then on; its floors are the sixth
round's rates, rounded down, as are the raised floors of held-out 3 and 4. The seventh round raised
the floors to its rates, rounded down, and added the first-sentence floors (``LEAD_FLOOR``).
``heldout7``, 164 plain factual questions written blind at the start of the sixth round and kept
from the tuning sessions (only its rates were read: 151/164 = 0.921 on the engine before the sixth round),
measures 0.939 (zh 0.942, en 0.936, first sentence 0.707) on the eighth round's engine; its floors
are those rates, rounded down, and it is never tuned on. The ninth round raised the floors of
the tuning set (0.981, zh 0.978, en 0.985, first sentence 0.731), of held-out 7 (0.945, zh 0.942,
en 0.949) and of the off-topic questions (21/21) to its rates, rounded down. ``heldout8``, 135
plain factual questions written blind at the start of the ninth round and kept from the tuning
session (its writer's 160 less the 25 another set asks word for word), measured 129/135 = 0.956
(zh 0.958, en 0.952, first sentence 0.748) on the engine before that round; its floors are those
rates, rounded down, and it is never tuned on.
"""

from __future__ import annotations

import pytest

from kai_bridge.knowledge import KnowledgeBase
from tests.knowledge.support import (
    ANSWER_KINDS,
    ANSWER_SPLITS,
    answer_cases,
    carries_fact,
    ends_on_colon,
    has_list_marker,
    labelled_queries,
    leads_with_fact,
    offtopic_questions,
)

FACT_FLOOR = {
    "tuning": 0.98,
    "heldout": 0.96,
    "heldout2": 0.92,
    "heldout3": 0.94,
    "heldout4": 0.935,
    "heldout5": 0.94,
    "heldout6": 0.86,
    "heldout7": 0.94,
    "heldout8": 0.95,
}
LANGUAGE_FLOOR = {
    "tuning": 0.97,
    "heldout": 0.95,
    "heldout2": 0.89,
    "heldout3": 0.93,
    "heldout4": 0.925,
    "heldout5": 0.92,
    "heldout6": 0.82,
    "heldout7": 0.94,
    "heldout8": 0.95,
}
# The share of answers whose first sentence carries the fact (the answer leads with it), from
# the seventh round on, rounded down from its rates.
LEAD_FLOOR = {
    "tuning": 0.73,
    "heldout": 0.74,
    "heldout2": 0.66,
    "heldout3": 0.71,
    "heldout4": 0.67,
    "heldout5": 0.69,
    "heldout6": 0.55,
    "heldout7": 0.70,
    "heldout8": 0.74,
}


def _misses(kb: KnowledgeBase, split: str, language: str | None = None) -> tuple[float, list[str]]:
    cases = [c for c in answer_cases(split) if language is None or c.lang == language]
    misses: list[str] = []
    for case in cases:
        answer = kb.query(case.query, language=case.lang)
        if not carries_fact(answer, case):
            misses.append(f"  [{case.lang}/{case.kind}] {case.query!r}: wants one of {list(case.facts)}")
    return 1 - len(misses) / len(cases), misses


@pytest.mark.parametrize("split", ANSWER_SPLITS)
def test_answers_carry_the_fact_the_question_asks_for(kb: KnowledgeBase, split: str) -> None:
    rate, misses = _misses(kb, split)
    assert rate >= FACT_FLOOR[split], f"{split}: {rate:.3f} < {FACT_FLOOR[split]}; misses:\n" + "\n".join(misses)


@pytest.mark.parametrize("split", ANSWER_SPLITS)
def test_answers_lead_with_the_fact(kb: KnowledgeBase, split: str) -> None:
    cases = answer_cases(split)
    led = sum(leads_with_fact(kb.query(case.query, language=case.lang), case) for case in cases)
    rate = led / len(cases)
    assert rate >= LEAD_FLOOR[split], f"{split}: {rate:.3f} of the answers lead with the fact < {LEAD_FLOOR[split]}"


@pytest.mark.parametrize("split", ANSWER_SPLITS)
@pytest.mark.parametrize("language", ["zh", "en"])
def test_each_language_carries_its_facts(kb: KnowledgeBase, split: str, language: str) -> None:
    rate, misses = _misses(kb, split, language)
    assert rate >= LANGUAGE_FLOOR[split], f"{split}/{language}: {rate:.3f}; misses:\n" + "\n".join(misses)


def test_the_labelled_sets_are_large_and_bilingual() -> None:
    seen: dict[str, str] = {}
    for split in ANSWER_SPLITS:
        cases = answer_cases(split)
        assert len(cases) >= 100
        assert {c.lang for c in cases} == {"zh", "en"}
        assert all(c.facts and c.expected for c in cases)
        assert {c.kind for c in cases} <= set(ANSWER_KINDS)
        for case in cases:
            assert case.query not in seen, f"{case.query!r} is in {seen[case.query]} and {split}"
            seen[case.query] = split


def test_no_answer_ends_on_a_colon_or_shows_a_list_marker(kb: KnowledgeBase) -> None:
    questions = [(c.query, c.lang) for split in ANSWER_SPLITS for c in answer_cases(split)]
    questions += [(q.query, q.lang) for q in labelled_queries()]
    bad: list[str] = []
    for query, language in questions:
        answer = kb.query(query, language=language)
        if ends_on_colon(answer) or has_list_marker(answer):
            bad.append(f"  {query!r}: {answer.answer!r}")
    assert not bad, "answers ending on a colon or with list markers:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("query", "fact", "source"),
    [
        pytest.param("how long should espresso extract", "25-30 seconds", "Espresso", id="espresso-time"),
        pytest.param("what is a flat white", "microfoam", "Milk coffee drinks", id="flat-white-definition"),
        pytest.param("V60 recipe", "15 g coffee to 250 g water", "Hario V60", id="v60-recipe-items"),
        pytest.param("how much caffeine in a cup", "80-120 mg", "Caffeine", id="caffeine-in-a-cup"),
        pytest.param("how to make cold brew", "12-20 hours", "Cold brew", id="cold-brew-steps"),
        pytest.param("冷萃咖啡怎么做", "12–20小时", "冷萃咖啡", id="cold-brew-steps-zh"),
        pytest.param("介绍一下手冲咖啡的技巧", "闷蒸", "V60", id="pour-over-technique-zh"),
    ],
)
def test_the_answers_a_new_user_quoted_now_carry_the_point(kb: KnowledgeBase, query: str, fact: str, source: str) -> None:
    answer = kb.query(query)
    assert fact in answer.answer
    assert source in answer.answer  # it says which article it came from


@pytest.mark.parametrize(
    ("query", "article"),
    [
        pytest.param("where was coffee first drunk", "history-coffee-history", id="first-drunk"),
        pytest.param("who discovered coffee according to legend", "history-coffee-history", id="legend"),
        pytest.param("how long do roasted beans stay fresh", "storage-freshness", id="stay-fresh"),
        pytest.param("when did coffee arrive in Europe", "history-coffee-history", id="europe"),
    ],
)
def test_the_article_that_answers_leads_the_passages(kb: KnowledgeBase, query: str, article: str) -> None:
    assert kb.query(query).passages[0].article_id == article


@pytest.mark.parametrize(
    ("query", "articles"),
    [
        pytest.param("SHB极硬豆是什么意思", {"origin-guatemala", "origin-costa-rica"}, id="shb-costa-rica"),
        pytest.param("新烘的豆子要养几天才好喝", {"storage-freshness"}, id="resting-beans-zh"),
        pytest.param(
            "my pour over drains too slowly and tastes bitter",
            {"extract-contact-time", "grind-size-by-method"},
            id="drains-slowly",
        ),
    ],
)
def test_the_known_misses_now_find_their_articles(kb: KnowledgeBase, query: str, articles: set[str]) -> None:
    found = {p.article_id for p in kb.query(query).passages}
    assert articles <= found


@pytest.mark.parametrize(
    ("query", "article"),
    [
        pytest.param("蜜处理到底是啥", "process-honey", id="what-on-earth-is"),
        pytest.param("4:6冲法是谁搞出来的", "brew-pour-over-v60", id="who-came-up-with"),
        pytest.param("烘一锅豆子一般几分钟", "roast-chemistry", id="usually-how-many-minutes"),
        pytest.param("刚烘的豆子放几天再冲", "roast-home-roasting", id="beans-says-coffee"),
    ],
)
def test_colloquial_chinese_questions_are_not_taken_for_off_topic(kb: KnowledgeBase, query: str, article: str) -> None:
    # Fillers (到底, 啥, 搞, 一般) are question scaffolding, and 豆子 says "coffee" to the gate.
    answer = kb.query(query)
    assert answer.found
    assert article in {p.article_id for p in answer.passages}


@pytest.mark.parametrize(
    ("query", "language"),
    [
        pytest.param("how to make green tea", "en", id="green-tea"),
        pytest.param("history of the Roman empire", "en", id="roman-empire"),
        pytest.param("football", "en", id="football"),
        pytest.param("绿茶怎么泡", "zh", id="green-tea-zh"),
        pytest.param("罗马帝国的历史", "zh", id="roman-empire-zh"),
        pytest.param("足球比赛规则", "zh", id="football-zh"),
        # 豆子 says coffee only loosely; 烂 is in no article: cooking beans, not coffee.
        pytest.param("豆子怎么煮才烂", "zh", id="cooking-beans-zh"),
        # Naming an origin keeps no tea question on topic: Kenya grows tea too.
        pytest.param("肯尼亚红茶怎么样", "zh", id="kenyan-tea-zh"),
        pytest.param("is kenyan tea good", "en", id="kenyan-tea"),
    ],
)
def test_other_drinks_and_fields_find_nothing_and_say_what_is_covered(
    kb: KnowledgeBase, query: str, language: str
) -> None:
    answer = kb.query(query)
    assert not answer.found
    assert answer.passages == []
    assert ("冲煮" if language == "zh" else "brewing") in answer.answer


OFFTOPIC_FLOOR = 1.0  # share of the answer sets' off-topic questions answered found=false


def test_the_answer_sets_off_topic_questions_find_nothing(kb: KnowledgeBase) -> None:
    questions = offtopic_questions()
    assert len(questions) >= 20
    found = [q for q, lang in questions if kb.query(q, language=lang).found]
    rate = 1 - len(found) / len(questions)
    assert rate >= OFFTOPIC_FLOOR, f"{rate:.3f} < {OFFTOPIC_FLOOR}; answered: {found}"


def test_a_coffee_question_about_tea_still_answers(kb: KnowledgeBase) -> None:
    # Naming something of the base (caffeine) keeps a mention of tea on topic.
    answer = kb.query("how much caffeine is in green tea compared with coffee")
    assert answer.found
    assert answer.passages[0].article_id == "health-caffeine"


@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [
        pytest.param("濃縮咖啡萃取時間要多久", "浓缩咖啡萃取时间要多久", id="espresso-time"),
        pytest.param("咖啡豆應該怎麼保存", "咖啡豆应该怎么保存", id="storage"),
        pytest.param("拿鐵和卡布奇諾有什麼區別", "拿铁和卡布奇诺有什么区别", id="latte-vs-cappuccino"),
    ],
)
def test_traditional_chinese_is_answered_like_simplified(kb: KnowledgeBase, traditional: str, simplified: str) -> None:
    a, b = kb.query(traditional), kb.query(simplified)
    assert a.found
    assert [p.article_id for p in a.passages] == [p.article_id for p in b.passages]
    assert a.answer == b.answer
