"""Text corpora for tokenizer parity: STS-B (11 languages), the probe corpus, random texts.

Shared by the tokenizer tests and ``tests/benchmarks/verify_tokenizers.py``.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence

from models.probe_texts import PROBE_TEXTS
from tests.support.data import STSB_DIR

_SURROGATES = range(0xD800, 0xE000)
# Where random characters come from: anywhere in Unicode, and (more often) the classes that
# tokenizers treat specially.
_CLASSES = (
    " \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2003\u200a\u2028\u2029\u202f\u205f\u3000",
    ".,;:!?'\"()[]{}<>-_/\\@#$%^&*+=~`|…。、！？「」",
    "\x00\x01\x1f\x7f\x80\x9f\u200b\u200c\u200d\u200e\u200f\u00ad\ufeff\ufffd\ue000\U000f0000",
    "\u0300\u0301\u0308\u0323\u0327\u0345\u1dc0\u0e48\u3099\u05b0",
    "aAzZéÉßẞİıΣσςǅﬁﬀ²½①ⅫＡａ１ｶﾞ\u1100\u1161\u11a8한글日本語中文ไทยहिन्दीعربيעברית😀👍🏽🇩🇪",
    "0123456789٠١٢٣",
)


def stsb_pairs() -> list[tuple[str, str]]:
    """Every sentence pair of the 11 STS-B test files (11 x 1,379)."""
    pairs = []
    for path in sorted(STSB_DIR.glob("stsb-*-test.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            pairs += [(row[0], row[1]) for row in csv.reader(handle)]
    return pairs


def stsb_sentences() -> list[str]:
    return [text for pair in stsb_pairs() for text in pair]


def probe_texts() -> list[str]:
    return list(PROBE_TEXTS)


def neighbour_pairs(texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """Each text paired with one 17 places on, so long texts meet short ones."""
    texts = list(texts)
    return texts, texts[17:] + texts[:17]


def random_texts(count: int, *, seed: int, specials: Sequence[str] = ()) -> list[str]:
    """``count`` random texts of 0-60 characters over all of Unicode (surrogates excepted),
    weighted towards whitespace, punctuation, control and format characters, combining marks
    and mixed scripts, with the tokenizer's literal ``specials`` sprinkled in."""
    generator = random.Random(seed)
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(generator.randint(0, 60)):
            roll = generator.random()
            if roll < 0.02 and specials:
                parts.append(generator.choice(specials))
            elif roll < 0.35:
                code_point = generator.randrange(0x110000)
                parts.append(chr(code_point) if code_point not in _SURROGATES else "\ufffd")
            else:
                parts.append(generator.choice(generator.choice(_CLASSES)))
        texts.append("".join(parts))
    return texts
