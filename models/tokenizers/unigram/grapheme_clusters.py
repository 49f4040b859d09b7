"""Extended grapheme cluster boundaries (Unicode UAX #29) computed in the graph.

The reference's ``Precompiled`` normalizer looks rules up per grapheme cluster (Rust's
``unicode-segmentation``), so the graph must find the same clusters. Each code point's break
properties are derived at export time from the ``regex`` module's Unicode tables and applied
with one hash-table lookup; the rules themselves are a few vectorized comparisons.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import tensorflow as tf

# Grapheme_Cluster_Break values (low 4 bits of a class); 0 is Other.
_GCB = (
    "Other", "CR", "LF", "Control", "Extend", "ZWJ", "Regional_Indicator", "Prepend",
    "SpacingMark", "L", "V", "T", "LV", "LVT",
)  # fmt: skip
(_OTHER, _CR, _LF, _CONTROL, _EXTEND, _ZWJ, _RI, _PREPEND, _SPACING_MARK, _L, _V, _T, _LV, _LVT) = (
    range(len(_GCB))
)
_EXT_PICT = 16  # Extended_Pictographic
_INCB_SHIFT = 5  # Indic_Conjunct_Break: 1 Consonant, 2 Linker, 3 Extend
_INCB = ("None", "Consonant", "Linker", "Extend")
_SURROGATES = range(0xD800, 0xE000)


@functools.cache
def grapheme_classes() -> Mapping[int, int]:
    """Code point -> its packed break class, for every code point whose class is not 0."""
    import regex  # only needed at export time

    text = "".join(chr(cp) for cp in range(0x110000) if cp not in _SURROGATES)
    classes: dict[int, int] = {}

    def mark(pattern: str, bits: int) -> None:
        for match in regex.finditer(pattern + "+", text):
            for char in match.group():
                classes[ord(char)] = classes.get(ord(char), 0) | bits

    for value, name in enumerate(_GCB):
        if value:
            mark(rf"\p{{Grapheme_Cluster_Break={name}}}", value)
    mark(r"\p{Extended_Pictographic}", _EXT_PICT)
    for value, name in enumerate(_INCB):
        if value:
            mark(rf"\p{{Indic_Conjunct_Break={name}}}", value << _INCB_SHIFT)
    return classes


def cluster_starts(classes: tf.Tensor, row_starts: tf.Tensor) -> tf.Tensor:
    """Whether a cluster starts at each position of a flat run of code points.

    ``classes``: int32 [n] packed classes; ``row_starts``: bool [n], True where a new text
    begins (a cluster never spans two texts).
    """
    gcb = tf.bitwise.bitwise_and(classes, 15)
    incb = tf.bitwise.right_shift(classes, _INCB_SHIFT)
    ext_pict = tf.bitwise.bitwise_and(classes, _EXT_PICT) != 0
    index = tf.range(tf.size(classes, tf.int64), dtype=tf.int64)
    # Everything about the previous position (row starts never read it).
    prev = tf.maximum(index - 1, 0)
    a = tf.gather(gcb, prev)
    b = gcb

    def isin(values: tf.Tensor, *members: int) -> tf.Tensor:
        return tf.reduce_any(values[:, None] == tf.constant(members, tf.int32)[None, :], axis=1)

    control = (_CONTROL, _CR, _LF)
    joined = (  # GB6-GB9b: pairs that never break
        (isin(a, _L) & isin(b, _L, _V, _LV, _LVT))
        | (isin(a, _LV, _V) & isin(b, _V, _T))
        | (isin(a, _LVT, _T) & isin(b, _T))
        | isin(b, _EXTEND, _ZWJ, _SPACING_MARK)
        | isin(a, _PREPEND)
    )
    row_first = _row_first(row_starts, index)

    def last_outside(member: tf.Tensor, end: tf.Tensor) -> tf.Tensor:
        return _last_outside(member, row_starts, index, row_first, end=end)

    # GB11: ExtPict Extend* ZWJ x ExtPict.
    before_zwj = last_outside(isin(gcb, _EXTEND), index - 2)
    emoji = (
        ext_pict
        & isin(a, _ZWJ)
        & (before_zwj >= row_first)
        & tf.gather(ext_pict, tf.maximum(before_zwj, 0))
    )
    # GB12/GB13: regional indicators pair up from the start of their run.
    before_flags = last_outside(isin(gcb, _RI), index - 1)
    flags = isin(a, _RI) & isin(b, _RI) & ((index - before_flags) % 2 == 0)
    # GB9c: Consonant [Extend Linker]* Linker [Extend Linker]* x Consonant.
    before_conjunct = last_outside(isin(incb, 2, 3), index - 1)
    safe_before = tf.maximum(before_conjunct, 0)
    linkers = tf.cumsum(tf.cast(incb == 2, tf.int64))
    conjunct = (
        (incb == 1)
        & (before_conjunct >= row_first)
        & tf.gather(incb == 1, safe_before)
        & (tf.gather(linkers, prev) > tf.gather(linkers, safe_before))
    )
    no_break = tf.where(
        isin(a, _CR) & isin(b, _LF),
        True,
        ~isin(a, *control) & ~isin(b, *control) & (joined | emoji | flags | conjunct),
    )
    return row_starts | ~no_break


def _row_first(row_starts: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """The index of the first position of each position's row."""
    return tf.gather(
        tf.boolean_mask(index, row_starts), tf.cumsum(tf.cast(row_starts, tf.int64)) - 1
    )


def _last_outside(
    member: tf.Tensor,
    row_starts: tf.Tensor,
    index: tf.Tensor,
    row_first: tf.Tensor,
    *,
    end: tf.Tensor,
) -> tf.Tensor:
    """For each position, the index of the last non-member at or before ``end`` within the
    row: the run of members ending at ``end`` starts right after it. ``row_first - 1`` when
    the run reaches back to the row's start (or ``end`` lies before it)."""
    # Groups open at every non-member and every row start; a group opened by a member (at a
    # row start) has no non-member before its run.
    opens = ~member | row_starts
    group = tf.cumsum(tf.cast(opens, tf.int64)) - 1
    first = tf.math.unsorted_segment_min(index, group, tf.size(group, tf.int64))
    opener = tf.gather(first, tf.gather(group, tf.maximum(end, 0)))
    result = tf.where(tf.gather(member, opener), opener - 1, opener)
    return tf.where((end >= row_first) & (result >= row_first), result, row_first - 1)
