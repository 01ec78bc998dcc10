"""Where the sandbox bots' answers come from.

An :class:`Answerer` is any callable ``(question) -> answer text``. :func:`default_answerer`
picks, in this order:

1. ``knowledge``: the package's embedded coffee knowledge (``kai_bridge.knowledge.KnowledgeBase``),
   when that package is importable; it is loaded lazily on the first question and, if loading or
   a query fails, the built-in set answers instead (logged once);
2. ``builtin``: a small bilingual (Chinese/English) answer set in this module.

``answerer_name()`` tells which one a given answerer is, so the CLI can print it.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["Answerer", "BuiltinAnswerer", "KnowledgeAnswerer", "answerer_name", "default_answerer", "is_chinese"]

logger = logging.getLogger(__name__)

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def is_chinese(text: str) -> bool:
    return _CJK.search(text) is not None


@runtime_checkable
class Answerer(Protocol):
    """Answers one question with text in the question's language. Called from a worker thread."""

    def __call__(self, question: str) -> str: ...


@dataclass(frozen=True, slots=True)
class _Topic:
    keywords: tuple[str, ...]
    en: str
    zh: str


_TOPICS: tuple[_Topic, ...] = (
    _Topic(
        ("espresso", "意式", "浓缩"),
        "Espresso is brewed by forcing water at about 9 bar and 90-96 °C through finely ground coffee. "
        "A classic double shot uses 18 g of coffee for about 36 g of liquid in 25-30 seconds; a faster "
        "shot tastes sour (under-extracted), a slower one bitter (over-extracted).",
        "意式浓缩是用约 9 bar 的压力、90–96 °C 的热水快速穿过细研磨咖啡粉制成的。经典双份约用 18 克粉，"
        "在 25–30 秒内萃取出约 36 克咖啡液；流速太快偏酸（萃取不足），太慢偏苦（萃取过度）。",
    ),
    _Topic(
        ("pour over", "pour-over", "v60", "hand brew", "drip", "手冲", "滴滤"),
        "For pour-over, start with a 1:15 to 1:16 ratio (e.g. 15 g coffee to 240 g water), a medium-fine "
        "grind and water at 90-94 °C. Bloom with twice the coffee's weight in water for 30-45 seconds, "
        "then pour in slow circles; aim for a total time of about 2.5-3.5 minutes.",
        "手冲咖啡可以从 1:15 到 1:16 的粉水比开始（例如 15 克粉配 240 克水），中细研磨，水温 90–94 °C。"
        "先用粉重两倍的水闷蒸 30–45 秒，再以小水流画圈注水，总时间控制在约 2 分半到 3 分半。",
    ),
    _Topic(
        ("roast", "烘焙", "烘豆"),
        "Light roasts keep more acidity and origin character (floral, fruity); medium roasts balance "
        "sweetness and acidity; dark roasts bring roasty, bitter-sweet notes and less acidity. First "
        "crack happens around 196 °C and marks the start of a light roast.",
        "浅烘焙保留更多酸质和产地风味（花香、果香）；中烘焙在甜感与酸质之间平衡；深烘焙带来焦糖、烘烤和苦甜风味，"
        "酸度较低。一爆大约在 196 °C 出现，标志着浅烘焙的开始。",
    ),
    _Topic(
        ("arabica", "robusta", "阿拉比卡", "罗布斯塔", "species", "品种"),
        "Arabica (Coffea arabica) grows at higher altitudes and tastes sweeter and more aromatic, with "
        "about 1.2-1.5% caffeine. Robusta (Coffea canephora) is hardier, more bitter and earthy, with "
        "about 2.2-2.7% caffeine, and is common in espresso blends and instant coffee.",
        "阿拉比卡（Coffea arabica）多种在高海拔地区，风味更甜、香气更丰富，咖啡因约 1.2–1.5%。"
        "罗布斯塔（Coffea canephora）抗病性强，口感更苦、更有土壤感，咖啡因约 2.2–2.7%，常用于意式拼配和速溶咖啡。",
    ),
    _Topic(
        ("caffeine", "咖啡因"),
        "A typical 240 ml cup of brewed coffee has roughly 80-120 mg of caffeine and a single espresso "
        "shot about 60-75 mg. Health authorities consider up to about 400 mg a day safe for most adults "
        "(around 200 mg during pregnancy).",
        "一杯约 240 毫升的滴滤咖啡大约含 80–120 毫克咖啡因，一份意式浓缩约 60–75 毫克。"
        "多数健康机构认为成年人每天不超过约 400 毫克是安全的（孕期建议约 200 毫克以内）。",
    ),
    _Topic(
        ("store", "storage", "fresh", "保存", "储存", "新鲜"),
        "Keep beans whole, in an airtight opaque container at room temperature, away from heat, light "
        "and moisture. They taste best from about 4 days to 4 weeks after roasting; grind just before "
        "brewing.",
        "咖啡豆最好以整豆形式保存在密封、避光的容器中，放在室温、远离热源和潮湿的地方。"
        "烘焙后约 4 天到 4 周风味最佳；在冲煮前再研磨。",
    ),
    _Topic(
        ("cold brew", "冷萃"),
        "Cold brew steeps coarsely ground coffee in cold water for 12-24 hours, usually at 1:8 as a "
        "concentrate, then is filtered and diluted. It tastes smooth and low in acidity.",
        "冷萃是把粗研磨的咖啡粉浸泡在冷水中 12–24 小时（浓缩液常用 1:8 的粉水比），过滤后再稀释饮用，"
        "口感顺滑、酸度低。",
    ),
    _Topic(
        ("latte", "cappuccino", "milk", "flat white", "拿铁", "卡布奇诺", "牛奶", "奶泡"),
        "A cappuccino is espresso with about equal parts steamed milk and thick foam (150-180 ml); a "
        "latte has more steamed milk and a thin layer of foam (240 ml or more); a flat white uses a "
        "double shot with a small amount of silky microfoam. Steam milk to 55-65 °C.",
        "卡布奇诺是意式浓缩加上大致等量的热牛奶和厚奶泡（约 150–180 毫升）；拿铁的牛奶更多、奶泡更薄（240 毫升以上）；"
        "澳白用双份浓缩配少量细腻的微奶泡。牛奶加热到 55–65 °C 为宜。",
    ),
    _Topic(
        ("washed", "natural", "honey", "process", "水洗", "日晒", "蜜处理", "处理法"),
        "Washed coffees have the fruit removed before drying and taste clean and bright; natural "
        "(dry-processed) coffees dry inside the whole cherry and taste fruity and heavier; honey "
        "processing keeps some sticky mucilage and sits in between.",
        "水洗处理在干燥前去掉果肉，风味干净明亮；日晒处理让咖啡豆在整颗果实中干燥，果香浓郁、醇厚度高；"
        "蜜处理保留部分果胶，风味介于两者之间。",
    ),
    _Topic(
        ("grind", "研磨", "粗细"),
        "Match grind size to contact time: fine for espresso (about 25-30 s), medium-fine for pour-over, "
        "medium-coarse for batch brewers and coarse for French press and cold brew. If it tastes sour, "
        "grind finer; if bitter, grind coarser.",
        "研磨粗细要和萃取时间匹配：意式用细研磨（约 25–30 秒），手冲用中细研磨，美式滴滤机用中粗研磨，"
        "法压壶和冷萃用粗研磨。喝起来偏酸就磨细一点，偏苦就磨粗一点。",
    ),
    _Topic(
        ("ethiopia", "yirgacheffe", "埃塞俄比亚", "耶加雪菲"),
        "Ethiopia is the birthplace of Arabica coffee. Washed Yirgacheffe coffees are known for jasmine "
        "and bergamot florals and lemony acidity; naturals from Guji and Sidama are berry-like and sweet.",
        "埃塞俄比亚是阿拉比卡咖啡的故乡。水洗耶加雪菲以茉莉花、佛手柑般的花香和柠檬般的酸质闻名；"
        "古吉、西达摩的日晒豆则带有莓果般的甜感。",
    ),
    _Topic(
        ("yunnan", "云南", "china", "中国"),
        "Yunnan produces most of China's coffee, mainly Catimor varieties grown at 1,000-2,000 m around "
        "Pu'er and Baoshan; quality has risen quickly with better processing, giving nutty, sweet cups "
        "with mild acidity.",
        "云南出产了中国大部分的咖啡，主要是种植在普洱、保山一带海拔 1000–2000 米的卡蒂姆品种；"
        "随着处理工艺的提升，品质进步很快，常见坚果、焦糖般的甜感和温和的酸质。",
    ),
)

_FALLBACK = _Topic(
    (),
    "Good coffee comes down to fresh beans, the right grind, clean water at 90-96 °C and a sensible "
    "ratio (about 1:15 to 1:17 for filter coffee). Ask me about espresso, pour-over, roasting, "
    "origins, processing, caffeine or storage for details.",
    "一杯好咖啡取决于新鲜的咖啡豆、合适的研磨度、90–96 °C 的干净热水和合理的粉水比（滤泡咖啡约 1:15 到 1:17）。"
    "你可以问我意式浓缩、手冲、烘焙、产地、处理法、咖啡因或保存等具体问题。",
)


class BuiltinAnswerer:
    """Keyword-matched bilingual answers; deterministic, instant, no dependencies."""

    name = "builtin"

    def __call__(self, question: str) -> str:
        lowered = question.lower()
        chinese = is_chinese(question)
        for topic in _TOPICS:
            if any(k in lowered for k in topic.keywords):
                return topic.zh if chinese else topic.en
        return _FALLBACK.zh if chinese else _FALLBACK.en


class KnowledgeAnswerer:
    """Answers from ``kai_bridge.knowledge.KnowledgeBase``; falls back to the built-in set on failure."""

    name = "knowledge"

    def __init__(self, base: Any = None) -> None:
        """``base``: an already loaded KnowledgeBase to share; loaded on first use otherwise."""
        self._lock = threading.Lock()
        self._kb: Any = base
        self._failed = False
        self._fallback = BuiltinAnswerer()

    def _load(self) -> Any:
        if self._kb is not None or self._failed:
            return self._kb
        with self._lock:
            if self._kb is None and not self._failed:
                try:
                    module = importlib.import_module("kai_bridge.knowledge")
                    self._kb = module.KnowledgeBase.load()
                except Exception:
                    self._failed = True
                    logger.warning(
                        "sandbox: the knowledge base could not be loaded; bots use the built-in answers",
                        exc_info=True,
                    )
        return self._kb

    def warm_up(self) -> None:
        """Load the knowledge base now (from a worker thread) so the first question is fast."""
        self._load()

    def __call__(self, question: str) -> str:
        kb = self._load()
        if kb is None:
            return self._fallback(question)
        try:
            result = kb.query(question, top_k=3)
            text = getattr(result, "answer", None)
        except Exception:
            logger.warning("sandbox: knowledge query failed; answering from the built-in set", exc_info=True)
            return self._fallback(question)
        if isinstance(text, str) and text.strip():
            return text
        return self._fallback(question)


def default_answerer() -> Answerer:
    """The knowledge-backed answerer when ``kai_bridge.knowledge`` exists, else the built-in one."""
    try:
        spec = importlib.util.find_spec("kai_bridge.knowledge")
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        return KnowledgeAnswerer()
    return BuiltinAnswerer()


def answerer_name(answerer: object) -> str:
    name = getattr(answerer, "name", None)
    return name if isinstance(name, str) else type(answerer).__name__
