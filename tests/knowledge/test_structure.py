"""parse_body: article bodies as paragraphs, list intros and items, split into sentences."""

from __future__ import annotations

import pytest

from kai_bridge.knowledge.facts import DURATION, STEPS, TEMPERATURE, PlaceNames
from kai_bridge.knowledge.structure import INTRO, ITEM, PARA, ArticleText, parse_body, text_from_state, text_state

PLACES = PlaceNames(en=["Kenya"], zh=["肯尼亚"])


def _parse(body: str, language: str = "en") -> ArticleText:
    return parse_body(body, language=language, places=PLACES)


def test_a_colon_announces_a_list_whose_marked_items_follow_even_after_a_blank_line() -> None:
    text = _parse("Typical times:\n\n- Espresso: 25-30 seconds\n- French press: 4 minutes\nAfter the list.")
    roles = [b.role for b in text.blocks]
    assert roles == [INTRO, ITEM, ITEM, PARA]
    assert text.blocks[1].list_id == text.blocks[0].list_id == text.blocks[2].list_id
    assert text.blocks[3].list_id == -1
    assert [s.text for s in text.sentences[1:3]] == ["Espresso: 25-30 seconds", "French press: 4 minutes"]


def test_list_markers_are_stripped_and_numbered_steps_are_steps() -> None:
    text = _parse("Steps:\n1. Rinse the filter.\n2. Add the coffee.")
    assert [s.text for s in text.sentences] == ["Steps:", "Rinse the filter.", "Add the coffee."]
    assert all(s.kinds & STEPS for s in text.sentences)


def test_labelled_chinese_lines_after_an_intro_are_items_until_an_unlabelled_one() -> None:
    text = _parse("参考做法：\n即饮型：浸泡12–20小时。\n浓缩液：粉水比1:4。\n冷萃要注意卫生。", "zh")
    assert [b.role for b in text.blocks] == [INTRO, ITEM, ITEM, PARA]
    assert text.sentences[1].kinds & DURATION


def test_an_intro_carries_what_its_items_carry() -> None:
    text = _parse("A starting recipe:\n- Water at 92-96 °C\n- Steep for 4 minutes")
    intro = text.blocks[0]
    assert intro.role == INTRO
    assert intro.item_kinds & TEMPERATURE
    assert intro.item_kinds & DURATION
    assert 0 in text.by_kind[TEMPERATURE]  # the intro answers "what temperature" with its items


def test_inline_enumeration_markers_disappear_from_the_sentence() -> None:
    text = _parse("典型流程：一、采收；二、脱皮；三、发酵。", "zh")
    assert "一、" not in text.sentences[0].text
    assert "二、" not in text.sentences[0].text
    assert "采收；脱皮；发酵" in text.sentences[0].text


def test_item_labels_name_what_the_item_is_about() -> None:
    text = _parse("Drinks:\n- Pour-over and drip: 1:15-1:17.\n- Latte (caffè latte, milk coffee): milky.")
    pour, latte = text.blocks[1], text.blocks[2]
    assert frozenset({"drip"}) in pour.heads
    assert any({"pour", "over"} <= segment for segment in pour.heads)
    assert latte.heads == (frozenset({"latt"}),)  # the parenthesis is not the thing named


@pytest.mark.parametrize("language", ["zh", "en"])
def test_a_parsed_body_survives_the_prebuilt_state_round_trip(language: str) -> None:
    body = "Lead sentence. Second one.\n\nA recipe:\n- 18 g in\n- 36 g out" if language == "en" else "第一句。第二句。\n参考：\n粉量18克。"
    text = _parse(body, language)
    assert text_from_state(text_state(text), language=language) == text
