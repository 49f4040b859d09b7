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
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from models.tokenizers.errors import UnsupportedTokenizerError
from models.tokenizers.text_tokenizer import (
    TextTokenizer,
    Vocabulary,
    as_text_vector,
    write_vocab_file,
)
from models.tokenizers.token_decoder import TokenDecoder
from models.tokenizers.unigram import grapheme_clusters
from models.tokenizers.unigram.unigram_tables import (
    PRECOMPILED_CLUSTER_BYTES,
    Replacement,
    UnigramTables,
)

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
# Separates a special section's key from the raw text it matched (offsets only).
_MATCH = b"\xfd"
# Fence and separator of a Replace's matches while its alignment is followed (offsets only).
_FENCE = b"\xff"
_REPLACED = b"\xfe"
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

    @classmethod
    def _load_tables(cls, checkpoint_dir: str | os.PathLike[str]) -> UnigramTables:
        return UnigramTables.from_checkpoint(checkpoint_dir)

    def _vocabulary(
        self, tables: UnigramTables, vocab_file: str | os.PathLike[str] | None
    ) -> Vocabulary:
        return Vocabulary(
            size=len(tables.pieces),
            pad_id=tables.pad_id,
            mask_id=tables.mask_id,
            unk_id=tables.unk_id,
            file=vocab_file if vocab_file is not None else write_vocab_file(tables.pieces),
            do_lower_case=tables.do_lower_case,
        )

    def _build(self, tables: UnigramTables) -> None:

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

    @property
    def vocab(self) -> list[str]:
        """The pieces in id order (a fresh list: tf.Module would track and wrap a list)."""
        return list(self._tables.pieces)

    @property
    def token_decoder(self) -> TokenDecoder:
        """The reference's Metaspace decoder (replacement char "▁"), which entity words are
        decoded with; any other decoder is refused."""
        if self._tables.decoder_metaspace is None:
            raise UnsupportedTokenizerError(
                "entity words need the reference's decoder, which is reproduced only as "
                "Metaspace dropping the leading space"
            )
        return TokenDecoder(kind="Metaspace", replacement=self._tables.decoder_metaspace)

    @_plain_graph
    def token_ids(self, text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[batch] strings -> (flat int32 piece ids, int64 row splits [batch + 1]), without
        special tokens or truncation."""
        sections = self._sections(_valid_utf8(text))
        special = self._special_table.lookup(sections.flat_values)
        normalized = self._normalize(tf.where(special >= 0, "", sections.flat_values))
        words = self._words(normalized, first_section=_first_in_row(sections))
        pieces = self._pieces(words, special)
        return pieces.ids, tf.gather(
            pieces.word_splits, tf.gather(pieces.section_words, sections.row_splits)
        )

    @_plain_graph
    def tokenize_with_offsets(
        self, text: tf.Tensor
    ) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        """[batch] strings -> (ids, starts, ends), each ``[batch, (n)]``: the piece ids of
        :meth:`tokenize` and where each piece starts and ends (int64, exclusive end) in CODE
        POINTS of the input text, as the reference's ``offset_mapping`` gives them.

        Every normalized character is followed back to the input character the reference's
        alignments tie it to, and a piece spans from its first character's origin to one past
        its last one's: a Replace's output goes to the last character it replaced, a
        per-code-point expansion to its character, a Precompiled rule's i-th output character
        to the i-th character it replaced (extra ones to the last; removals shift the
        reference's bookkeeping and are followed as it does), Metaspace's "▁" to the character
        it precedes or replaces. A literal special token spans its whole match, including the
        whitespace it strips.
        """
        sections = self._sections(_valid_utf8(as_text_vector(text)), keep_match=True)
        parts = tf.strings.split(sections.flat_values, sep=_MATCH)
        special = self._special_table.lookup(tf.gather(parts.flat_values, parts.row_starts()))
        # A special section's raw text is what it matched; any other's is itself.
        raw = tf.gather(parts.flat_values, parts.row_limits() - 1)
        raw_chars = _char_length(raw)
        running = tf.cumsum(raw_chars, exclusive=True)
        section_start = running - tf.gather(
            tf.concat([running, [0]], 0), tf.gather(sections.row_splits, sections.value_rowids())
        )
        chars = tf.strings.unicode_split(tf.where(special >= 0, "", raw), "UTF-8")
        origin = tf.gather(section_start, chars.value_rowids()) + _position_in_row(chars)
        chars, origin = self._normalize_chars(chars, origin)
        words, word_first, word_length, origin = self._words_of_chars(
            chars, origin, first_section=_first_in_row(sections)
        )
        pieces = self._pieces(words, special)
        # A piece covers [begin, end) of its word's characters; it ends where the next piece of
        # the word begins. Placeholder words (special sections) span their section instead.
        real = tf.gather(pieces.real_word, pieces.piece_word)
        is_real = real >= 0
        same_word = tf.concat([pieces.piece_word[1:] == pieces.piece_word[:-1], [False]], 0)
        end = tf.where(
            same_word,
            tf.concat([pieces.begins[1:], [0]], 0),
            tf.where(is_real, _gather_or_zero(word_length, real), 1),
        )
        base = _gather_or_zero(word_first, real)
        section = tf.gather(pieces.word_section, pieces.piece_word)
        starts = tf.where(
            is_real,
            _gather_or_zero(origin, base + pieces.begins),
            tf.gather(section_start, section),
        )
        ends = tf.where(
            is_real,
            _gather_or_zero(origin, base + end - 1) + 1,
            tf.gather(section_start + raw_chars, section),
        )
        splits = tf.gather(pieces.word_splits, tf.gather(pieces.section_words, sections.row_splits))
        return tuple(  # type: ignore[return-value]
            tf.RaggedTensor.from_row_splits(values, splits, validate=False)
            for values in (pieces.ids, starts, ends)
        )

    @_plain_graph
    def _pieces(self, words: tf.RaggedTensor, special: tf.Tensor) -> _Pieces:
        """[sections, (words)] and each section's special id (-1: text) -> the pieces of every
        word, a special section counting as one word whose one piece is its id."""
        is_special = special >= 0
        # Special sections have no words (their text was emptied); give each one word.
        word_counts = tf.where(is_special, tf.ones_like(words.row_lengths()), words.row_lengths())
        section_words = tf.concat([[0], tf.cumsum(word_counts)], axis=0)
        placeholder = tf.boolean_mask(section_words[:-1], is_special)[:, tf.newaxis]
        total = tf.reshape(section_words[-1], [1])
        is_placeholder = tf.scatter_nd(placeholder, tf.ones_like(placeholder[:, 0], tf.bool), total)
        all_words = tf.tensor_scatter_nd_update(
            tf.fill(total, "a"),
            tf.where(~is_placeholder),
            words.flat_values,
        )
        word_special = tf.tensor_scatter_nd_update(
            tf.fill(total, -1), placeholder, tf.boolean_mask(special, is_special)
        )
        ids, word_splits, begins = self._viterbi(all_words)
        piece_word = tf.ragged.row_splits_to_segment_ids(word_splits)
        override = tf.gather(word_special, piece_word)
        return _Pieces(
            ids=tf.where(override >= 0, override, ids),
            word_splits=word_splits,
            section_words=section_words,
            piece_word=piece_word,
            begins=begins,
            real_word=tf.where(
                is_placeholder,
                tf.constant(-1, tf.int64),
                tf.cumsum(tf.cast(~is_placeholder, tf.int64)) - 1,
            ),
            word_section=tf.ragged.row_splits_to_segment_ids(section_words),
        )

    @_plain_graph
    def _normalize_chars(
        self, chars: tf.RaggedTensor, origin: tf.Tensor
    ) -> tuple[tf.RaggedTensor, tf.Tensor]:
        """:meth:`_normalize` on [sections, (chars)], with each char's input origin (int64)."""
        for replacement in self._tables.replacements_before:
            chars, origin = _replace_chars(chars, origin, replacement)
        if self._char_table is not None:
            mapped = self._char_table.lookup(chars.flat_values)
            mapped = tf.where(mapped == _MISSING, chars.flat_values, mapped)
            out = tf.strings.unicode_split(mapped, "UTF-8")
            chars = tf.RaggedTensor.from_row_splits(
                out.flat_values, tf.gather(out.row_splits, chars.row_splits), validate=False
            )
            origin = tf.gather(origin, out.value_rowids())
        if self._tables.charsmap_rules is not None:
            chars, origin = self._precompiled_chars(chars, origin)
        for replacement in self._tables.replacements_after:
            chars, origin = _replace_chars(chars, origin, replacement)
        return chars, origin

    @_plain_graph
    def _precompiled_chars(
        self, chars: tf.RaggedTensor, origin: tf.Tensor
    ) -> tuple[tf.RaggedTensor, tf.Tensor]:
        """:meth:`_precompiled` on chars with origins, aligned as the reference aligns it.

        The reference lists one (char, change) per output char: change 0 replaces the next
        input char, +1 inserts (aligned to the last replaced char); a rule with more output
        than input chars inserts its extra ones, one with fewer adds the deficit (negative:
        removes that many more input chars) to the LAST entry listed so far in the text, which
        may be an earlier rule's insertion (then it replaces a char after all), or to nothing
        at the text's start (then every later char is aligned one input char early)."""
        codepoints = chars.with_flat_values(
            tf.strings.unicode_decode(chars.flat_values, "UTF-8").flat_values
        )
        out, replaced = self._precompiled_rules(codepoints)
        pieces = tf.strings.unicode_split(out, "UTF-8")
        unit = pieces.value_rowids()
        produced = pieces.row_lengths()
        change = tf.cast(_position_in_row(pieces) >= tf.gather(replaced, unit), tf.int64)
        deficit = tf.maximum(replaced - produced, 0)
        total = tf.cumsum(produced)
        out_splits = tf.gather(tf.concat([[0], total], 0), chars.row_splits)
        char_section = chars.value_rowids()
        last = total - 1
        shrinks = (deficit > 0) & (last >= tf.gather(out_splits, char_section))
        change -= tf.math.unsorted_segment_sum(
            tf.boolean_mask(deficit, shrinks),
            tf.boolean_mask(last, shrinks),
            tf.size(pieces.flat_values, tf.int64),
        )
        consumed = tf.where(change > 0, tf.zeros_like(change), 1 - change)
        pointer = tf.cumsum(consumed, exclusive=True)
        out_section = tf.gather(char_section, unit)
        section_first = tf.gather(out_splits, out_section)
        pointer -= tf.gather(tf.concat([pointer, [0]], 0), section_first)
        local = pointer - tf.cast(change > 0, tf.int64)
        local = tf.clip_by_value(local, 0, tf.gather(chars.row_lengths(), out_section) - 1)
        source = tf.gather(chars.row_splits, out_section) + local
        return (
            tf.RaggedTensor.from_row_splits(pieces.flat_values, out_splits, validate=False),
            tf.gather(origin, source),
        )

    @_plain_graph
    def _words_of_chars(
        self, chars: tf.RaggedTensor, origin: tf.Tensor, *, first_section: tf.Tensor
    ) -> tuple[tf.RaggedTensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """:meth:`_words` on normalized chars with origins -> ([sections, (words)], each word's
        first char and char count, and the origin of every char of the words)."""
        tables = self._tables
        mark = tables.replacement
        flat = chars.flat_values
        first = _position_in_row(chars) == 0
        if tables.whitespace_split:
            space = tf.strings.regex_full_match(flat, _WHITESPACE)
            after_space = tf.concat([[False], space[:-1]], 0) & ~first
            chunk_start = ~space & (first | after_space)
            chars = tf.ragged.boolean_mask(chars, chars.with_flat_values(~space))
            origin = tf.boolean_mask(origin, ~space)
            chunk_start = tf.boolean_mask(chunk_start, ~space)
            flat = chars.flat_values
        else:
            flat = tf.where(flat == " ", mark, flat)
            chunk_start = first
        needs = chunk_start & (flat != mark)
        if tables.prepend_scheme == "never":
            needs &= False
        elif tables.prepend_scheme == "first":
            needs &= tf.gather(first_section, chars.value_rowids())
        # A prepended "▁" takes the place of the chunk's first char and shares its origin.
        counts = 1 + tf.cast(needs, tf.int64)
        source = tf.repeat(tf.range(tf.size(flat, tf.int64)), counts)
        grown = tf.concat([[0], tf.cumsum(counts)], 0)
        leading = tf.range(tf.size(source, tf.int64)) == tf.gather(grown, source)
        flat = tf.where(leading & tf.gather(needs, source), mark, tf.gather(flat, source))
        origin = tf.gather(origin, source)
        word_start = leading & tf.gather(chunk_start, source)
        if tables.split:
            word_start |= flat == mark
        word = tf.cumsum(tf.cast(word_start, tf.int64)) - 1
        word_first = tf.where(word_start)[:, 0]
        num_words = tf.size(word_first, tf.int64)
        word_end = tf.concat([word_first[1:], tf.size(flat, tf.int64)[tf.newaxis]], 0)
        word_length = word_end - word_first
        words = tf.strings.unsorted_segment_join(flat, word, num_words)
        running = tf.concat([[0], tf.cumsum(tf.cast(word_start, tf.int64))], 0)
        section_words = tf.gather(running, tf.gather(grown, chars.row_splits))
        return (
            tf.RaggedTensor.from_row_splits(words, section_words, validate=False),
            word_first,
            word_length,
            origin,
        )

    @_plain_graph
    def _sections(self, text: tf.Tensor, *, keep_match: bool = False) -> tf.RaggedTensor:
        """[batch] texts -> [batch, (sections)]: the text between literal special tokens, and
        each special token as a section of its own (_SPECIAL + its index; with ``keep_match``
        followed by _MATCH and the raw text it matched, for offsets)."""
        if not self._specials:
            return tf.RaggedTensor.from_tensor(text[:, tf.newaxis])
        for index, token in enumerate(self._specials):
            pattern = _re2_literal(token.content)
            if token.lstrip:
                pattern = _WHITESPACE + "*" + pattern
            if token.rstrip:
                pattern = pattern + _WHITESPACE + "*"
            marker = _SPECIAL + str(index).encode() + (_MATCH + rb"\0" if keep_match else b"")
            marker = _SECTION_BREAK + marker + _SECTION_BREAK
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
        out, _ = self._precompiled_rules(codepoints)
        return tf.strings.reduce_join(codepoints.with_flat_values(out), axis=-1)

    @_plain_graph
    def _precompiled_rules(self, codepoints: tf.RaggedTensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Per code point: what :meth:`_precompiled` outputs there (a whole cluster's output
        at its first char, "" at its others) and how many input chars that output replaces
        (the cluster's length, 0 at its others, 1 for a char taking its own rule)."""
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
        replaced = tf.where(
            whole_at,
            tf.where(starts, tf.gather(count, cluster), tf.zeros_like(cluster)),
            tf.ones_like(cluster),
        )
        return out, replaced

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
    def _viterbi(self, words: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """[words] -> (flat int32 piece ids, int64 row splits per word, int64 char where each
        piece begins in its word): the best-scoring segmentation of each word, as tokenizers'
        Unigram.encode_optimized finds it."""
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
        begins = tf.boolean_mask(
            tf.range(1, max_length + 1)[tf.newaxis, :] - tf.cast(chosen_length, tf.int64), on_path
        )
        word_of = tf.boolean_mask(
            tf.broadcast_to(tf.range(num_words)[:, tf.newaxis], tf.shape(on_path, tf.int64)),
            on_path,
        )
        # Consecutive unknowns in a word fuse into one (tokenizers' fuse_unk).
        unknown = ids == self._tables.unk_id
        same_word = word_of[:-1] == word_of[1:]
        keep = ~(unknown & tf.concat([[False], unknown[:-1] & same_word], 0))
        ids = tf.boolean_mask(ids, keep)
        begins = tf.boolean_mask(begins, keep)
        word_of = tf.boolean_mask(word_of, keep)
        counts = tf.math.bincount(
            tf.cast(word_of, tf.int32),
            minlength=tf.cast(num_words, tf.int32),
            maxlength=tf.cast(num_words, tf.int32),
            dtype=tf.int64,
        )
        return ids, tf.concat([[0], tf.cumsum(counts)], axis=0), begins


class _Pieces(NamedTuple):
    ids: tf.Tensor  # int32 per piece
    word_splits: tf.Tensor  # pieces per word (all words: a special section is one word)
    section_words: tf.Tensor  # words per section
    piece_word: tf.Tensor  # int64 word of each piece
    begins: tf.Tensor  # int64 char where each piece begins in its word
    real_word: tf.Tensor  # per word: its index among the text words, -1 for a special's
    word_section: tf.Tensor  # int64 section of each word


def _replace_chars(
    chars: tf.RaggedTensor, origin: tf.Tensor, replacement: Replacement
) -> tuple[tf.RaggedTensor, tf.Tensor]:
    """A normalizer Replace on [sections, (chars)] with origins: every char it outputs is
    aligned, as the reference inserts it, to the last char of the match it replaces."""
    text = tf.strings.reduce_join(chars, axis=-1)
    content = replacement.content.encode().replace(b"\\", b"\\\\")
    marked = tf.strings.regex_replace(
        text, replacement.pattern, _FENCE + rb"\0" + _REPLACED + content + _FENCE
    )
    pieces = tf.strings.split(marked, sep=_FENCE)
    halves = tf.strings.split(pieces.flat_values, sep=_REPLACED)
    replaced = halves.row_lengths() == 2
    consumed = _char_length(tf.gather(halves.flat_values, halves.row_starts()))
    out = tf.strings.unicode_split(tf.gather(halves.flat_values, halves.row_limits() - 1), "UTF-8")
    piece = out.value_rowids()
    source = tf.gather(tf.cumsum(consumed, exclusive=True), piece) + tf.where(
        tf.gather(replaced, piece), tf.gather(consumed, piece) - 1, _position_in_row(out)
    )
    splits = tf.gather(out.row_splits, pieces.row_splits)
    return (
        tf.RaggedTensor.from_row_splits(out.flat_values, splits, validate=False),
        tf.gather(origin, source),
    )


def _valid_utf8(text: tf.Tensor) -> tf.Tensor:
    # Invalid UTF-8 becomes U+FFFD (the reference only ever sees valid text).
    return tf.strings.unicode_transcode(
        text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )


def _first_in_row(ragged: tf.RaggedTensor) -> tf.Tensor:
    """bool per flat value: it is its row's first."""
    return _position_in_row(ragged) == 0


def _position_in_row(ragged: tf.RaggedTensor) -> tf.Tensor:
    """int64 per flat value: its index in its row."""
    return tf.range(tf.size(ragged.flat_values, tf.int64)) - tf.gather(
        ragged.row_splits, ragged.value_rowids()
    )


def _char_length(text: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.strings.length(text, unit="UTF8_CHAR"), tf.int64)


def _gather_or_zero(values: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """``values[index]``, 0 where the index is out of range (e.g. -1, or ``values`` empty)."""
    size = tf.size(values, tf.int64)
    inside = (index >= 0) & (index < size)
    padded = tf.concat([values, tf.zeros([1], values.dtype)], 0)
    return tf.gather(padded, tf.where(inside, index, size))


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
