"""The shared packer: truncation rules, templates, widths, against tf-text and TF Hub's packing."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text as tf_text

from models import contract
from models.tokenizers.segment_packer import SegmentPacker
from models.tokenizers.special_tokens_template import SpecialTokens, SpecialTokensTemplate

CLS, SEP, PAD = 101, 102, 0
BERT = SpecialTokensTemplate.bert(cls_id=CLS, sep_id=SEP)
# RoBERTa / MPNet: <s> A </s></s> B </s>, no token types.
ROBERTA = SpecialTokensTemplate(
    single_start=SpecialTokens((0,), (0,)),
    single_end=SpecialTokens((2,), (0,)),
    pair_start=SpecialTokens((0,), (0,)),
    pair_middle=SpecialTokens((2, 2), (0, 0)),
    pair_end=SpecialTokens((2,), (0,)),
    second_type_id=0,
    has_token_types=False,
)


def _segments(lengths: list[int], base: int) -> tf.RaggedTensor:
    return tf.ragged.constant([[base + k for k in range(n)] for n in lengths], tf.int32)


def _length_grid(size: int) -> tuple[list[int], list[int]]:
    return [n for n in range(size) for _ in range(size)], [
        m for _ in range(size) for m in range(size)
    ]


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "tf.function"])
@pytest.mark.parametrize("seq_length", [3, 4, 5, 8, 13])
def test_round_robin_equals_tf_hub_packing(seq_length: int, traced: bool) -> None:
    # TF Hub's bert_pack_inputs = RoundRobinTrimmer + combine_segments + pad_model_inputs.
    first_lengths, second_lengths = _length_grid(12)
    first, second = _segments(first_lengths, 1000), _segments(second_lengths, 2000)
    packer = SegmentPacker(template=BERT, pad_id=PAD, max_seq_length=64)

    def pack(a: tf.RaggedTensor, b: tf.RaggedTensor) -> dict[str, tf.Tensor]:
        return packer.pack([a, b], seq_length=seq_length, truncation="round_robin")

    ours = (tf.function(pack) if traced else pack)(first, second)

    trimmed = tf_text.RoundRobinTrimmer(max_seq_length=seq_length - 3).trim([first, second])
    ids, types = tf_text.combine_segments(trimmed, start_of_sequence_id=CLS, end_of_segment_id=SEP)
    want_ids, want_mask = tf_text.pad_model_inputs(ids, max_seq_length=seq_length, pad_value=PAD)
    want_types, _ = tf_text.pad_model_inputs(types, max_seq_length=seq_length)
    np.testing.assert_array_equal(ours[contract.INPUT_WORD_IDS], want_ids)
    np.testing.assert_array_equal(ours[contract.INPUT_MASK], want_mask)
    np.testing.assert_array_equal(ours[contract.INPUT_TYPE_IDS], want_types)


def test_single_segment_with_fixed_seq_length() -> None:
    packer = SegmentPacker(template=BERT, pad_id=PAD, max_seq_length=64, pad_to_longest=True)
    out = packer.pack(_segments([0, 2, 9], 1000), seq_length=6)
    assert out[contract.INPUT_WORD_IDS].numpy().tolist() == [
        [CLS, SEP, PAD, PAD, PAD, PAD],
        [CLS, 1000, 1001, SEP, PAD, PAD],
        [CLS, 1000, 1001, 1002, 1003, SEP],
    ]
    assert out[contract.INPUT_MASK].numpy().sum(axis=1).tolist() == [2, 4, 6]
    assert not out[contract.INPUT_TYPE_IDS].numpy().any()


def test_words_and_pieces_are_flattened() -> None:
    # [batch, (words), (pieces)], what TF Hub's tokenize returns.
    words = tf.ragged.constant([[[5, 6], [7]], [[8]]], tf.int32, ragged_rank=2)
    packer = SegmentPacker(template=BERT, pad_id=PAD, max_seq_length=8, pad_to_longest=True)
    out = packer.pack([words, words])
    # Longest first (the reference's rule): of two equal segments the first loses the token.
    assert out[contract.INPUT_WORD_IDS].numpy().tolist() == [
        [CLS, 5, 6, SEP, 5, 6, 7, SEP],
        [CLS, 8, SEP, 8, SEP, PAD, PAD, PAD],
    ]
    assert out[contract.INPUT_TYPE_IDS].numpy().tolist() == [
        [0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 0, 1, 1, 0, 0, 0],
    ]


def test_roberta_layout_has_two_separators_and_no_type_ids() -> None:
    packer = SegmentPacker(template=ROBERTA, pad_id=1, max_seq_length=9, pad_to_longest=True)
    out = packer.pack([_segments([2, 1], 1000), _segments([1, 6], 2000)])
    assert out[contract.INPUT_WORD_IDS].numpy().tolist() == [
        [0, 1000, 1001, 2, 2, 2000, 2, 1, 1],
        [0, 1000, 2, 2, 2000, 2001, 2002, 2003, 2],
    ]
    assert not out[contract.INPUT_TYPE_IDS].numpy().any()
    single = packer.pack(_segments([3], 1000))
    assert single[contract.INPUT_WORD_IDS].numpy().tolist() == [[0, 1000, 1001, 1002, 2]]


def test_widths_buckets_and_longest() -> None:
    bucketed = SegmentPacker(template=BERT, pad_id=PAD, max_seq_length=40)
    assert bucketed.length_buckets == (16, 32, 40)
    width = bucketed.pack(_segments([14, 3], 1))[contract.INPUT_WORD_IDS].shape[1]
    assert width == 16
    assert bucketed.pack(_segments([15], 1))[contract.INPUT_WORD_IDS].shape[1] == 32
    assert bucketed.pack(_segments([90], 1))[contract.INPUT_WORD_IDS].shape[1] == 40
    longest = SegmentPacker(template=BERT, pad_id=PAD, max_seq_length=40, pad_to_longest=True)
    assert longest.pack(_segments([5, 3], 1))[contract.INPUT_WORD_IDS].shape[1] == 7


def test_invalid_arguments_are_refused() -> None:
    packer = SegmentPacker(template=ROBERTA, pad_id=1, max_seq_length=8)
    with pytest.raises(ValueError, match="truncation"):
        packer.pack(_segments([1], 1), truncation="only_first")
    with pytest.raises(ValueError, match="at least 4"):
        packer.pack(_segments([1], 1), seq_length=3)
    with pytest.raises(ValueError, match="1 or 2 segments"):
        packer.pack([_segments([1], 1)] * 3)
    with pytest.raises(ValueError, match="at least 4"):
        SegmentPacker(template=ROBERTA, pad_id=1, max_seq_length=3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        packer.pack([_segments([1, 2], 1), _segments([1], 1)])
