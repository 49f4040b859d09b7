"""UnigramTokenizer.tokenize_with_offsets against the reference's ``offset_mapping``: XLM-R
(Precompiled + WhitespaceSplit/Metaspace), ALBERT (quote Replace, NFKD, StripAccents,
Lowercase, Precompiled), the released multilingual-MiniLM form (Precompiled + Replace
" {2,}", Metaspace alone, <mask> lstrip). The fast tokenizer's offsets in Python are code
points already, as the graph's are."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf

from models.probe_texts import PROBE_TEXTS
from models.tokenizers.unigram.unigram_tokenizer import UnigramTokenizer
from tests.models.tokenizers.unigram.unigram_checkpoints import (
    MAX_SEQ_LENGTH,
    random_texts,
    stsb_sentences,
)

_BATCH = 512
_OFFSETS: dict[int, Any] = {}

# Where the reference's alignments are not the obvious ones: a removed char at the start
# shifts every later char of the section one char early; after an expansion (ﬁ -> fi) a
# removed char takes the expansion's last char; a grapheme cluster's rule aligns its output
# char by char; the quote Replace aligns to the match's last char; Metaspace's "▁" takes the
# span of the char it precedes; literal special tokens span their match (stripped spaces too).
EDGE_TEXTS = [
    "Hello world", " a  b ", "\x01abc", "ﬁ\x01x", "ﬁ\x01\x01x", "cafe\u0301 x", "``hi''",
    "x <mask> y", "a<mask>b", "<s> hi", "ｶﾞ ①", "\u200bab", "a\u200b", "A   B", "İx",
    "a\ufffdb", "x [MASK] y", "▁a ▁ b▁", "", "   ",
]  # fmt: skip


@pytest.fixture(scope="module")
def offset_tokenizers(unigram_dirs: dict[str, Path]) -> dict[str, UnigramTokenizer]:
    return {
        name: UnigramTokenizer.from_checkpoint(path, max_seq_length=MAX_SEQ_LENGTH)
        for name, path in unigram_dirs.items()
    }


def _offset_mismatches(
    tokenizer: UnigramTokenizer, reference: Any, texts: list[str]
) -> list[tuple[str, Any, Any]]:
    if id(tokenizer) not in _OFFSETS:
        _OFFSETS[id(tokenizer)] = tf.function(
            tokenizer.tokenize_with_offsets, input_signature=[tf.TensorSpec([None], tf.string)]
        )
    traced = _OFFSETS[id(tokenizer)]
    want = reference(texts, add_special_tokens=False, return_offsets_mapping=True)
    bad = []
    for start in range(0, len(texts), _BATCH):
        ids, starts, ends = traced(tf.constant(texts[start : start + _BATCH]))
        for row, (got_ids, got_starts, got_ends) in enumerate(
            zip(ids.to_list(), starts.to_list(), ends.to_list(), strict=True)
        ):
            index = start + row
            expected = (
                want["input_ids"][index],
                [tuple(span) for span in want["offset_mapping"][index]],
            )
            got = (got_ids, list(zip(got_starts, got_ends, strict=True)))
            if got != expected:
                bad.append((texts[index], got, expected))
    return bad


# Which reference layouts each corpus runs against (every STS-B sentence, 11 languages, only
# for the two layouts whose normalizers differ most).
_CORPORA: dict[str, Callable[[], list[str]]] = {
    "edge+probe": lambda: [*EDGE_TEXTS, *PROBE_TEXTS],
    "random": lambda: random_texts(3000, seed=1203),
    "stsb": stsb_sentences,
}
_CASES = [
    *(("edge+probe", name) for name in ("xlmr", "albert", "minilm", "legacy")),
    *(("random", name) for name in ("xlmr", "albert", "legacy")),
    *(pytest.param("stsb", name, marks=pytest.mark.slow) for name in ("xlmr", "albert")),
]


@pytest.mark.parametrize(("corpus", "name"), _CASES)
def test_offsets_match_the_reference(
    corpus: str,
    name: str,
    offset_tokenizers: dict[str, UnigramTokenizer],
    unigram_references: dict[str, Any],
) -> None:
    texts = _CORPORA[corpus]()
    bad = _offset_mismatches(offset_tokenizers[name], unigram_references[name], texts)
    assert not bad, f"{len(bad)} of {len(texts)} differ, first: {bad[:2]}"


def test_offsets_survive_a_saved_model(
    offset_tokenizers: dict[str, UnigramTokenizer],
    unigram_references: dict[str, Any],
    tmp_path: Path,
) -> None:
    tokenizer = offset_tokenizers["albert"]
    module = tf.Module()
    module.tokenizer = tokenizer
    module.spans = tf.function(
        lambda text: tuple(
            values.to_tensor(default_value=-1)
            for values in tokenizer.tokenize_with_offsets(text)[1:]
        ),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    tf.saved_model.save(module, os.fspath(tmp_path / "saved"))
    loaded = tf.saved_model.load(os.fspath(tmp_path / "saved"))
    texts = EDGE_TEXTS
    starts, ends = (tensor.numpy().tolist() for tensor in loaded.spans(tf.constant(texts)))
    want = unigram_references["albert"](
        texts, add_special_tokens=False, return_offsets_mapping=True
    )["offset_mapping"]
    got = [
        [(s, e) for s, e in zip(row_starts, row_ends, strict=True) if s >= 0]
        for row_starts, row_ends in zip(starts, ends, strict=True)
    ]
    assert got == [[tuple(span) for span in spans] for spans in want]


def test_metaspace_variants_have_the_reference_offsets(
    metaspace_variants: list[tuple[dict[str, Any], Any, UnigramTokenizer]],
) -> None:
    texts = [*EDGE_TEXTS, *PROBE_TEXTS, *random_texts(300, seed=5)]
    for variant, reference, tokenizer in metaspace_variants:
        bad = _offset_mismatches(tokenizer, reference, texts)
        assert not bad, (variant, len(bad), bad[:2])
