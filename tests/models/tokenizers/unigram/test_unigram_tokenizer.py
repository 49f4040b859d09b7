"""Parity of the in-graph UnigramTokenizer with the reference (Hugging Face fast tokenizer).

Checkpoints are trained here with sentencepiece (see ``unigram_checkpoints.py``): XLM-R
(Precompiled nmt_nfkc charsmap, fairseq ids), ALBERT (quote Replace, NFKD, StripAccents,
Lowercase, Precompiled; [CLS] A [SEP] B [SEP] with type ids) and a multilingual-MiniLM
BertModel with an XLM-R tokenizer, in transformers' rebuilt form and in the released
tokenizer.json form (Precompiled + Replace " {2,}", Metaspace alone, <mask> lstrip).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from models import contract
from models.probe_texts import PROBE_TEXTS
from models.tokenizers import text_tokenizer_from_checkpoint
from models.tokenizers.unigram.unigram_tokenizer import UnigramTokenizer
from tests.models.tokenizers.unigram.unigram_checkpoints import (
    MAX_SEQ_LENGTH,
    random_texts,
    stsb_pairs,
    stsb_sentences,
)

_BATCH = 512
_TOKENIZERS: dict[str, UnigramTokenizer] = {}


@pytest.fixture(scope="module")
def tokenizers(unigram_dirs: dict[str, Path]) -> dict[str, UnigramTokenizer]:
    """One tokenizer per checkpoint, built through the dispatcher the exporter uses."""
    for name, path in unigram_dirs.items():
        if name not in _TOKENIZERS:
            tokenizer = text_tokenizer_from_checkpoint(path, max_seq_length=MAX_SEQ_LENGTH)
            assert isinstance(tokenizer, UnigramTokenizer)
            _TOKENIZERS[name] = tokenizer
    return _TOKENIZERS


_TOKENIZE: dict[int, Any] = {}


def _traced_tokenize(tokenizer: UnigramTokenizer) -> Any:
    # One trace per tokenizer (a few seconds each on a busy machine), shared by the tests.
    if id(tokenizer) not in _TOKENIZE:
        _TOKENIZE[id(tokenizer)] = tf.function(
            tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)]
        )
    return _TOKENIZE[id(tokenizer)]


def _graph_ids(tokenizer: UnigramTokenizer, texts: list[str]) -> list[list[int]]:
    tokenize = _traced_tokenize(tokenizer)
    ids: list[list[int]] = []
    for start in range(0, len(texts), _BATCH):
        ids += tokenize(tf.constant(texts[start : start + _BATCH])).to_list()
    return ids


def _mismatches(tokenizer: UnigramTokenizer, reference: Any, texts: list[str]) -> list[Any]:
    want = reference(texts, add_special_tokens=False)["input_ids"]
    got = _graph_ids(tokenizer, texts)
    return [(text, g, w) for text, g, w in zip(texts, got, want, strict=True) if g != w]


def _packed_mismatches(
    tokenizer: UnigramTokenizer,
    reference: Any,
    first: list[str],
    second: list[str] | None,
    *,
    max_length: int,
    hub_packing: bool = False,
) -> list[Any]:
    """Rows whose packed ids, type ids, mask or padding differ from the reference's.
    ``hub_packing``: the traced tokenize, then ``pack_inputs(seq_length=max_length)`` (TF
    Hub's call, one trace shared by every length) instead of the traced ``__call__``."""
    if hub_packing:
        tokenize = _traced_tokenize(tokenizer)
        # Packing traced once per call here: eager packing runs op by op.
        pack = tf.function(
            lambda *segments: tokenizer.pack_inputs(list(segments), seq_length=max_length)
        )

        def call(*texts: tf.Tensor) -> dict[str, tf.Tensor]:
            return pack(*[tokenize(text) for text in texts])
    else:
        call = tf.function(
            tokenizer.__call__,
            input_signature=[tf.TensorSpec([None], tf.string)] * (1 if second is None else 2),
        )
    bad = []
    for start in range(0, len(first), _BATCH):
        a = first[start : start + _BATCH]
        b = None if second is None else second[start : start + _BATCH]
        args = [tf.constant(a)] + ([] if b is None else [tf.constant(b)])
        got = call(*args)
        # Type ids as the reference feeds the model: none (so zeros) when the model's inputs
        # do not name them (XLM-R, and ALBERT in transformers 5).
        want = reference(a, b, truncation=True, max_length=max_length)
        mask = got[contract.INPUT_MASK].numpy()
        ids = got[contract.INPUT_WORD_IDS].numpy()
        types = got[contract.INPUT_TYPE_IDS].numpy()
        for row, expected in enumerate(want["input_ids"]):
            length = int(mask[row].sum())
            expected_types = want.get("token_type_ids", [[0] * len(expected)] * len(a))[row]
            if (
                ids[row, :length].tolist() != expected
                or types[row, :length].tolist() != expected_types
                or mask[row, length:].any()
                or (ids[row, length:] != tokenizer.pad_id).any()
            ):
                bad.append((a[row], None if b is None else b[row], ids[row, :length], expected))
    return bad


@pytest.mark.slow
@pytest.mark.parametrize("name", ["xlmr", "albert", "minilm"])
def test_every_stsb_sentence_tokenizes_like_the_reference(
    name: str, tokenizers: dict[str, UnigramTokenizer], unigram_references: dict[str, Any]
) -> None:
    texts = stsb_sentences()
    assert len(texts) > 30_000
    bad = _mismatches(tokenizers[name], unigram_references[name], texts)
    assert not bad, f"{len(bad)} of {len(texts)} differ, first: {bad[:3]}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["xlmr", "albert"])
def test_every_stsb_pair_packs_like_the_reference(
    name: str, tokenizers: dict[str, UnigramTokenizer], unigram_references: dict[str, Any]
) -> None:
    pairs = stsb_pairs()
    first, second = [a for a, _ in pairs], [b for _, b in pairs]
    bad = _packed_mismatches(
        tokenizers[name], unigram_references[name], first, second, max_length=MAX_SEQ_LENGTH
    )
    assert not bad, f"{len(bad)} of {len(pairs)} pairs differ, first: {bad[:3]}"


@pytest.mark.parametrize("name", ["xlmr", "albert", "minilm", "legacy"])
@pytest.mark.parametrize("max_length", [MAX_SEQ_LENGTH, 12])
def test_probe_texts_pack_like_the_reference(
    name: str,
    max_length: int,
    tokenizers: dict[str, UnigramTokenizer],
    unigram_references: dict[str, Any],
) -> None:
    texts = list(PROBE_TEXTS)
    tokenizer, reference = tokenizers[name], unigram_references[name]
    single = _packed_mismatches(
        tokenizer, reference, texts, None, max_length=max_length, hub_packing=True
    )
    assert not single, single[:3]
    # Pairs: each probe text with the next one (long with short, empty with long, ...).
    pairs = _packed_mismatches(
        tokenizer,
        reference,
        texts,
        texts[1:] + texts[:1],
        max_length=max_length,
        hub_packing=True,
    )
    assert not pairs, pairs[:3]


def test_call_packs_probe_pairs_like_the_reference(
    tokenizers: dict[str, UnigramTokenizer], unigram_references: dict[str, Any]
) -> None:
    texts = list(PROBE_TEXTS)
    bad = _packed_mismatches(
        tokenizers["albert"],
        unigram_references["albert"],
        texts,
        texts[::-1],
        max_length=MAX_SEQ_LENGTH,
    )
    assert not bad, bad[:3]


@pytest.mark.parametrize("name", ["xlmr", "albert", "legacy"])
def test_random_unicode_texts_tokenize_like_the_reference(
    name: str, tokenizers: dict[str, UnigramTokenizer], unigram_references: dict[str, Any]
) -> None:
    texts = random_texts(3000, seed=20261203)
    bad = _mismatches(tokenizers[name], unigram_references[name], texts)
    assert not bad, f"{len(bad)} of {len(texts)} differ, first: {bad[:3]}"


def test_fairseq_and_albert_ids_follow_the_reference(
    tokenizers: dict[str, UnigramTokenizer], unigram_references: dict[str, Any]
) -> None:
    xlmr, albert = tokenizers["xlmr"], tokenizers["albert"]
    assert xlmr.vocab[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert (xlmr.pad_id, xlmr.unk_id) == (1, 3)
    assert xlmr.special_tokens_dict() == {
        "vocab_size": len(unigram_references["xlmr"]),
        "padding_id": 1,
        "start_of_sequence_id": 0,
        "end_of_segment_id": 2,
        "mask_id": unigram_references["xlmr"].mask_token_id,
    }
    assert albert.vocab[:5] == ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
    assert albert.special_tokens_dict()["mask_id"] == 4
    assert albert.do_lower_case and not xlmr.do_lower_case
    # An unknown character run is one <unk>, as the reference fuses it.
    unknown = "\U0001d11e\U0001d11e\U0001d11e"
    assert xlmr.tokenize(tf.constant([unknown])).to_list() == [
        unigram_references["xlmr"](unknown, add_special_tokens=False)["input_ids"]
    ]
    assert 3 in xlmr.tokenize(tf.constant([unknown])).to_list()[0]


def test_literal_mask_token_strips_the_space_before_it_when_the_reference_does(
    tokenizers: dict[str, UnigramTokenizer], unigram_references: dict[str, Any]
) -> None:
    text = "The capital of France is  <mask>."
    for name in ("xlmr", "minilm", "legacy"):
        want = unigram_references[name](text, add_special_tokens=False)["input_ids"]
        assert tokenizers[name].tokenize(tf.constant([text])).to_list() == [want]
    # Without WhitespaceSplit the spaces before <mask> would be a "▁" piece; lstrip takes them.
    legacy = tokenizers["legacy"]
    ids = legacy.tokenize(tf.constant([text])).to_list()[0]
    assert ids[ids.index(legacy.mask_id) - 1] != legacy.vocab.index("▁")


def test_saved_model_round_trip_gives_the_same_ids(
    tokenizers: dict[str, UnigramTokenizer], tmp_path: Path
) -> None:
    tokenizer = tokenizers["albert"]
    module = tf.Module()
    module.tokenizer = tokenizer
    module.encode = tf.function(
        lambda text: tokenizer(text), input_signature=[tf.TensorSpec([None], tf.string)]
    )
    tf.saved_model.save(module, os.fspath(tmp_path / "model"))
    graph_ops = {
        node.op
        for function in tf.saved_model.load(os.fspath(tmp_path / "model"))
        .encode.get_concrete_function()
        .graph.as_graph_def()
        .library.function
        for node in function.node_def
    }
    assert graph_ops and not graph_ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}
    loaded = tf.saved_model.load(os.fspath(tmp_path / "model"))
    texts = tf.constant(list(PROBE_TEXTS[:40]) + random_texts(40, seed=3))
    for key, value in tokenizer(texts).items():
        np.testing.assert_array_equal(loaded.encode(texts)[key].numpy(), value.numpy())


def test_metaspace_variants_follow_the_reference(
    metaspace_variants: list[tuple[dict[str, Any], Any, UnigramTokenizer]],
) -> None:
    texts = list(PROBE_TEXTS) + random_texts(300, seed=4)
    for variant, reference, tokenizer in metaspace_variants:
        bad = _mismatches(tokenizer, reference, texts)
        assert not bad, (variant, bad[:3])
