"""Real SentencePiece Unigram checkpoints built offline for the Unigram tokenizer's tests, and
the seeded random Unicode texts its parity is measured on.

``sentencepiece`` trains a small Unigram model (nmt_nfkc charsmap) on the vendored STS-B
sentences; transformers turns it into the reference fast tokenizer exactly as for released
checkpoints (``from_pretrained`` on a directory holding the ``.model`` file).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from pathlib import Path
from typing import Any

from tests.support.data import STSB_DIR

# Truncation length of the tokenizers the unigram tests build.
MAX_SEQ_LENGTH = 128

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB_SIZE = 1500  # a soft limit (hard_vocab_limit=False): ~1.5k pieces, ~2 s per training


def stsb_sentences(pattern: str = "stsb-*-test.csv") -> list[str]:
    texts: list[str] = []
    for path in sorted(STSB_DIR.glob(pattern)):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                texts += row[:2]
    return texts


def stsb_pairs(pattern: str = "stsb-*-test.csv") -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for path in sorted(STSB_DIR.glob(pattern)):
        with path.open(newline="", encoding="utf-8") as handle:
            pairs += [(row[0], row[1]) for row in csv.reader(handle)]
    return pairs


def train_sentencepiece(**options: Any) -> bytes:
    """A serialized Unigram ModelProto trained on a quarter of the STS-B sentences (every
    language, every fourth sentence: enough for ~1.5k pieces, quick to train)."""
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(stsb_sentences()[::4]),
        model_writer=model,
        model_type="unigram",
        vocab_size=VOCAB_SIZE,
        hard_vocab_limit=False,
        # The 11 languages have ~2.3k distinct characters; the rarest become unknowns.
        character_coverage=0.995,
        normalization_rule_name="nmt_nfkc",
        minloglevel=2,
        **options,
    )
    return model.getvalue()


def xlmr_checkpoint(directory: Path) -> Path:
    """XLM-R layout: ``sentencepiece.bpe.model`` (spm ids <unk> 0, <s> 1, </s> 2), converted by
    ``XLMRobertaTokenizer.from_pretrained`` (fairseq offset: <s> 0 <pad> 1 </s> 2 <unk> 3)."""
    from transformers import XLMRobertaTokenizer

    source = directory / "spm"
    source.mkdir(parents=True)
    (source / "sentencepiece.bpe.model").write_bytes(train_sentencepiece())
    XLMRobertaTokenizer.from_pretrained(os.fspath(source)).save_pretrained(directory)
    return directory


def albert_checkpoint(directory: Path) -> Path:
    """ALBERT layout: ``spiece.model`` with <pad> 0 <unk> 1 [CLS] 2 [SEP] 3 [MASK] 4, converted
    by ``AlbertTokenizer.from_pretrained`` (NFKD, strip accents, lowercase, quote Replace)."""
    from transformers import AlbertTokenizer

    source = directory / "spm"
    source.mkdir(parents=True)
    model = train_sentencepiece(
        pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, control_symbols="[CLS],[SEP],[MASK]"
    )
    (source / "spiece.model").write_bytes(model)
    AlbertTokenizer.from_pretrained(os.fspath(source)).save_pretrained(directory)
    return directory


def multilingual_minilm_checkpoint(directory: Path, xlmr: Path, *, verbatim: bool = False) -> Path:
    """paraphrase-multilingual-MiniLM layout: a BertModel config with the XLM-R tokenizer in
    the tokenizer.json form released checkpoints ship (normalizer Precompiled + Replace
    " {2,}", Metaspace alone with add_prefix_space, <mask> with lstrip).

    transformers 5's XLMRobertaTokenizer rebuilds the normalizer and pre-tokenizer of such a
    file; with ``verbatim`` the tokenizer class is PreTrainedTokenizerFast, which keeps them."""
    directory.mkdir(parents=True)
    spec = json.loads((xlmr / "tokenizer.json").read_text(encoding="utf-8"))
    charsmap = next(step for step in _steps(spec["normalizer"]) if step["type"] == "Precompiled")
    spec["normalizer"] = {
        "type": "Sequence",
        "normalizers": [
            charsmap,
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        ],
    }
    spec["pre_tokenizer"] = {
        "type": "Metaspace",
        "replacement": "\u2581",
        "add_prefix_space": True,
        "prepend_scheme": "always",
    }
    for token in spec["added_tokens"]:
        if token["content"] == "<mask>":
            token["lstrip"] = True
    (directory / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    config = json.loads((xlmr / "tokenizer_config.json").read_text(encoding="utf-8"))
    if verbatim:
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (directory / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["BertModel"],
                "model_type": "bert",
                "vocab_size": len(spec["model"]["vocab"]),
                "hidden_size": 32,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "max_position_embeddings": 128,
                "type_vocab_size": 2,
                "pad_token_id": 1,
            }
        ),
        encoding="utf-8",
    )
    return directory


def _steps(component: dict[str, Any]) -> list[dict[str, Any]]:
    if component["type"] == "Sequence":
        return [step for child in component["normalizers"] for step in _steps(child)]
    return [component]


# Characters random texts draw from besides uniformly random code points: the classes where
# the Precompiled normalizer, grapheme clusters and Metaspace have rules.
_PALETTE = (
    "aAzZ09éÉßİıΣςσ日本語。、「」！？ＡＢ１２ﬁ²½한글ไทยहिन्दीعربيкириллица"
    "\u1100\u1161\u11a8\uac00\uac01"  # Hangul jamo L V T, LV, LVT syllables
    "\u0915\u094d\u0937\u093f\u0902"  # Devanagari consonants, virama (InCB linker), marks
    "\u0301\u0308\u0323\u20dd\u0e31\u0e48"  # combining (Extend) marks
    "\U0001f1e9\U0001f1ea\U0001f1ef\U0001f1f5"  # regional indicators
    "\U0001f600\U0001f44d\U0001f3fd\u200d\u2764\ufe0f\U0001f469"  # emoji, ZWJ, modifiers
    "\x00\x01\x1f\x7f\x85\u200b\u200c\u00ad\ufeff\u200f\ufffd\ue000"  # controls, formats
    "\r\n\t \u3000\u00a0\u2003\u2028\u1680\u2581"  # whitespace and the metaspace itself
    ".,;:!?'\"`()[]{}<>-_/\\@#$%^&*+=~|"
    "\uff76\uff9e\u2460\u2474\u33a1\u2126\u212b\u00bc\u1e9e\u0130"  # NFKC-folded forms
)
_LITERALS = ["<mask>", "<s>", "</s>", "<pad>", "<unk>", "[MASK]", "[CLS]", "[SEP]", "``", "''"]


def random_texts(count: int, *, seed: int) -> list[str]:
    """``count`` texts of random runs: palette characters, uniformly random code points
    (any plane, surrogates excluded), literal special tokens and spaces."""
    generator = random.Random(seed)
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(generator.randint(0, 10)):
            roll = generator.random()
            if roll < 0.06:
                parts.append(generator.choice(_LITERALS))
            elif roll < 0.25:
                parts.append(" " * generator.randint(1, 3))
            elif roll < 0.45:
                parts.append(
                    "".join(_random_code_point(generator) for _ in range(generator.randint(1, 4)))
                )
            else:
                parts.append("".join(generator.choices(_PALETTE, k=generator.randint(1, 8))))
        texts.append("".join(parts))
    return texts


def _random_code_point(generator: random.Random) -> str:
    while True:
        # Half from the BMP, where most assigned characters are.
        limit = 0x10000 if generator.random() < 0.5 else 0x110000
        code_point = generator.randrange(limit)
        if not 0xD800 <= code_point < 0xE000:
            return chr(code_point)
