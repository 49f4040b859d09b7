"""The in-graph SentencePiece Unigram tokenizer (XLM-R, ALBERT, multilingual MiniLM), exact
against the checkpoint's own Hugging Face fast tokenizer.

Built from TensorFlow core ops only (string, hash-table, ragged and a while loop), so it saves
inside a SavedModel and runs in a stock TF Serving. Pipeline for one text, vectorized over the
batch::

    literal special tokens -> separate sections           (regex_replace + split, raw text)
    normalizer: Replace / per-code-point map / Precompiled (charsmap rules per grapheme
                cluster, as the reference applies them) / Replace
    pre-tokenizer: [WhitespaceSplit,] Metaspace           (prepend "▁", split before each "▁")
    Unigram: every substring of every word looked up, Viterbi over the lattice in float64
             with the reference's tie-breaking, unknown runs fused into one unk

tensorflow-text's SentencepieceOp is not used: it differs from the reference where the
reference differs from SentencePiece (float32 scores, control pieces kept out of the lattice,
charsmap rules matched across grapheme clusters).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from models.tokenizers.text_tokenizer import TextTokenizer
from models.tokenizers.unigram import grapheme_clusters
from models.tokenizers.unigram.unigram_tables import PRECOMPILED_CLUSTER_BYTES, UnigramTables

# The Unigram model's unknown-token penalty (tokenizers' K_UNK_PENALTY, SentencePiece's
# kUnkPenalty): an unknown character scores this much below the lowest piece.
_UNK_PENALTY = 10.0
# Sections (text between literal special tokens) are cut at this byte, which valid UTF-8
# never contains (input is made valid first); a special token's section is _SPECIAL + index.
_SECTION_BREAK = b"\xff"
_SPECIAL = b"\xfe"
# Rust's char::is_whitespace (Unicode White_Space), which WhitespaceSplit splits on.
_WHITESPACE = (
    "[\\t\\n\\x{0b}\\x{0c}\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"
    "\\x{202f}\\x{205f}\\x{3000}]"
)
_MISSING = b"\xff"  # hash-table default: invalid UTF-8, so never a real replacement
# The graph code has no Python control flow on tensors (its loops are explicit
# tf.while_loops); converting it with AutoGraph only costs tracing time (~9 s of 12).
_plain_graph = tf.autograph.experimental.do_not_convert


class UnigramTokenizer(TextTokenizer):
    """Tokenizes raw strings into Unigram piece ids exactly like the checkpoint's fast tokenizer.

    Example::

        tokenizer = UnigramTokenizer.from_checkpoint(path, max_seq_length=128)
        tokenizer.tokenize(tf.constant(["Hello world"]))  # [[35378, 8999]] for XLM-R
        tokenizer(tf.constant(["Hello world"]))           # <s> Hello world </s>, mask, types

    The public surface is :class:`TextTokenizer`'s (packing, truncation, padding, special
    tokens dict). Literal special tokens in the text ("<mask>", with the reference's lstrip /
    rstrip) become their ids. Works eagerly and inside ``tf.function``; never jit-compile it
    (XLA does not compile string ops).
    """

    def __init__(
        self,
        tables: UnigramTables,
        *,
        max_seq_length: int,
        length_buckets: Sequence[int] | None = None,
        pad_to_longest: bool = False,
        vocab_file: str | os.PathLike[str] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            template=tables.template,
            vocab_size=len(tables.pieces),
            pad_id=tables.pad_id,
            mask_id=tables.mask_id,
            unk_id=tables.unk_id,
            max_seq_length=max_seq_length,
            length_buckets=length_buckets,
            pad_to_longest=pad_to_longest,
            vocab_file=_vocab_file(tables.pieces, vocab_file),
            do_lower_case=tables.do_lower_case,
            name=name,
        )
        self._tables = tables

        self._specials = sorted(tables.special_tokens, key=lambda token: -len(token.content))
        self._special_table = _table(
            [_SPECIAL + str(index).encode() for index in range(len(self._specials))],
            [token.id for token in self._specials],
            default=-1,
            value_dtype=tf.int32,
        )
        self._char_table = _string_table(tables.char_map) if tables.char_map else None
        if tables.charsmap_rules is not None:
            self._charsmap_table = _string_table(tables.charsmap_rules)
            classes = grapheme_clusters.grapheme_classes()
            self._cluster_table = _table(
                list(classes),
                list(classes.values()),
                default=0,
                value_dtype=tf.int32,
                key_dtype=tf.int32,
            )
        self._piece_table = _table(
            [piece.encode() for piece in tables.pieces],
            list(range(len(tables.pieces))),
            default=-1,
            value_dtype=tf.int32,
        )
        self._scores = tf.constant(tables.scores, tf.float64)
        self._unk_score = tf.constant(min(tables.scores) - _UNK_PENALTY, tf.float64)
        self._max_piece_chars = max(len(piece) for piece in tables.pieces)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint_dir: str | os.PathLike[str],
        *,
        max_seq_length: int,
        length_buckets: Sequence[int] | None = None,
        pad_to_longest: bool = False,
    ) -> UnigramTokenizer:
        """Builds the tokenizer from a Hugging Face checkpoint directory's tokenizer files
        (``AutoTokenizer.from_pretrained``, offline). Raises :class:`UnsupportedTokenizerError`
        for a reference it cannot reproduce exactly."""
        return cls(
            UnigramTables.from_checkpoint(checkpoint_dir),
            max_seq_length=max_seq_length,
            length_buckets=length_buckets,
            pad_to_longest=pad_to_longest,
        )

    @property
    def vocab(self) -> list[str]:
        """The pieces in id order (a fresh list: tf.Module would track and wrap a list)."""
        return list(self._tables.pieces)

    @_plain_graph
    def token_ids(self, text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[batch] strings -> (flat int32 piece ids, int64 row splits [batch + 1]), without
        special tokens or truncation."""
        # Invalid UTF-8 becomes U+FFFD (the reference only ever sees valid text).
        text = tf.strings.unicode_transcode(
            text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        sections = self._sections(text)
        special = self._special_table.lookup(sections.flat_values)
        is_special = special >= 0
        normalized = self._normalize(tf.where(is_special, "", sections.flat_values))
        first_section = tf.range(tf.size(is_special, tf.int64)) == tf.gather(
            sections.row_splits, sections.value_rowids()
        )
        words = self._words(normalized, first_section=first_section)
        # Special sections have no words (their text was emptied); give each one word.
        word_counts = tf.where(is_special, tf.ones_like(words.row_lengths()), words.row_lengths())
        word_starts = tf.concat([[0], tf.cumsum(word_counts)], axis=0)
        placeholder = tf.boolean_mask(word_starts[:-1], is_special)[:, tf.newaxis]
        total = tf.reshape(word_starts[-1], [1])
        is_placeholder = tf.scatter_nd(placeholder, tf.ones_like(placeholder[:, 0], tf.bool), total)
        all_words = tf.tensor_scatter_nd_update(
            tf.fill(total, "a"),
            tf.where(~is_placeholder),
            words.flat_values,
        )
        word_special = tf.tensor_scatter_nd_update(
            tf.fill(total, -1), placeholder, tf.boolean_mask(special, is_special)
        )
        ids, word_splits = self._viterbi(all_words)
        piece_word = tf.ragged.row_splits_to_segment_ids(word_splits)
        override = tf.gather(word_special, piece_word)
        ids = tf.where(override >= 0, override, ids)
        text_word_splits = tf.gather(word_starts, sections.row_splits)
        return ids, tf.gather(word_splits, text_word_splits)

    @_plain_graph
    def _sections(self, text: tf.Tensor) -> tf.RaggedTensor:
        """[batch] texts -> [batch, (sections)]: the text between literal special tokens, and
        each special token as a section of its own (_SPECIAL + its index)."""
        if not self._specials:
            return tf.RaggedTensor.from_tensor(text[:, tf.newaxis])
        for index, token in enumerate(self._specials):
            pattern = _re2_literal(token.content)
            if token.lstrip:
                pattern = _WHITESPACE + "*" + pattern
            if token.rstrip:
                pattern = pattern + _WHITESPACE + "*"
            marker = _SECTION_BREAK + _SPECIAL + str(index).encode() + _SECTION_BREAK
            text = tf.strings.regex_replace(text, pattern, marker)
        return tf.strings.split(text, sep=_SECTION_BREAK)

    @_plain_graph
    def _normalize(self, text: tf.Tensor) -> tf.Tensor:
        for replacement in self._tables.replacements_before:
            text = tf.strings.regex_replace(text, replacement.pattern, replacement.content)
        if self._char_table is not None:
            chars = tf.strings.unicode_split(text, "UTF-8")
            mapped = self._char_table.lookup(chars.flat_values)
            mapped = tf.where(mapped == _MISSING, chars.flat_values, mapped)
            text = tf.strings.reduce_join(chars.with_flat_values(mapped), axis=-1)
        if self._tables.charsmap_rules is not None:
            text = self._precompiled(text)
        for replacement in self._tables.replacements_after:
            text = tf.strings.regex_replace(text, replacement.pattern, replacement.content)
        return text

    @_plain_graph
    def _precompiled(self, text: tf.Tensor) -> tf.Tensor:
        """The reference's Precompiled normalizer: per grapheme cluster shorter than 6 bytes,
        the rule of the SHORTEST prefix of the cluster that has one replaces the whole cluster
        (the rest of the cluster is dropped); every other char takes its own rule."""
        codepoints = tf.strings.unicode_decode(text, "UTF-8")
        chars = tf.strings.unicode_encode(codepoints.flat_values[:, tf.newaxis], "UTF-8")
        n = tf.size(chars, tf.int64)
        index = tf.range(n)
        first_chars = _row_start_indices(codepoints)
        row_starts = tf.scatter_nd(first_chars, tf.ones_like(first_chars[:, 0], tf.bool), [n])
        starts = grapheme_clusters.cluster_starts(
            self._cluster_table.lookup(codepoints.flat_values), row_starts
        )
        cluster = tf.cumsum(tf.cast(starts, tf.int64)) - 1
        count = tf.math.segment_sum(tf.ones_like(cluster), cluster)
        size = tf.math.segment_sum(tf.cast(tf.strings.length(chars), tf.int64), cluster)
        cluster_start = tf.boolean_mask(index, starts)
        looked_up = (count >= 2) & (size < PRECOMPILED_CLUSTER_BYTES)
        # The cluster's prefixes of 1..5 chars, shortest first; the first with a rule wins.
        rule = tf.fill(tf.shape(cluster_start), _MISSING)
        prefix = tf.fill(tf.shape(cluster_start), "")
        for length in range(1, PRECOMPILED_CLUSTER_BYTES):
            position = tf.minimum(cluster_start + length - 1, tf.maximum(n - 1, 0))
            prefix = tf.strings.join([prefix, tf.gather(chars, position)])
            found = self._charsmap_table.lookup(prefix)
            usable = (rule == _MISSING) & (found != _MISSING) & (length <= count)
            rule = tf.where(usable, found, rule)
        whole = looked_up & (rule != _MISSING)
        whole_at = tf.gather(whole, cluster)
        own = self._charsmap_table.lookup(chars)
        own = tf.where(own == _MISSING, chars, own)
        out = tf.where(
            whole_at,
            tf.where(starts, tf.gather(rule, cluster), ""),
            own,
        )
        return tf.strings.reduce_join(codepoints.with_flat_values(out), axis=-1)

    @_plain_graph
    def _words(self, text: tf.Tensor, *, first_section: tf.Tensor) -> tf.RaggedTensor:
        """Normalized sections -> [sections, (words)], each word as the Unigram model sees it."""
        tables = self._tables
        mark = tables.replacement
        if tables.whitespace_split:
            spaced = tf.strings.regex_replace(text, _WHITESPACE + "+", " ")
            chunks = tf.strings.split(spaced, sep=" ")
            chunks = tf.ragged.boolean_mask(chunks, chunks != "")
        else:
            chunks = tf.RaggedTensor.from_tensor(
                tf.strings.regex_replace(text, " ", mark)[:, tf.newaxis]
            )
        chunk_text = chunks.flat_values
        if tables.prepend_scheme != "never":
            starts_marked = tf.strings.substr(chunk_text, 0, len(mark.encode())) == mark
            needs = (chunk_text != "") & ~starts_marked
            if tables.prepend_scheme == "first":
                # Only the text's first section (offset 0 in the original, as the reference
                # checks); "first" after WhitespaceSplit is refused in UnigramTables.
                needs &= tf.gather(first_section, chunks.value_rowids())
            chunk_text = tf.where(needs, tf.strings.join([mark, chunk_text]), chunk_text)
        if tables.split:
            parts = tf.strings.split(chunk_text, sep=mark)
            # MergedWithNext: each "▁" starts a new word; only a first part can be empty.
            later = tf.range(tf.size(parts.flat_values, tf.int64)) > tf.gather(
                parts.row_splits, parts.value_rowids()
            )
            words = tf.where(later, tf.strings.join([mark, parts.flat_values]), parts.flat_values)
            parts = parts.with_flat_values(words)
            parts = tf.ragged.boolean_mask(parts, parts != "")
            chunk_words = parts
        else:
            chunk_words = tf.RaggedTensor.from_tensor(chunk_text[:, tf.newaxis])
            chunk_words = tf.ragged.boolean_mask(chunk_words, chunk_words != "")
        return tf.RaggedTensor.from_row_splits(
            chunk_words.flat_values,
            tf.gather(chunk_words.row_splits, chunks.row_splits),
            validate=False,
        )

    @_plain_graph
    def _viterbi(self, words: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[words] -> (flat int32 piece ids, int64 row splits per word): the best-scoring
        segmentation of each word, as tokenizers' Unigram.encode_optimized finds it."""
        chars = tf.strings.unicode_split(words, "UTF-8")
        flat = chars.flat_values
        n = tf.size(flat, tf.int64)
        position = tf.range(n) - tf.gather(chars.row_splits, chars.value_rowids())
        # Column k-1: the piece of k chars ending at each char (-1: none, or out of the word).
        piece_ids = []
        substring = flat
        for length in range(1, self._max_piece_chars + 1):
            if length > 1:
                substring = tf.strings.join([tf.concat([[""], substring[:-1]], 0), flat])
            found = self._piece_table.lookup(substring)
            piece_ids.append(tf.where(position >= length - 1, found, -1))
        ids = tf.stack(piece_ids, axis=1)
        # No single-char piece: the char is an unknown (scored unk_score).
        single_unknown = ids[:, 0] < 0
        ids = tf.concat(
            [tf.where(single_unknown, self._tables.unk_id, ids[:, 0])[:, tf.newaxis], ids[:, 1:]], 1
        )
        impossible = tf.constant(-np.inf, tf.float64)
        scores = tf.where(ids >= 0, tf.gather(self._scores, tf.maximum(ids, 0)), impossible)
        scores = tf.concat(
            [
                tf.where(single_unknown, self._unk_score, scores[:, 0])[:, tf.newaxis],
                scores[:, 1:],
            ],
            1,
        )
        ragged_scores = chars.with_flat_values(scores)
        ragged_ids = chars.with_flat_values(ids)
        # [word, end char, piece length]; transposed so the loop reads one end position.
        dense_scores = ragged_scores.to_tensor(default_value=tf.constant(-np.inf, tf.float64))
        dense_ids = ragged_ids.to_tensor(default_value=-1)
        lengths = chars.row_lengths()
        width = self._max_piece_chars
        num_words = tf.shape(dense_scores, out_type=tf.int64)[0]
        max_length = tf.shape(dense_scores, out_type=tf.int64)[1]
        by_end = tf.transpose(dense_scores, [1, 2, 0])  # [end, k, word]
        piece_lengths = tf.range(1, width + 1, dtype=tf.int32)[:, tf.newaxis]

        def step(end, window, chosen):
            # window[k-1] = best score of the path ending k-1 chars before this piece ends.
            candidate = window + by_end[end]
            best = tf.reduce_max(candidate, axis=0)
            # Ties go to the longest piece: tokenizers visits starts in order and only a
            # strictly better score replaces the first one found.
            length = tf.reduce_max(tf.where(candidate == best, piece_lengths, 0), axis=0)
            window = tf.concat([best[tf.newaxis], window[:-1]], axis=0)
            return end + 1, window, chosen.write(tf.cast(end, tf.int32), length)

        start_window = tf.concat(
            [
                tf.zeros([1, num_words], tf.float64),
                tf.fill(
                    tf.stack([tf.constant(width - 1, tf.int64), num_words]),
                    tf.constant(-np.inf, tf.float64),
                ),
            ],
            axis=0,
        )
        _, _, chosen = tf.while_loop(
            lambda end, *_: end < max_length,
            step,
            (
                tf.constant(0, tf.int64),
                start_window,
                tf.TensorArray(
                    tf.int32,
                    size=tf.cast(max_length, tf.int32),
                    element_shape=tf.TensorShape([None]),
                ),
            ),
            shape_invariants=(
                tf.TensorShape([]),
                tf.TensorShape([width, None]),
                tf.TensorShape(None),
            ),
        )
        chosen_length = tf.transpose(
            tf.reshape(chosen.stack(), tf.stack([max_length, num_words]))
        )  # [word, end]

        def back(at, on_path):
            active = at > 0
            word = tf.boolean_mask(tf.range(num_words), active)
            end = tf.boolean_mask(at, active) - 1
            where = tf.stack([word, end], axis=1)
            on_path = tf.tensor_scatter_nd_update(on_path, where, tf.ones_like(word, tf.bool))
            step_back = tf.gather_nd(
                chosen_length, tf.stack([tf.range(num_words), tf.maximum(at - 1, 0)], axis=1)
            )
            return tf.where(active, at - tf.cast(step_back, tf.int64), at), on_path

        _, on_path = tf.while_loop(
            lambda at, _: tf.reduce_any(at > 0),
            back,
            (lengths, tf.zeros(tf.stack([num_words, max_length]), tf.bool)),
        )
        piece_id = tf.gather(
            dense_ids, tf.maximum(chosen_length - 1, 0)[..., tf.newaxis], batch_dims=2
        )[..., 0]
        ids = tf.boolean_mask(piece_id, on_path)
        word_of = tf.boolean_mask(
            tf.broadcast_to(tf.range(num_words)[:, tf.newaxis], tf.shape(on_path, tf.int64)),
            on_path,
        )
        # Consecutive unknowns in a word fuse into one (tokenizers' fuse_unk).
        unknown = ids == self._tables.unk_id
        same_word = word_of[:-1] == word_of[1:]
        keep = ~(unknown & tf.concat([[False], unknown[:-1] & same_word], 0))
        ids = tf.boolean_mask(ids, keep)
        word_of = tf.boolean_mask(word_of, keep)
        counts = tf.math.bincount(
            tf.cast(word_of, tf.int32),
            minlength=tf.cast(num_words, tf.int32),
            maxlength=tf.cast(num_words, tf.int32),
            dtype=tf.int64,
        )
        return ids, tf.concat([[0], tf.cumsum(counts)], axis=0)


def _row_start_indices(ragged: tf.RaggedTensor) -> tf.Tensor:
    """[k, 1] flat indices where a non-empty row starts."""
    starts = ragged.row_splits[:-1]
    return tf.boolean_mask(starts, ragged.row_lengths() > 0)[:, tf.newaxis]


def _table(keys, values, *, default, value_dtype, key_dtype=tf.string) -> tf.lookup.StaticHashTable:
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys or [b""] if key_dtype == tf.string else keys or [-1], key_dtype),
            tf.constant(values or [default], value_dtype),
        ),
        default_value=default,
    )


def _string_table(mapping) -> tf.lookup.StaticHashTable:
    return _table(
        [key.encode() for key in mapping],
        [value.encode() for value in mapping.values()],
        default=_MISSING,
        value_dtype=tf.string,
    )


def _re2_literal(text: str) -> str:
    """``text`` as an RE2 pattern matching it literally (every non-alphanumeric escaped)."""
    return "".join(
        char if char.isascii() and char.isalnum() else f"\\x{{{ord(char):x}}}" for char in text
    )


def _vocab_file(pieces: Sequence[str], given: str | os.PathLike[str] | None) -> str:
    if given is not None:
        return os.fspath(given)
    directory = tempfile.mkdtemp(prefix="textserve-unigram-vocab-")
    path = Path(directory) / "vocab.txt"
    path.write_text("".join(piece + "\n" for piece in pieces), encoding="utf-8")
    return os.fspath(path)
