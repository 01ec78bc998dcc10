from __future__ import annotations

import pytest

from kai_bridge.knowledge.phrases import PhraseMatcher, units
from kai_bridge.knowledge.text import (
    detect_language,
    index_terms,
    normalize,
    sentences,
    stem,
    terms,
    to_simplified,
    tokens,
)


def test_mixed_chinese_and_english_become_bigrams_unigrams_and_stems() -> None:
    got = tokens("V60手冲 brewing")
    by_term = {term: weight for term, weight, _ in got}
    assert by_term["手冲"] == 1.0
    assert by_term["手"] < 1.0
    assert by_term["冲"] < 1.0
    assert "v60" in by_term
    assert "brew" in by_term  # brewing -> brew


def test_chinese_function_words_cut_the_text_so_no_bigram_spans_them() -> None:
    got = terms("咖啡的特点")
    assert "咖啡" in got
    assert "特点" in got
    assert "啡的" not in got
    assert "的特" not in got
    assert "啡特" not in got


def test_english_stopwords_are_dropped_but_pour_over_keeps_over() -> None:
    assert terms("what is the best way to brew") == ["brew"]
    assert terms("pour over") == ["pour", "over"]


def test_hyphenated_words_yield_parts_and_joined_form() -> None:
    assert terms("pour-over") == ["pour", "over", "pourover"]


def test_cupping_is_not_a_form_of_cup() -> None:
    assert stem("cupping") == "cupping"
    assert stem("cups") == "cup"


def test_a_number_glued_to_its_unit_reads_as_number_and_unit() -> None:
    assert terms("15g粉250g水")[:2] == ["15", "g"]
    assert "250" in terms("15g粉250g水")
    assert terms("9bar") == ["9", "bar"]
    assert terms("v60 sl28") == ["v60", "sl28"]  # a name ending in digits is left alone


def test_full_width_and_accents_are_normalised() -> None:
    assert normalize("ＥＳＰＲＥＳＳＯ Café") == "espresso cafe"


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        pytest.param("roasted", "roast", id="ed"),
        pytest.param("roasting", "roast", id="ing"),
        pytest.param("roasts", "roast", id="plural"),
        pytest.param("varieties", "variety", id="ies"),
        pytest.param("dripping", "drip", id="doubled-consonant"),  # (cupping is kept whole, see below)
        pytest.param("process", "process", id="ss-kept"),
        pytest.param("espresso", "espresso", id="unchanged"),
    ],
)
def test_stemmer_makes_inflections_meet(word: str, expected: str) -> None:
    assert stem(word) == expected


def test_index_fast_path_yields_the_same_terms_as_the_query_analysis() -> None:
    text = "埃塞俄比亚的日晒豆 has blueberry notes; pour-over at 93°C, coffee's body"
    assert index_terms(text)[0] == [term for term, _, _ in tokens(text)]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param("埃塞俄比亚咖啡特点", "zh", id="chinese"),
        pytest.param("V60 手冲", "zh", id="mixed-is-chinese"),
        pytest.param("Ethiopian coffee", "en", id="english"),
        pytest.param("123 !!", "en", id="no-letters"),
    ],
)
def test_language_is_zh_when_any_cjk_character_is_present(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_sentences_split_on_chinese_and_english_punctuation() -> None:
    body = "第一句。第二句！\nFirst one. Second one? Third."
    assert sentences(body) == ["第一句。", "第二句！", "First one.", "Second one?", "Third."]


def test_phrase_matcher_finds_names_in_both_scripts_and_joined_spelling() -> None:
    matcher = PhraseMatcher([("埃塞俄比亚", "eth"), ("pour over", "pour"), ("耶加雪菲G1", "yirga")])
    hits = matcher.find(units("埃塞俄比亚的耶加雪菲g1适合pourover吗"))
    assert {(h.phrase, next(iter(h.payloads))) for h in hits} == {
        ("埃塞俄比亚", "eth"),
        ("耶加雪菲g1", "yirga"),
        ("pourover", "pour"),
    }


def test_phrase_matcher_ignores_single_cjk_character_names() -> None:
    assert len(PhraseMatcher([("豆", "bean")])) == 0


@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [
        pytest.param("濃縮咖啡", "浓缩咖啡", id="espresso"),
        pytest.param("萃取時間", "萃取时间", id="extraction-time"),
        pytest.param("臺灣阿里山", "台湾阿里山", id="taiwan"),
        pytest.param("拿鐵", "拿铁", id="latte"),
    ],
)
def test_traditional_characters_fold_to_simplified_on_both_sides(traditional: str, simplified: str) -> None:
    assert to_simplified(traditional) == simplified
    assert terms(traditional) == terms(simplified)


def test_simplified_and_latin_text_is_left_alone_by_the_fold() -> None:
    text = "埃塞俄比亚咖啡 Ethiopia café 25–30 秒"
    assert to_simplified(text) == text


@pytest.mark.parametrize(
    ("word", "stemmed"),
    [
        pytest.param("drunk", "drink", id="drunk"),
        pytest.param("drinking", "drink", id="drinking"),
        pytest.param("grown", "grow", id="grown"),
        pytest.param("founded", "found", id="founded-is-not-find"),
    ],
)
def test_irregular_verbs_meet_their_verb(word: str, stemmed: str) -> None:
    assert stem(word) == stemmed
