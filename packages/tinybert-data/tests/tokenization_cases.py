"""The texts of the tokenizer parity test, shared by the test and its fixture generator."""

import json
from pathlib import Path

PAIR_SEQ_LENGTH = 64  # QNLI pairs are also compared truncated (longest first) to this length
NUM_QNLI_PAIRS = 1000
NUM_TNEWS_TITLES = 1000

EDGE_CASES = [
    "",
    "   ",
    "Héllo Wörld, naïve café façade Ångström ÉCOLE",
    "Crème brûlée and piñata: São Paulo, Kraków, İstanbul, straße, ΣΊΣΥΦΟΣ",
    "Mixed scripts: BERT模型在北京大学 and 東京 with 한국어 text and русский язык",
    "Emoji 😀👍🏽 and flags 🇫🇷 and ❤️ symbols ™ © ® ∑ ∞",
    "Control\x00chars\x01here\x7f and\tt\u00adabs\r\nnew\u200blines\ufffd zero\u200dwidth",
    "Supercalifragilisticexpialidocious " + "a" * 99 + " " + "b" * 100 + " " + "c" * 101,
    "x" * 150 + "," + "y" * 30,
    "Punctuation!!! (parentheses) [brackets] {braces} $100.00 50% e-mail@example.com #tag",
    "Quotes “curly” ‘single’ «guillemets» — em-dash … ellipsis ¿qué? ¡sí!",
    "Full-width：中文，标点！（括号）【方括号】《书名号》“引号”",
    "Numbers 1,234,567.89 and 3.14159 and 2nd 3rd 21st and 1990s",
    "unaffable unbelievably antidisestablishmentarianism pneumonoultramicroscopic",
    "Ｆｕｌｌ－ｗｉｄｔｈ ＡＳＣＩＩ ａｎｄ ｈａｌｆ－ｗｉｄｔｈ ｶﾀｶﾅ",
    "Combining marks: e\u0301 a\u0300 n\u0303 o\u0308 standalone \u0301\u0302",
    "Arabic: مرحبا بالعالم Hebrew: שלום עולם Thai: สวัสดีชาวโลก Hindi: नमस्ते दुनिया",
    "Tabs\tand   multiple    spaces\u3000ideographic\u00a0nbsp",
    "URLs https://www.example.com/path?query=1&x=y and C++ / C# and don't won't can't",
    "Ǆemal ǅemal ǆemal ﬁnal ﬂow Ⅻ ½ ²",
    "😀" * 5 + "北" * 3 + "ab" * 60,
]


def sst2_sentences(data: Path) -> list:
    """Every sentence of SST-2 dev, split on tabs only (GLUE TSVs have no quoting)."""
    lines = (data / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines]


def qnli_pairs(data: Path) -> list:
    """The first (question, sentence) pairs of QNLI dev."""
    lines = (data / "qnli" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [tuple(line.split("\t")[1:3]) for line in lines[:NUM_QNLI_PAIRS]]


def tnews_titles(data: Path) -> list:
    """The first titles of TNEWS dev."""
    with open(data / "tnews" / "dev.json", encoding="utf-8") as f:
        return [json.loads(next(f))["sentence"] for _ in range(NUM_TNEWS_TITLES)]
