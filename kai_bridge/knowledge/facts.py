"""What a question asks for, and what a sentence carries: the kinds of fact, in zh and en.

A question asks for one or more kinds of fact (a duration, a temperature, a ratio, a
quantity, a date, a place, a person, a definition, steps, a comparison, a cause or fix, a
taste profile). :func:`question_kinds` reads them off the question's wording;
:func:`sentence_kinds` tells which kinds a sentence of an article carries (a number with a
time unit, a °C figure, a 1:16 ratio, a year, a place name, an inventor...). The answer is
built around a sentence that carries what was asked.

Kinds are bits of an ``int`` so a sentence's kinds are computed once, at index build, and a
query tests them with one ``&``. :func:`strip_scaffolding` removes the words that only say
*what kind* of answer is wanted (多久, 几天, "how long"), which would otherwise be matched as
topic words (几天 is no topic; "long" matches "longberry").
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ALTITUDE",
    "CAUSE",
    "COMPARISON",
    "DATE",
    "DEFINITION",
    "DURATION",
    "GRIND",
    "KIND_NAMES",
    "NAMING",
    "NORM_VALUE",
    "PERSON",
    "PLACE",
    "PROFILE",
    "QUANTITY",
    "RATIO",
    "STEPS",
    "TEMPERATURE",
    "TOTAL_TIME",
    "PlaceNames",
    "flavour_notes",
    "kind_names",
    "name_text",
    "question_kinds",
    "sentence_kinds",
    "steps_intro",
    "strip_scaffolding",
]

DURATION = 1 << 0
TEMPERATURE = 1 << 1
RATIO = 1 << 2
QUANTITY = 1 << 3
DATE = 1 << 4
PLACE = 1 << 5
PERSON = 1 << 6
DEFINITION = 1 << 7
STEPS = 1 << 8
COMPARISON = 1 << 9
CAUSE = 1 << 10
PROFILE = 1 << 11
ALTITUDE = 1 << 12
GRIND = 1 << 13  # a grind size: fine / coarse, like flour / sea salt, microns
NAMING = 1 << 14  # where a name comes from: named for / after, 得名, 以...命名

KIND_NAMES: dict[int, str] = {
    DURATION: "duration",
    TEMPERATURE: "temperature",
    RATIO: "ratio",
    QUANTITY: "quantity",
    DATE: "date",
    PLACE: "place",
    PERSON: "person",
    DEFINITION: "definition",
    STEPS: "steps",
    COMPARISON: "comparison",
    CAUSE: "cause",
    PROFILE: "profile",
    ALTITUDE: "altitude",
    GRIND: "grind",
    NAMING: "naming",
}


def kind_names(kinds: int) -> list[str]:
    return [name for bit, name in KIND_NAMES.items() if kinds & bit]


def _rx(*parts: str) -> re.Pattern[str]:
    """A pattern over lower-cased text (no IGNORECASE: it makes large alternations ~5x slower)."""
    return re.compile("|".join(parts))


# --- what a question asks for ---------------------------------------------------------------
# Per kind: English phrases (1-3 words, matched as word n-grams of the lower-cased question),
# English word prefixes, and Chinese substrings. Look-ups in tables built from them (below),
# not regular expressions: this runs on every question, and a dozen large case-insensitive
# patterns cost ~100 us (a dozen alternations of Chinese words searched one by one, ~10 us).
# Order matters only for ``primary``: the first kind found is the most specific one.
@dataclass(frozen=True, slots=True)
class _Cue:
    kind: int
    phrases: frozenset[str]
    prefixes: tuple[str, ...]
    zh: tuple[str, ...]


def _cue(kind: int, phrases: str, prefixes: str, zh: str) -> _Cue:
    return _Cue(
        kind,
        frozenset(p.strip() for p in phrases.split(",") if p.strip()),
        tuple(prefixes.split()),
        tuple(zh.split()),
    )


_TIMED = ["brew", "brewing", "steep", "steeping", "extraction", "contact", "drawdown", "bloom", "roast", "roasting", "rest", "resting", "drying", "fermentation", "total", "cook", "cooking"]
_CUES: tuple[_Cue, ...] = (
    _cue(
        DURATION,
        "how long, how soon, how quickly, half life, shelf life, stay fresh, stays fresh, "
        + ", ".join(f"how many {u}" for u in ["seconds", "minutes", "hours", "days", "weeks", "months", "years"]) + ", "
        + ", ".join(f"{w} time" for w in _TIMED) + ", " + ", ".join(f"{w} times" for w in _TIMED),
        "",
        "多久 多长时间 多长 多少时间 几分钟 多少分钟 几秒 多少秒 几天 多少天 几小时 几个小时 多少小时 几周 几个月 "
        "时间 时长 半衰期 保鲜 保质期 赏味期 维持",
    ),
    _cue(
        GRIND,
        "grind size, grind sizes, how fine, how coarse, what grind, which grind, grind setting, how fine should, "
        "coarse or fine, fine or coarse, grind for",
        "",
        "研磨度 磨多细 磨多粗 多粗 多细 粗细 磨得多 研磨粗",
    ),
    _cue(TEMPERATURE, "how hot, temp, temps, degree, degrees, celsius, fahrenheit", "temperature boil", "温度 多少度 几度 水温 度合适 沸 °"),
    _cue(
        RATIO,
        "ratio, ratios, proportion, coffee to water, how much coffee, dose, per cup, per litre, per liter, "
        "grams of coffee, gram of coffee",
        "",
        "比例 粉水比 粉液比 配比 多少粉 克粉 用量 比是多少 多少水 几比几",
    ),
    _cue(ALTITUDE, "altitude, altitudes, elevation, elevations, how high, above sea level", "", "海拔 多高"),
    _cue(
        QUANTITY,
        "how much, how many, how big, how large, how heavy, how high, how strong, amount, content, "
        "altitude, elevation, price, cost, pressure, score, calories, weight, size",
        "percent",
        "多少 多大 多高 多重 海拔 含量 容量 价格 压力 分数 多少分 几克 几杯 热量 几成 几倍",
    ),
    _cue(
        DATE,
        "when, what year, which year, century, what date, history, season, harvest",
        "",
        "什么时候 何时 哪年 哪一年 几几年 年份 世纪 历史 采收季 季节 几月 哪个年代",
    ),
    _cue(
        PLACE,
        "where, which country, which countries, which region, which regions, which island, which city, "
        "what country, what countries, what region, what regions, come from, comes from, came from, native, "
        "regions, origin of, originally from",
        "",
        "哪里 哪儿 在哪 哪个国家 哪国 哪些国家 哪个地区 哪些产区 产区 原产 起源 发源 来自 哪里的 产自",
    ),
    _cue(
        PERSON,
        "who, whom, invent, invented, inventor, inventors, founder, discovered, designed, named after",
        "",
        "谁 哪位 发明人 发明者 创始人 发现者 发明 发现了",
    ),
    _cue(
        NAMING,
        "it called, is called, are called, its name, the name, name come, name from, name mean, why called, "
        "named for, get its name, got its name, get their name",
        "",
        "名字 得名 为什么叫 名称的由来 名称由来 叫这个名",
    ),
    _cue(
        DEFINITION,
        "define, definition, meaning, mean, stand for, stands for, what kind of, it called, is called, are called, "
        "its name, the name, name come, name from, used for, is for, are for",
        "",
        "是什么 什么是 什么叫 意思 定义 指什么 代表什么 是啥 啥是 由来 怎么来的 名字 干什么用 做什么用 有什么用 "
        "用来做什么 干嘛用 是干嘛的",
    ),
    _cue(
        STEPS,
        "recipe, step, steps, method, procedure, instructions, guide, technique, techniques, tip, tips, "
        "how do i, how do you, how should i, how can i, how do we, how does one, what order, which order, "
        "in order, sequence",
        "",
        "怎么做 怎么冲 怎么煮 怎么用 怎么泡 怎么打 怎么保存 怎样 如何 做法 步骤 方法 教程 技巧 流程 参数 配方 "
        "怎么调 怎么弄 怎么制作 怎么 顺序 先后",
    ),
    # ("best" is no cue: "best grinder for pour over" asks for a recommendation, and the bonus
    # went to the grinder article's "stepped versus stepless" rather than its burr grinders.)
    _cue(
        COMPARISON,
        "vs, versus, differ, better, which is, which one, than",
        "differen compar",
        "区别 不同 差别 差异 比较 对比 哪个好 哪种好 还是 相比 更好 什么好 用什么 不一样",
    ),
    _cue(
        CAUSE,
        "why, cause, causes, fix, bitter, sour, muddy, burnt, burned, astringent, watery, what should i, should i, bad for, safe, healthy, can i, "
        "is it ok, is it okay, is it bad, "
        + ", ".join(f"too {w}" for w in ["slow", "slowly", "fast", "quickly", "bitter", "sour", "weak", "strong", "fine", "coarse"]),
        "problem",
        "为什么 为何 为啥 咋办 咋回事 怎么回事 原因 怎么办 太苦 太酸 太淡 太慢 太快 发苦 发酸 苦涩 太涩 发涩 有点苦 有点酸 有点涩 解决 问题 会不会 健康 致癌 安全",
    ),
    _cue(
        PROFILE,
        "taste, tastes, flavor, flavors, flavour, flavours, profile, notes, aroma, characteristic, "
        "characteristics, like",
        "smell",
        "特点 特色 特征 风味 口感 味道 好喝 起来 香气 酸质",
    ),
)
_STEP_VERBS = frozenset(
    ["make", "brew", "use", "prepare", "store", "steam", "dial", "do", "clean", "roast", "freeze", "grind", "pour", "froth", "keep", "made", "brewed", "processed"]
)
# "how long do beans stay fresh", "how much coffee do I use": "how" asks for a measure there,
# and the verb after it is an auxiliary or the thing measured, not a procedure asked for.
_MEASURED = frozenset(["long", "much", "many", "often"])
_WORDS = re.compile(r"[a-z0-9]+")
_CJK = re.compile("[\u3400-\u9fff\uf900-\ufaff]")


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None
# Chinese yes/no questions about a possibility ask for a cause or a caution: 可以...吗, 能...吗.
_ZH_MEANING = re.compile("什么意思|什么是|指什么|的定义|是指什么|含义")
_EN_MEANING = frozenset(["meaning", "mean", "means", "define", "definition", "stand for", "stands for"])
_ZH_USED_FOR = re.compile("干什么用|做什么用|有什么用|用来做什么|干嘛用|是干嘛的|用途")
_WHEN_AUX = frozenset(["do", "does", "should", "can", "must", "to"])
_WHEN_WHO = frozenset(["you", "i", "we", "one", "they"])
_ZH_WHEN_STEP = re.compile("什么时候(?:要|该|应该|可以|才)?(?:加|放|倒|喝|冲|磨|煮|关|停|出锅|离火|开始|结束|换|洗|压|搅|取)")
_GOOD_VALUE = frozenset(["good", "ideal", "right", "recommended", "normal", "typical", "proper", "correct", "optimal"])
_ZH_CAN = re.compile(r"(?:可以|能|会).{0,12}吗")
_ZH_KIND_NOUNS = {
    **dict.fromkeys(["顺序", "步骤", "方法", "做法", "流程", "配方", "技巧", "要点"], STEPS),
    **dict.fromkeys(["原因", "影响", "风险", "好处", "坏处", "危害", "后果"], CAUSE),
    **dict.fromkeys(["区别", "差别", "差异"], COMPARISON),
    **dict.fromkeys(["时间", "时长"], DURATION),
    **dict.fromkeys(["温度", "水温"], TEMPERATURE),
    **dict.fromkeys(["比例", "粉水比", "粉液比"], RATIO),
}
_ZH_KIND_NOUN = re.compile(
    "(" + "|".join(sorted(_ZH_KIND_NOUNS, key=len, reverse=True)) + ")(?:是|有)(?:什么|啥|哪些|多少|怎样)"
)
_ZH_WHY_CALLED = re.compile("(?:为什么|为啥|为何).{0,8}?(?:叫|称为|称作|被称)")
_ZH_FIX = re.compile("怎么办|咋办|怎么回事|咋回事")
_ZH_WHAT_HAPPENS = re.compile("会怎样|会怎么样|会发生什么|会有什么影响|有什么影响|有什么后果")

# The cues as tables: each English phrase -> the kinds listing it; the prefixes of each kind;
# each Chinese word (the cues' and those of the literal patterns above, as flags above the
# kinds' bits) by its first character, so one pass over the question finds all of them.
_PHRASE_KINDS: dict[str, int] = {}
for _c in _CUES:
    for _phrase in _c.phrases:
        _PHRASE_KINDS[_phrase] = _PHRASE_KINDS.get(_phrase, 0) | _c.kind
_PREFIXED = tuple((c.prefixes, c.kind) for c in _CUES if c.prefixes)
_CUE_ORDER = tuple(c.kind for c in _CUES)
_CUE_KINDS = sum(set(_CUE_ORDER))
_ZH_MEANING_FLAG, _ZH_USED_FOR_FLAG, _ZH_WHAT_HAPPENS_FLAG = 1 << 20, 1 << 21, 1 << 22
_ZH_WORDS = [(word, c.kind) for c in _CUES for word in c.zh] + [
    (word, flag)
    for pattern, flag in (
        (_ZH_MEANING, _ZH_MEANING_FLAG),
        (_ZH_USED_FOR, _ZH_USED_FOR_FLAG),
        (_ZH_WHAT_HAPPENS, _ZH_WHAT_HAPPENS_FLAG),
    )
    for word in pattern.pattern.split("|")
]
_ZH_BY_FIRST: dict[str, tuple[tuple[str, int], ...]] = {}
for _word, _bit in _ZH_WORDS:
    _ZH_BY_FIRST[_word[0]] = (*_ZH_BY_FIRST.get(_word[0], ()), (_word, _bit))


def _zh_cues(question: str) -> int:
    """The kinds (and flags) of every Chinese cue word in ``question``, overlapping or not."""
    found = 0
    by_first = _ZH_BY_FIRST
    for i, char in enumerate(question):
        entries = by_first.get(char)
        if entries is not None:
            for word, bit in entries:
                if question.startswith(word, i):
                    found |= bit
    return found


@functools.lru_cache(maxsize=8192)
def _prefix_kinds(word: str) -> int:
    """The kinds with a prefix that starts ``word``."""
    return sum(kind for prefixes, kind in _PREFIXED if word.startswith(prefixes))


def question_kinds(question: str) -> tuple[int, int]:
    """``(kinds, primary)``: every kind the question asks for, and the first (most specific)."""
    lower = question.lower()
    words = _WORDS.findall(lower)
    grams = set(words)
    if len(words) > 1:
        grams.update([f"{a} {b}" for a, b in itertools.pairwise(words)])
        grams.update([f"{a} {b} {c}" for a, b, c in zip(words, words[1:], words[2:], strict=False)])
    cjk = has_cjk(question)
    zh = _zh_cues(question) if cjk else 0
    kinds = zh & _CUE_KINDS
    for gram in grams:
        kinds |= _PHRASE_KINDS.get(gram, 0)
    for word in words:
        kinds |= _prefix_kinds(word)
    primary = next((kind for kind in _CUE_ORDER if kinds & kind), 0)
    if words:
        # "what is X", "what does X mean", "how to make X", "how is X made".
        if words[0] == "what" and len(words) > 1 and words[1] in ("is", "are", "was", "were", "s"):
            if not primary and not _GOOD_VALUE.isdisjoint(words[2:4]):
                # "what is a good extraction yield": a value is wanted, not what the thing is.
                kinds, primary = kinds | QUANTITY, QUANTITY
            kinds, primary = kinds | DEFINITION, primary or DEFINITION
        if words[0] in ("explain", "describe"):
            kinds, primary = kinds | DEFINITION, primary or DEFINITION
        if "how" in grams and any(
            w in _STEP_VERBS
            for i, w in enumerate(words)
            if i and "how" in words[max(0, i - 4) : i] and _MEASURED.isdisjoint(words[max(0, i - 4) : i])
        ):
            kinds, primary = kinds | STEPS, primary or STEPS
        if "more" in grams and "than" in grams:
            kinds |= COMPARISON
    if cjk and _ZH_CAN.search(question):
        kinds, primary = kinds | CAUSE, primary or CAUSE
    # "接触时间是什么意思", "what does contact time mean": the term is the subject, its meaning
    # is asked (a duration word in the name does not make it a duration question).
    if kinds & DEFINITION and primary != DEFINITION and primary not in (NAMING, PROFILE) and (
        zh & _ZH_MEANING_FLAG or not _EN_MEANING.isdisjoint(grams)
    ):
        primary = DEFINITION
    # "when do you add the sugar", 什么时候加糖: the moment in a method, not a date in history.
    if primary == DATE and (
        (len(words) > 2 and words[0] == "when" and words[1] in _WHEN_AUX and words[2] in _WHEN_WHO)
        or (cjk and _ZH_WHEN_STEP.search(question) is not None)
    ):
        kinds = (kinds & ~DATE) | STEPS
        primary = STEPS
    # "意式浓缩调试的顺序是什么", "冲煮时间是多少": the noun before 是什么 names the kind asked
    # for (the order, the reason, the time); the thing it belongs to is not being defined.
    if cjk and primary == DEFINITION and not zh & _ZH_MEANING_FLAG:
        noun = _ZH_KIND_NOUN.search(question)
        if noun is not None:
            asked = _ZH_KIND_NOUNS[noun.group(1)]
            kinds, primary = kinds | asked, asked
    # "what happens when you underdevelop a roast", "what if the water is too hot": a
    # condition and its effect (a cause), not a date; likewise 会怎样 / 会怎么样.
    if (
        (words and ("what happens" in grams or "what happened" in grams or "what if" in grams))
        or zh & _ZH_WHAT_HAPPENS_FLAG
    ) and primary in (0, DATE, DEFINITION):
        if "what year" not in grams and "which year" not in grams:
            kinds &= ~DATE
        kinds, primary = kinds | CAUSE, CAUSE
    # 怎么办 / 怎么回事 ask for the fix or the cause of a problem (咖啡太苦怎么办), not for a
    # procedure: the 怎么 inside them is not a steps cue.
    if cjk and primary == STEPS and kinds & CAUSE and _ZH_FIX.search(question) is not None:
        if not _zh_cues(_ZH_FIX.sub("", question)) & STEPS:  # (怎么... elsewhere in it)
            kinds &= ~STEPS
        primary = CAUSE
    # A question about taste is not a definition question ("what does Kenyan coffee taste like").
    if kinds & PROFILE and kinds & DEFINITION and primary == DEFINITION:
        primary = PROFILE
    # "why is coffee called java", 为什么瑰夏又叫艺伎: where a name comes from, not a cause.
    if (words and words[0] == "why" and "called" in grams) or (cjk and _ZH_WHY_CALLED.search(question) is not None):
        kinds, primary = kinds | NAMING, NAMING
    # "风味轮是干什么用的", "what is the flavor wheel used for": what the thing is for.
    if zh & _ZH_USED_FOR_FLAG or "used for" in grams:
        kinds, primary = kinds | DEFINITION, DEFINITION
    return kinds, primary


# Scaffolding: words that only say what kind of answer is wanted. Cut out of the question
# before its terms are analysed (the kinds above are read from the full question).
_SCAFFOLD_EN = re.compile(
    r"\bhow (?:long|hot|big|large|old|far|soon)\b|\b(?:what|which) (?:year|century)\b|\bmeaning\b|\bmeans?\b"
    r"|\bstands? for\b|\baccording to\b",
    re.I,
)
# "how long does it take / last / stay fresh": the verb is part of the frame.
_SCAFFOLD_EN_DURATION = re.compile(r"\b(?:take|takes|taking|last|lasts|stay|stays)\b", re.I)
# "why is it called X", "波旁这个名字是怎么来的": the words that ask where a name comes from.
_SCAFFOLD_NAMING = re.compile(
    r"\b(?:why is it|why are they|is it|are they)?\s*called\b|\b(?:its|the|their) names?\b|\bname (?:come|from|mean)\b"
    r"|这个名字|名字|名称|得名|的由来|由来|是怎么来的|怎么来的|为什么叫",
    re.I,
)
# "burundi coffee flavor notes": in a question asking for a taste first, the taste words only
# say a profile is wanted (kept when nothing else is left: "flavor notes").
_SCAFFOLD_EN_PROFILE = re.compile(r"\b(?:flavou?rs?|notes|profile|aromas?)\b", re.I)
# "what does X taste like": the taste words only say a profile is wanted (a PROFILE kind).
_SCAFFOLD_TASTE = re.compile(r"\btastes? like\b|\btastes?\b$|\btastes?(?=\W*$)", re.I)
# "why does my coffee taste sour", "coffee tastes burnt": a complaint; "taste" is its verb (the
# flavour wheel's "coffee taste" is not what is asked about), the complaint word is the subject.
_SCAFFOLD_TASTE_COMPLAINT = re.compile(
    r"\btast(?:es?|ing)\b(?=\s+(?:(?:too|so|very|really|a bit|kind of|quite|a little|weirdly)\s+)?"
    r"(?:sour|bitter|burnt|burned|astringent|watery|muddy|weak|thin|flat|harsh|acidic|salty|metallic|stale|ashy)\b)",
    re.I,
)
# Any letter the English patterns above can match (with re.I: also ſ, K, ı, İ).
_LATIN_LETTER = re.compile("[a-z]", re.I)
_SCAFFOLD_ZH = re.compile(
    # 会 after why / how is a modal ("为什么会酸": why does it turn sour), not a word of the topic.
    "为什么会|为何会|为啥会|怎么会|"
    "多久|多长时间|多长|多少时间|几分钟|多少分钟|几秒钟?|多少秒|几天|多少天|几个?小时|多少小时|几周|几个月|"
    "多少度|几度|多少克|多少|什么时候|何时|哪一年|哪年|哪儿|在哪|哪国|哪位|谁|为何|为啥|"
    "什么风味|什么味道|什么口感|好喝|好不好喝|喝起来|尝起来|味道如何|味道怎么样|什么意思|代表什么|指什么|"
    "(?<![主重需只])要|才|吗|呢|是否|又|太|几比几|的时候|"
    # Colloquial fillers a stranger's question carries around its topic ("到底是啥", "谁搞出来的",
    # "一般几分钟", "有股...味", "比较好", "会有", "有几个"): no article says them, so they only
    # dilute the question's coverage.
    "到底|究竟|是啥|啥|咋|搞|弄|一般|通常|大概|大约|大致|左右|有股|一股|写着|上写|上面写|再(?=[冲喝煮泡磨用])|"
    "比较|会有|有几|有点|有些"
)


def name_text(question: str, *, kinds: int) -> str:
    """``question`` as article names are looked for in it: a complaint's "taste" cut ("why does my
    coffee taste sour" asks about sourness; "coffee taste" would name the flavour wheel by its alias
    "coffee tasting" and outrank the extraction articles that answer). Its terms keep the word:
    "tends to taste sour" answers "why does a short brew taste sour"."""
    if kinds & CAUSE and _LATIN_LETTER.search(question) is not None:
        return _SCAFFOLD_TASTE_COMPLAINT.sub(" ", question)
    return question


def strip_scaffolding(question: str, *, kinds: int | None = None, primary: int = 0) -> str:
    """The question with its answer-kind scaffolding replaced by a boundary (see module doc);
    ``kinds``, ``primary``: the question's kinds and first kind, when already known."""
    if kinds is None:
        kinds, primary = question_kinds(question)
    # The English patterns need a letter, the Chinese one a CJK character: a question without
    # them is not searched for them.
    latin = _LATIN_LETTER.search(question) is not None
    text = _SCAFFOLD_EN.sub(" ", question) if latin else question
    if latin and kinds & DURATION:
        text = _SCAFFOLD_EN_DURATION.sub(" ", text)
    if kinds & NAMING:
        text = _SCAFFOLD_NAMING.sub(" ", text)
    if latin and kinds & PROFILE:
        text = _SCAFFOLD_TASTE.sub(" ", text)
        if primary == PROFILE:
            bare = _SCAFFOLD_EN_PROFILE.sub(" ", text)
            text = bare if re.search(r"\w", bare) else text
    return _SCAFFOLD_ZH.sub("，", text) if has_cjk(text) else text


# --- what a sentence carries ---------------------------------------------------------------
_NUMBER_WORDS = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|a few|several|a couple of)"
_ZH_NUMERALS = "一二两三四五六七八九十百千几半"
_DURATION = _rx(
    r"\d[\d.,]*(?:\s*[-–]\s*\d[\d.,]*)?\s*(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|years?)\b",
    rf"\b{_NUMBER_WORDS}(?:\s+(?:to|or)\s+{_NUMBER_WORDS})?\s+(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?)\b",
    r"\bovernight\b|\bwithin (?:a|about a) (?:week|month|year|day)\b|\ba week\b|\ba year\b",
    rf"[\d{_ZH_NUMERALS}][\d.–-]*\s*(?:秒钟?|分钟|小时|天|周|个月|星期)",
    rf"[\d{_ZH_NUMERALS}]+分[\d{_ZH_NUMERALS}]+秒",
    r"一周|一夜|一年|半年",
)
# m:ss clock times (2:30-3:30, steep 1:30-2:00); a ratio 1:15-1:16 has equal minute parts.
_CLOCK_RANGE = re.compile(r"\b(\d{1,2}):([0-5]\d)\s*[-–]\s*(\d{1,2}):([0-5]\d)\b")
_CLOCK = re.compile(r"\b\d:(?:00|30|45)\b")
_TEMPERATURE = _rx(r"°|℃|℉|\bdegrees? (?:c|f|celsius|fahrenheit)\b|摄氏|华氏")
_RATIO = _rx(
    r"\b1\s*:\s*\d+(?:\.\d+)?\b",
    r"\bper (?:litre|liter|cup)\b",
    r"\d+(?:\.\d+)?\s*g\b[^.;]{0,25}\b(?:to|per|in)\b[^.;]{0,12}\d+(?:\.\d+)?\s*(?:g|ml)\b",
    r"粉水比|粉液比|配比|每\d+毫升|\d+克粉",
)
_QUANTITY = _rx(
    r"\d[\d.,]*\s*(?:%|mg|g|kg|ml|l|m|cm|mm|bar|ppm|lb|pounds?|tonnes?|bags|microns|points?|cents|oz|ounces?|"
    r"cups?|shots?|calories|kcal|chromosomes|farms|mg/l)(?![a-z])",
    r"(?:us)?\$\s?\d|\btwice\b|\bhalf\b|\bdouble\b|\bone third\b|\bthree times\b|\bpercent\b",
    rf"[\d{_ZH_NUMERALS}][\d.,–-]*\s*(?:%|毫克|克|千克|公斤|毫升|升|米|厘米|毫米|巴|目|分|倍|美元|美分|磅|袋|杯|份|成|万)",
    r"一半|两倍|三分之一|四成|六成|翻倍",
    # a bare range of numbers is a measured value too ("Agtron 65-95", "TDS 1.15-1.35")
    r"(?<![\d:.])\d+(?:\.\d+)?\s*[-–]\s*\d+(?:\.\d+)?(?![\d:])",
)
_ALTITUDE = _rx(
    r"\d[\d,.]*\s*(?:[-–]\s*\d[\d,.]*\s*)?m\b(?! (?:long|wide|tall))|\bmetres\b|\bmeters\b|\babove sea level\b",
    r"海拔|\d+米",
)
_MONTHS = (
    r"\b(?:january|february|march|april|may|june|july|august|september|october|november|december)\b"
)
_DATE = _rx(
    r"\b1[0-9]{3}s?\b|\b20[0-9]{2}s?\b|\bcentur(?:y|ies)\b|" + _MONTHS,
    r"\d{3,4}年|世纪|\d{1,2}月|年代|[一二三四五六七八九十]+月",
)
# A sentence giving the ideal / recommended value ("Its ideal zone is...", SCA推荐..., and
# superlatives: "foams most easily", 最易打出), and one
# giving a whole brew's time (what a duration question naming no phase wants).
NORM_VALUE = re.compile(
    r"\b(?:[Ii]deal|[Rr]ecommend\w*|[Tt]arget|[Oo]ptimal|[Gg]olden [Cc]up|[Ss]tandard|[Bb]est|[Mm]ost)\b|理想|推荐|目标|最|标准|金杯"
)
TOTAL_TIME = re.compile(r"\b[Tt]otal\b|总时间|总共|总时长|全程")
# Cue words, by kind: English as word sets and prefixes (matched on the sentence's words, far
# faster than alternations of \b...\b patterns at index build), Chinese as literal patterns.
@dataclass(frozen=True, slots=True)
class _Words:
    words: frozenset[str]
    phrases: frozenset[str]  # two-word phrases
    prefixes: tuple[str, ...]

    def found(self, words: list[str], word_set: set[str], pairs: set[str]) -> bool:
        return (
            not self.words.isdisjoint(word_set)
            or (bool(self.phrases) and not self.phrases.isdisjoint(pairs))
            or (bool(self.prefixes) and any(w.startswith(self.prefixes) for w in words))
        )


def _words(words: str, *, phrases: str = "", prefixes: str = "") -> _Words:
    return _Words(frozenset(words.split()), frozenset(p.strip() for p in phrases.split(",") if p.strip()),
                  tuple(prefixes.split()))


_PERSON_EN = _words(
    "invented inventor founder patented designer designers chemist goatherd monk monks missionary missionaries "
    "pilgrim officer family legend devotees friars company maker manufacturer merchant scientist "
    "institute association laboratories",
    phrases="founded by, named after, made by",
)
_PERSON_ZH = re.compile(
    r"[\u4e00-\u9fff]·[\u4e00-\u9fff]|发明|创始人|创立|牧羊人|传教士|修士|修道|家族|设计师|化学家|总督|军官|朝圣|专利|传说|冠军"
    r"|公司|厂商|品牌|商人|科学家|推出|研究所|研究中心|协会|实验室"
    # an agent named before what they did: 由帕列塔从法属圭亚那带入, 由意大利人……推出
    r"|由[\u4e00-\u9fff·]{2,8}(?:从|带|引|发明|创|提出|申请|选育|培育|育成|推广|开发)"
)
# A person's name (case matters): "by Alan Adler", "（Alan Adler，...".
_PERSON_NAME = re.compile(r"\b(?:by|from) (?:the )?[A-Z][a-z]+ [A-Z][a-z]+|（[A-Z][a-z]+ [A-Z][a-z]+")
_CAUSE_EN = _words(
    "because so cause causes caused if means risk make makes give gives sign signs help helps problem linked",
    phrases="due to, result in, results in, grind finer, grind coarser, lead to, leads to, can raise, mainly by, "
    "partly by, largely by, works by",
    prefixes="under-extract over-extract underextract overextract fix prevent avoid",
)
_CAUSE_ZH = re.compile(
    "因为|由于|所以|因此|导致|造成|原因|说明|如果|若|磨细|磨粗|调细|调粗|萃取不足|萃取过度|避免|防止|容易|风险|对策|解决|有助|就"
    "|主要通过|通过阻断"
)
_COMPARISON_EN = _words(
    "than compared while whereas unlike differ differs difference reverse instead versus both similar contrast"
)
_COMPARISON_ZH = re.compile("比|相比|而|不同|区别|相反|较|不如|同样|类似|与之")
_DEFINITION_EN = frozenset(["is", "are", "was", "means", "refers", "called", "stands"])
_DEFINITION_ZH = re.compile("^[^。；]{0,30}?(?:是|指|称为|又称|即|意为|意思是|意思)")
_PROFILE_EN = _words(
    "note notes acidity body jasmine citrus caramel nutty nuts taste tastes bergamot spice",
    prefixes="flavor flavour aroma sweet floral fruit berr chocolat",
)
_PROFILE_ZH = re.compile("风味|口感|香气|酸质|酸度|醇厚|甜感|花香|果香|余韵|茉莉|柑橘|浆果|巧克力|焦糖|坚果")
_STEPS_EN = _words(
    "step steps method recipe procedure technique tip tips instructions sequence steaming habits",
    phrases="how to, fixed order, in practice",
)
_STEPS_ZH = re.compile("步骤|方法|做法|参数|配方|要点|建议|流程|用法|操作|技巧|指南|入门|顺序|调整思路|打奶")
_FLAVOUR_EN = frozenset(
    ["floral", "fruity", "fruit", "jasmine", "bergamot", "lemon", "citrus", "orange", "grapefruit", "berry", "berries", "blueberry", "strawberry", "blackcurrant", "blackberry", "raspberry", "cherry", "plum", "peach", "apricot", "tropical", "winey", "chocolate", "cocoa", "caramel", "honey", "nutty", "nuts", "almond", "spice", "spicy", "cedar", "tobacco", "earthy", "herbal", "woody", "smoky", "sweet", "sweetness", "acidity", "body", "syrupy", "clean", "bright", "juicy", "tomato", "raisin", "fig", "cinnamon"]
)
_FLAVOUR_EN_PAIRS = frozenset(["stone fruit", "brown sugar", "tea like"])
_FLAVOUR_ZH = re.compile(
    "花香|果香|茉莉|佛手柑|柠檬|柑橘|橙|葡萄柚|莓|蓝莓|草莓|黑醋栗|黑莓|樱桃|李子|桃|杏|热带水果|酒香|巧克力|可可|"
    "焦糖|蜂蜜|红糖|坚果|杏仁|香料|雪松|烟草|土质|草本|木质|烟熏|茶感|甜|酸质|醇厚|干净|明亮|多汁|番茄|葡萄干|无花果|肉桂"
)
_NAMING_EN = _words("named name names nickname slang", phrases="refers to, stands for, called after, is called, are called")
_NAMING_ZH = re.compile("命名|得名|名字|名称|译名|音译|意为|之名|名为|叫做|因此被称为|名字来自|名来自")
_GRIND_EN = _words(
    "fine finer finest coarse coarser coarsest flour microns powder", phrases="sea salt, caster sugar, granulated sugar",
    prefixes="medium-fine medium-coarse extra-fine",
)
_GRIND_ZH = re.compile("极细|很细|中细|中粗|偏细|偏粗|磨细|磨粗|调细|调粗|面粉|微米|海盐|砂糖|研磨度|粗研磨|细研磨|粗粉|细粉")
_SENTENCE_WORDS = re.compile(r"[a-z0-9]+(?:-[a-z]+)*")


def _sentence_words(lower: str) -> tuple[list[str], set[str], set[str]]:
    words = _SENTENCE_WORDS.findall(lower)
    flat = [part for w in words for part in w.split("-")]
    return words, set(words) | set(flat), {f"{a} {b}" for a, b in itertools.pairwise(flat)}


def flavour_notes(text: str) -> int:
    """How many tasting notes ``text`` names (a sentence that lists them answers "what is it like")."""
    lower = text.lower()
    words, _, pairs = _sentence_words(lower)
    count = sum(1 for w in words if w in _FLAVOUR_EN) + len(_FLAVOUR_EN_PAIRS & pairs)
    return count + (len(_FLAVOUR_ZH.findall(text)) if has_cjk(text) else 0)


def steps_intro(text: str) -> bool:
    """A list intro or a labelled paragraph that announces steps, a recipe or advice: the
    announcing words come early ("A starting recipe:", "Steps:"), not in an aside ("(it
    varies with bean, dose and method)")."""
    head = re.sub(r"[（(][^）)]*[）)]", "", text).lower()
    if has_cjk(head):
        return _STEPS_ZH.search(head[:16]) is not None
    words, word_set, pairs = _sentence_words(head[:48])
    return _STEPS_EN.found(words, word_set, pairs)


class PlaceNames:
    """Place names (countries, regions, cities) known to the corpus plus a curated list."""

    _EN_EXTRA = (
        "Europe", "Africa", "Asia", "America", "Americas", "Arabia", "Middle East", "Caribbean", "Italy",
        "France", "Germany", "Netherlands", "Spain", "Portugal", "Britain", "England", "London", "Paris",
        "Vienna", "Venice", "Oxford", "Istanbul", "Cairo", "Mecca", "Turkey", "Greece", "Japan", "Australia",
        "New Zealand", "Réunion", "Martinique", "Ceylon", "Sri Lanka", "Liberia", "Malaysia", "Sudan",
        "Madagascar", "Taiwanese", "Japanese", "Italian", "French", "German", "Dutch", "Spanish", "American",
        "Australian", "Turkish", "Arab", "Arabic", "Yemeni", "Ethiopian", "Brazilian", "United States", "US",
        "Scandinavian", "Nordic", "Balkans", "North Africa", "Indian Ocean", "Red Sea", "Tanganyika", "Timor",
    )
    _ZH_EXTRA = (
        "欧洲", "非洲", "亚洲", "美洲", "中美洲", "南美", "拉丁美洲", "阿拉伯", "中东", "加勒比", "意大利", "法国",
        "德国", "荷兰", "西班牙", "葡萄牙", "英国", "伦敦", "巴黎", "维也纳", "威尼斯", "牛津", "伊斯坦布尔", "开罗",
        "麦加", "土耳其", "希腊", "日本", "澳大利亚", "新西兰", "留尼汪", "马提尼克", "锡兰", "斯里兰卡", "利比里亚",
        "马来西亚", "苏丹", "台湾", "美国", "北欧", "巴尔干", "北非", "红海", "坦噶尼喀", "帝汶", "中国", "云南",
        "海南", "北京", "波旁岛", "东非", "西非", "中非", "南苏丹",
    )

    def __init__(self, *, en: Iterable[str], zh: Iterable[str]) -> None:
        self._en = frozenset(n for n in (*en, *self._EN_EXTRA) if len(n) >= 2)
        self._en_longest = max((len(n.split()) for n in self._en), default=1)
        by_first: dict[str, list[str]] = {}
        for name in {n for n in (*zh, *self._ZH_EXTRA) if len(n) >= 2}:
            by_first.setdefault(name[0], []).append(name)
        self._zh = {first: tuple(names) for first, names in by_first.items()}

    def found(self, text: str, language: str) -> bool:
        if language == "zh":
            for i, char in enumerate(text):
                names = self._zh.get(char)
                if names and any(text.startswith(name, i) for name in names):
                    return True
            return False
        words = _NAME_WORDS.findall(text)
        for size in range(1, self._en_longest + 1):
            for i in range(len(words) - size + 1):
                if " ".join(words[i : i + size]) in self._en:
                    return True
        return False


_NAME_WORDS = re.compile(r"[A-Za-z\u00c0-\u024f][A-Za-z\u00c0-\u024f'’-]*")


_DIGITS = re.compile(r"\d")
_TIME_WORDS = frozenset(["second", "seconds", "minute", "minutes", "hour", "hours", "day", "days", "week", "weeks", "month", "months", "year", "years", "overnight"])
_ZH_NUMBERED = re.compile(f"[{_ZH_NUMERALS}]")


def carries_value(text: str, kind: int) -> bool:
    """Whether ``text`` carries a value of ``kind`` (a duration, temperature, ratio, quantity,
    date, altitude or person), as :func:`sentence_kinds` would say, checking that kind only
    (the answer composer asks this of whole answers, at query time)."""
    lower = text.lower()
    if kind == TEMPERATURE:
        return _TEMPERATURE.search(lower) is not None
    if kind == QUANTITY:
        return _QUANTITY.search(lower) is not None
    if kind == DATE:
        return _DATE.search(lower) is not None
    if kind == PERSON:
        words, word_set, pairs = _sentence_words(lower)
        return bool(
            _PERSON_EN.found(words, word_set, pairs)
            or _PERSON_NAME.search(text)
            or (has_cjk(text) and _PERSON_ZH.search(text))
        )
    cjk = has_cjk(text)
    numbered = _DIGITS.search(text) is not None or (cjk and _ZH_NUMBERED.search(text) is not None)
    if kind == DURATION:
        if (numbered or not _TIME_WORDS.isdisjoint(_sentence_words(lower)[1])) and (
            _DURATION.search(lower) or _CLOCK.search(lower)
        ):
            return True
        return numbered and any(
            m.group(1) != m.group(3) or "00" in (m.group(2), m.group(4)) for m in _CLOCK_RANGE.finditer(lower)
        )
    if kind == RATIO:
        return numbered and _RATIO.search(lower) is not None
    if kind == ALTITUDE:
        return numbered and _ALTITUDE.search(lower) is not None
    return sentence_kinds(text, language="zh" if cjk else "en", places=PlaceNames(en=(), zh=())) & kind != 0


def sentence_kinds(text: str, *, language: str, places: PlaceNames) -> int:
    """The kinds of fact ``text`` carries (see the module docstring). Runs at index build for
    every sentence: cheap checks first, the numeric patterns only where there is a number."""
    lower = text.lower()
    cjk = has_cjk(text)
    words, word_set, pairs = _sentence_words(lower)
    numbered = _DIGITS.search(text) is not None or (cjk and _ZH_NUMBERED.search(text) is not None)
    kinds = 0
    if (numbered or not _TIME_WORDS.isdisjoint(word_set)) and (_DURATION.search(lower) or _CLOCK.search(lower)):
        kinds |= DURATION
    if numbered:
        for match in _CLOCK_RANGE.finditer(lower):
            if match.group(1) != match.group(3) or "00" in (match.group(2), match.group(4)):
                kinds |= DURATION
        if _RATIO.search(lower):
            kinds |= RATIO
        if _ALTITUDE.search(lower):
            kinds |= ALTITUDE
    if _TEMPERATURE.search(lower):
        kinds |= TEMPERATURE
    if _QUANTITY.search(lower):
        kinds |= QUANTITY
    if _DATE.search(lower):
        kinds |= DATE
    if places.found(text, language):
        kinds |= PLACE
    if _PERSON_EN.found(words, word_set, pairs) or _PERSON_NAME.search(text) or (cjk and _PERSON_ZH.search(text)):
        kinds |= PERSON
    if _CAUSE_EN.found(words, word_set, pairs) or (cjk and _CAUSE_ZH.search(text)):
        kinds |= CAUSE
    if _COMPARISON_EN.found(words, word_set, pairs) or (cjk and _COMPARISON_ZH.search(text)):
        kinds |= COMPARISON
    if (not cjk and not _DEFINITION_EN.isdisjoint(words[:14])) or (cjk and _DEFINITION_ZH.search(text)):
        kinds |= DEFINITION
    if _PROFILE_EN.found(words, word_set, pairs) or (cjk and _PROFILE_ZH.search(text)):
        kinds |= PROFILE
    if _GRIND_EN.found(words, word_set, pairs) or (cjk and _GRIND_ZH.search(text)):
        kinds |= GRIND
    if _NAMING_EN.found(words, word_set, pairs) or (cjk and _NAMING_ZH.search(text)):
        kinds |= NAMING
    return kinds
