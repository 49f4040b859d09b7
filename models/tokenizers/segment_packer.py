"""Truncation, special tokens, type ids and padding: the part every in-graph tokenizer shares.

One or two segments of token ids (ragged) in; the TF Hub encoder inputs out
(``input_word_ids``, ``input_mask``, ``input_type_ids``, int32 ``[batch, width]``).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from models import contract
from models.tokenizers.special_tokens_template import SpecialTokensTemplate

LONGEST_FIRST = "longest_first"  # the Hugging Face reference's rule (and its default)
ROUND_ROBIN = "round_robin"  # tf-text's RoundRobinTrimmer (TF Hub's bert_pack_inputs)
TRUNCATIONS = (LONGEST_FIRST, ROUND_ROBIN)

_SMALLEST_BUCKET = 16


class SegmentPacker:
    """Packs ragged token ids into padded encoder inputs following a special-tokens template.

    Example::

        packer = SegmentPacker(template=SpecialTokensTemplate.bert(cls_id=101, sep_id=102),
                               pad_id=0, max_seq_length=128, pad_to_longest=True)
        inputs = packer.pack([tf.ragged.constant([[7592, 2088]])])
        inputs["input_word_ids"]  # [[101, 7592, 2088, 102]]

    Width: ``seq_length`` when given (fixed, as TF Hub's ``bert_pack_inputs``); else the
    longest row with ``pad_to_longest``; else the smallest of ``length_buckets`` that holds the
    longest row. Truncation keeps every row within the width (``max_seq_length`` without
    ``seq_length``).
    """

    def __init__(
        self,
        *,
        template: SpecialTokensTemplate,
        pad_id: int,
        max_seq_length: int,
        length_buckets: Sequence[int] | None = None,
        pad_to_longest: bool = False,
    ) -> None:
        self.template = template
        self.pad_id = int(pad_id)
        self.max_seq_length = int(max_seq_length)
        _check_room(template, self.max_seq_length, what="max_seq_length")
        if pad_to_longest and length_buckets:
            raise ValueError("pad_to_longest and length_buckets exclude each other")
        self.pad_to_longest = bool(pad_to_longest)
        self.length_buckets = (
            () if pad_to_longest else _length_buckets(self.max_seq_length, length_buckets)
        )
        # Every special id (single layout, then the pair layout) and then [PAD], at the start
        # of the id pool pack() gathers from; their type ids in a parallel pool.
        runs = [
            template.single_start,
            template.single_end,
            template.pair_start,
            template.pair_middle,
            template.pair_end,
        ]
        self._offsets = []
        ids: list[int] = []
        type_ids: list[int] = []
        for run in runs:
            self._offsets.append(len(ids))
            ids += run.ids
            type_ids += run.type_ids
        self._pad_slot = len(ids)
        self._special_ids = (*ids, self.pad_id)
        self._special_type_ids = (*type_ids, 0)

    def bucket_width(self, lengths: tf.Tensor) -> tf.Tensor:
        """The padded width (int64 scalar): the longest row length with ``pad_to_longest``
        (0 for an empty batch), else the smallest length bucket >= every row length (rows must
        already fit max_seq_length; an empty batch gets the smallest bucket)."""
        longest = tf.reduce_max(tf.concat([tf.cast(lengths, tf.int64), [0]], axis=0))
        if self.pad_to_longest:
            return longest
        buckets = tf.constant(self.length_buckets, tf.int64)
        return tf.reduce_min(tf.where(buckets >= longest, buckets, buckets[-1]))

    def pack(
        self,
        segments: tf.RaggedTensor | Sequence[tf.RaggedTensor],
        *,
        seq_length: int | None = None,
        truncation: str = LONGEST_FIRST,
    ) -> dict[str, tf.Tensor]:
        """1 or 2 segments (``[batch, (tokens)]`` or ``[batch, (words), (pieces)]``, int32 or
        int64) -> ``input_word_ids``, ``input_mask``, ``input_type_ids`` (int32)."""
        if isinstance(segments, tf.RaggedTensor):
            segments = [segments]
        segments = list(segments)
        if not 1 <= len(segments) <= 2:
            raise ValueError(f"pack takes 1 or 2 segments, not {len(segments)}")
        if truncation not in TRUNCATIONS:
            raise ValueError(f"truncation must be one of {TRUNCATIONS}, not {truncation!r}")
        if seq_length is not None:
            _check_room(self.template, int(seq_length), what="seq_length")
        flat = [_flat_ids(segment) for segment in segments]
        return self.pack_flat(flat, seq_length=seq_length, truncation=truncation)

    def pack_flat(
        self,
        segments: Sequence[tuple[tf.Tensor, tf.Tensor]],
        *,
        seq_length: int | None = None,
        truncation: str = LONGEST_FIRST,
    ) -> dict[str, tf.Tensor]:
        """:meth:`pack` for segments given as (flat int32 ids, int64 row splits [batch + 1])."""
        # Built from flat ids and row offsets with dense index arithmetic rather than ragged
        # concat/slice/pad: the same result in a few dozen ops instead of hundreds, which is
        # most of the packing cost for the small batches a server sees.
        template = self.template
        pair = len(segments) == 2
        limit = self.max_seq_length if seq_length is None else int(seq_length)
        budget = limit - template.num_special_tokens(pair=pair)
        first, first_splits = segments[0]
        first_lengths = first_splits[1:] - first_splits[:-1]
        if pair:
            second, second_splits = segments[1]
            tf.debugging.assert_equal(
                tf.shape(first_splits),
                tf.shape(second_splits),
                message="text and text_pair must have the same batch size",
            )
            second_lengths = second_splits[1:] - second_splits[:-1]
            trim = _longest_first if truncation == LONGEST_FIRST else _round_robin
            keep_first, keep_second = trim(first_lengths, second_lengths, budget)
            start, middle, end = template.pair_start, template.pair_middle, template.pair_end
            offsets = self._offsets[2:]
            types = (template.first_type_id, template.second_type_id)
        else:
            keep_first = tf.minimum(first_lengths, budget)
            keep_second = tf.zeros_like(keep_first)
            second = tf.zeros([0], tf.int32)
            second_splits = tf.zeros_like(first_splits)
            start, middle, end = template.single_start, None, template.single_end
            offsets = [self._offsets[0], 0, self._offsets[1]]
            types = (template.single_type_id, 0)
        middle_length = len(middle) if middle is not None else 0
        lengths = keep_first + keep_second + template.num_special_tokens(pair=pair)
        width = (
            tf.constant(limit, tf.int64) if seq_length is not None else self.bucket_width(lengths)
        )

        # Position j of row r reads pool[index[r, j]]: the specials and [PAD] first, then the
        # first segment's ids, then the second's. Region ends along a row: start specials,
        # first segment, middle specials, second segment, end specials, padding.
        first = tf.cast(first, tf.int32)
        second = tf.cast(second, tf.int32)
        first_size = tf.size(first, tf.int64)
        pool = tf.concat([tf.constant(self._special_ids, tf.int32), first, second], axis=0)
        type_pool = tf.concat(
            [
                tf.constant(self._special_type_ids, tf.int32),
                tf.fill([first_size], tf.constant(types[0], tf.int32)),
                tf.fill(tf.shape(second, tf.int64), tf.constant(types[1], tf.int32)),
            ],
            axis=0,
        )
        specials = len(self._special_ids)
        j = tf.range(width, dtype=tf.int64)[tf.newaxis, :]
        end_start = len(start)
        first_end = end_start + keep_first[:, tf.newaxis]
        middle_end = first_end + middle_length
        second_end = middle_end + keep_second[:, tf.newaxis]
        row_end = second_end + len(end)
        index = tf.where(
            j < end_start,
            offsets[0] + j,
            tf.where(
                j < first_end,
                specials + first_splits[:-1, tf.newaxis] + j - end_start,
                tf.where(
                    j < middle_end,
                    offsets[1] + j - first_end,
                    tf.where(
                        j < second_end,
                        specials + first_size + second_splits[:-1, tf.newaxis] + j - middle_end,
                        tf.where(j < row_end, offsets[2] + j - second_end, self._pad_slot),
                    ),
                ),
            ),
        )
        return {
            contract.INPUT_WORD_IDS: tf.gather(pool, index),
            contract.INPUT_MASK: tf.cast(j < row_end, tf.int32),
            contract.INPUT_TYPE_IDS: tf.gather(type_pool, index),
        }


def _flat_ids(segment: tf.RaggedTensor) -> tuple[tf.Tensor, tf.Tensor]:
    if not isinstance(segment, tf.RaggedTensor):
        raise TypeError(f"segments must be ragged tensors, not {type(segment).__name__}")
    if segment.ragged_rank == 2:
        segment = segment.merge_dims(1, 2)
    if segment.ragged_rank != 1 or segment.flat_values.shape.rank != 1:
        raise ValueError(
            "a segment must be [batch, (tokens)] or [batch, (words), (pieces)], "
            f"got ragged rank {segment.ragged_rank}"
        )
    return tf.cast(segment.flat_values, tf.int32), tf.cast(segment.row_splits, tf.int64)


def _check_room(template: SpecialTokensTemplate, length: int, *, what: str) -> None:
    needed = template.num_special_tokens(pair=True)
    if length < needed:
        raise ValueError(
            f"{what} must be at least {needed} (the pair layout {template.describe()} alone "
            f"takes {needed})"
        )


def _longest_first(first: tf.Tensor, second: tf.Tensor, budget: int) -> tuple[tf.Tensor, tf.Tensor]:
    """How many tokens of each segment survive the reference's longest_first truncation.

    The rule of tokenizers' ``truncate_encodings`` (Rust), per row: with n1 <= n2 the shorter
    and longer lengths, n2 = n1 if n1 > budget else max(n1, budget - n1); if n1 + n2 > budget
    both become budget // 2 (the longer gets the odd one); nothing changes when the pair fits.
    """
    swap = first > second
    short = tf.where(swap, second, first)
    long_keep = tf.where(short > budget, short, tf.maximum(short, budget - short))
    both = short + long_keep > budget
    short_keep = tf.where(both, tf.constant(budget // 2, tf.int64), short)
    long_keep = tf.where(both, tf.constant(budget // 2 + budget % 2, tf.int64), long_keep)
    keep_first = tf.where(swap, long_keep, short_keep)
    keep_second = tf.where(swap, short_keep, long_keep)
    fits = first + second <= budget
    return tf.where(fits, first, keep_first), tf.where(fits, second, keep_second)


def _round_robin(first: tf.Tensor, second: tf.Tensor, budget: int) -> tuple[tf.Tensor, tf.Tensor]:
    """tf-text's RoundRobinTrimmer for two segments: one token to each segment in turn (first
    segment first) until the budget is spent; a segment that runs out leaves the rest to the
    other. Closed form: the first keeps min(n1, max(ceil(b/2), b - n2))."""
    # The Python half as a tensor of the lengths' dtype: inside tf.function a bare int becomes
    # an int32 constant that tf.maximum will not mix with int64 lengths.
    half = tf.constant((budget + 1) // 2, second.dtype)
    keep_first = tf.minimum(first, tf.maximum(half, budget - second))
    keep_second = tf.minimum(second, budget - keep_first)
    return keep_first, keep_second


def _length_buckets(max_seq_length: int, requested: Sequence[int] | None) -> tuple[int, ...]:
    if requested is None:
        buckets = []
        size = _SMALLEST_BUCKET
        while size < max_seq_length:
            buckets.append(size)
            size *= 2
    else:
        buckets = sorted({int(size) for size in requested})
        if buckets and (buckets[0] < 1 or buckets[-1] > max_seq_length):
            raise ValueError(f"length buckets {buckets} must lie in [1, {max_seq_length}]")
    if not buckets or buckets[-1] != max_seq_length:
        buckets.append(max_seq_length)
    return tuple(buckets)
