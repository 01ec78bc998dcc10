"""What a question asks for and what a sentence carries, in both languages."""

from __future__ import annotations

import pytest

from kai_bridge.knowledge import KnowledgeBase
from kai_bridge.knowledge.facts import (
    ALTITUDE,
    CAUSE,
    COMPARISON,
    DATE,
    DEFINITION,
    DURATION,
    GRIND,
    NAMING,
    PERSON,
    PLACE,
    PROFILE,
    QUANTITY,
    RATIO,
    STEPS,
    TEMPERATURE,
    PlaceNames,
    carries_value,
    question_kinds,
    sentence_kinds,
    strip_scaffolding,
)


@pytest.mark.parametrize(
    ("question", "primary"),
    [
        pytest.param("how long should espresso extract", DURATION, id="how-long"),
        pytest.param("冷萃咖啡要泡多长时间", DURATION, id="zh-duration"),
        pytest.param("what temperature for aeropress", TEMPERATURE, id="temperature"),
        pytest.param("手冲水温多少度合适", TEMPERATURE, id="zh-temperature"),
        pytest.param("moka pot ratio", RATIO, id="ratio"),
        pytest.param("摩卡壶的粉水比是多少", RATIO, id="zh-ratio"),
        pytest.param("what altitude does arabica grow at", ALTITUDE, id="altitude"),
        pytest.param("how much caffeine in a cup", QUANTITY, id="quantity"),
        pytest.param("when did coffee arrive in Europe", DATE, id="date"),
        pytest.param("where was coffee first drunk", PLACE, id="place"),
        pytest.param("蓝山咖啡产自哪里", PLACE, id="zh-place"),
        pytest.param("who invented the AeroPress", PERSON, id="person"),
        pytest.param("爱乐压是谁发明的", PERSON, id="zh-person"),
        pytest.param("what is a flat white", DEFINITION, id="definition"),
        pytest.param("how do I make Turkish coffee", STEPS, id="steps"),
        pytest.param("冷萃咖啡怎么做", STEPS, id="zh-steps"),
        pytest.param("latte vs cappuccino", COMPARISON, id="comparison"),
        pytest.param("why is my espresso bitter", CAUSE, id="cause"),
        pytest.param("咖啡豆能放冰箱冷藏吗", CAUSE, id="zh-can-i"),
        pytest.param("咖啡太苦怎么办", CAUSE, id="zh-what-to-do-is-a-fix-not-steps"),
        pytest.param("法压壶压杆压不下去怎么回事", CAUSE, id="zh-what-is-wrong-is-a-cause"),
        pytest.param("what does Kenyan coffee taste like", PROFILE, id="profile-not-definition"),
        pytest.param("what is a good extraction yield", QUANTITY, id="a-good-value-not-definition"),
        pytest.param("how fine should I grind for a moka pot", GRIND, id="grind"),
        pytest.param("法压壶的粉要磨多粗", GRIND, id="zh-grind"),
        pytest.param("why is it called a flat white", NAMING, id="naming"),
        pytest.param("摩卡这个名字是怎么来的", NAMING, id="zh-naming"),
        pytest.param("意式浓缩调试的顺序", STEPS, id="zh-order-is-steps"),
        pytest.param("when do you add sugar to Turkish coffee", STEPS, id="when-in-a-method-is-no-date"),
        pytest.param("土耳其咖啡什么时候加糖", STEPS, id="zh-when-in-a-method-is-no-date"),
        pytest.param("咖啡是什么时候传入中国的", DATE, id="zh-when-in-history-is-a-date"),
        pytest.param("接触时间是什么意思", DEFINITION, id="zh-the-meaning-of-a-time-term"),
        pytest.param("what does extraction time mean", DEFINITION, id="the-meaning-of-a-time-term"),
        pytest.param("风味轮是干什么用的", DEFINITION, id="zh-what-it-is-for"),
        pytest.param("what is the flavor wheel used for", DEFINITION, id="what-it-is-for"),
    ],
)
def test_the_question_says_what_kind_of_fact_it_wants(question: str, primary: int) -> None:
    kinds, first = question_kinds(question)
    assert first == primary
    assert kinds & primary


@pytest.mark.parametrize("question", ["how long do roasted beans stay fresh", "how much coffee do I use for a moka pot"])
def test_a_verb_after_how_long_or_how_much_asks_for_no_procedure(question: str) -> None:
    # "do" there is an auxiliary (or the thing measured), not "how do I make...".
    assert not question_kinds(question)[0] & STEPS


def test_a_question_with_no_cue_asks_for_nothing_in_particular() -> None:
    assert question_kinds("Ethiopia Yirgacheffe") == (0, 0)


PLACES = PlaceNames(en=["Yemen"], zh=["也门"])


@pytest.mark.parametrize(
    ("sentence", "language", "kind"),
    [
        pytest.param("25-30 seconds, timed from pressing the button", "en", DURATION, id="seconds"),
        pytest.param("Total brew time about 2:30-3:30", "en", DURATION, id="clock-range"),
        pytest.param("Steep two to three minutes, stir gently.", "en", DURATION, id="number-words"),
        pytest.param("萃取时间25–30秒", "zh", DURATION, id="zh-seconds"),
        pytest.param("Water at 92-96 °C", "en", TEMPERATURE, id="celsius"),
        pytest.param("15 g coffee to 250 g water, about 1:16", "en", RATIO, id="ratio"),
        pytest.param("mostly at 1,200-2,000 m", "en", ALTITUDE, id="metres"),
        pytest.param("about 80-120 mg", "en", QUANTITY, id="milligrams"),
        pytest.param("coffee reached Brazil in 1727", "en", DATE, id="year"),
        pytest.param("Sufi devotees in Yemen drank coffee", "en", PLACE, id="place"),
        pytest.param("introduced in 2005 by the American inventor Alan Adler", "en", PERSON, id="person"),
        pytest.param("若滴完时间超过4分钟且口感发苦，磨粗一点", "zh", CAUSE, id="zh-cause"),
        pytest.param("with a thicker foam layer than a latte", "en", COMPARISON, id="comparison"),
        pytest.param("jasmine, bergamot and lemon notes", "en", PROFILE, id="profile"),
        pytest.param("launched by the Japanese company Hario in 2004", "en", PERSON, id="a-company-made-it"),
        pytest.param("咖啡在1727年由帕列塔从法属圭亚那带入", "zh", PERSON, id="zh-agent-before-the-deed"),
        pytest.param("light roasts fall around Agtron 65-95", "en", QUANTITY, id="a-bare-range-is-a-value"),
        pytest.param("French press: coarse, like coarse sea salt", "en", GRIND, id="grind"),
        pytest.param("土耳其咖啡：极细，如面粉", "zh", GRIND, id="zh-grind"),
        pytest.param("named for its 60-degree cone angle", "en", NAMING, id="named-for"),
        pytest.param("在岛上形成了这一品系，并以岛名命名", "zh", NAMING, id="zh-named"),
    ],
)
def test_a_sentence_carries_its_kinds_of_fact(sentence: str, language: str, kind: int) -> None:
    assert sentence_kinds(sentence, language=language, places=PLACES) & kind


@pytest.mark.parametrize(
    ("sentence", "kind"),
    [
        pytest.param("named for its 60-degree cone angle", TEMPERATURE, id="degree-angle-is-no-temperature"),
        pytest.param("15 g coffee to 250 g water, about 1:16-1:17", DURATION, id="ratio-is-no-clock-time"),
        pytest.param("It is light and nearly unbreakable.", PLACE, id="no-place"),
        pytest.param("Steep for 4 minutes, then plunge slowly.", GRIND, id="no-grind"),
        pytest.param("It is light and nearly unbreakable.", QUANTITY, id="no-number-no-quantity"),
    ],
)
def test_a_sentence_does_not_carry_what_only_looks_like_it(sentence: str, kind: int) -> None:
    assert not sentence_kinds(sentence, language="en", places=PLACES) & kind


@pytest.mark.parametrize(
    ("question", "gone", "kept"),
    [
        pytest.param("how long does a chemex brew take", ("long", "take"), ("chemex", "brew"), id="duration-frame"),
        pytest.param("what does Sumatra coffee taste like", ("taste", "like"), ("Sumatra",), id="profile-frame"),
        pytest.param("新烘的豆子要养几天才好喝", ("几天", "好喝", "要", "才"), ("养", "豆子"), id="zh-frame"),
        pytest.param("Kenya AA meaning", ("meaning",), ("Kenya", "AA"), id="meaning"),
        pytest.param("波旁这个名字是怎么来的", ("名字", "怎么来的"), ("波旁",), id="zh-naming-frame"),
    ],
)
def test_scaffolding_words_are_cut_out_of_the_terms(question: str, gone: tuple[str, ...], kept: tuple[str, ...]) -> None:
    stripped = strip_scaffolding(question)
    for word in gone:
        assert word not in stripped.split()
        assert word.isascii() or word not in stripped
    for word in kept:
        assert word in stripped


def test_carries_value_agrees_with_sentence_kinds_on_every_sentence_of_the_corpus(kb: KnowledgeBase) -> None:
    # The composer asks carries_value of whole answers; it must say what sentence_kinds says.
    none = PlaceNames(en=(), zh=())
    kinds = (DURATION, TEMPERATURE, RATIO, QUANTITY, DATE, PERSON, ALTITUDE)
    checked = 0
    for texts in kb._index.texts:
        for language in ("zh", "en"):
            for sentence in texts[language].sentences:
                found = sentence_kinds(sentence.text, language=language, places=none)
                for kind in kinds:
                    assert carries_value(sentence.text, kind) == bool(found & kind), (sentence.text, kind)
                    checked += 1
    assert checked > 10_000
