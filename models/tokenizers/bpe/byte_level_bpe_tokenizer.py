"""The in-graph byte-level BPE tokenizer (GPT-2, RoBERTa): raw strings in, ids out, exact against
the reference (the checkpoint's Hugging Face fast tokenizer).

Built only from TensorFlow core ops and tensorflow-text's RE2 split, so it saves inside a
SavedModel and runs in TF Serving. Pipeline for one text (all vectorized over the batch)::

    added tokens ("<s>", "<mask>", ...) split off the raw text      (regex_split, leftmost-longest)
    ByteLevel: optional prefix space; each character -> its regex class (derived from the
      reference per code point); the GPT-2 regex on the class string  (regex_split, RE2)
    each word's UTF-8 bytes -> initial symbols (byte-level alphabet)   (integer arithmetic)
    BPE: per step, every word merges all occurrences of its lowest-ranked pair, left to right
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from models.tokenizers.bpe.byte_level_bpe_tables import (
    CONTRACTION_CHARS,
    WHITESPACE,
    AddedToken,
    ByteLevelBpeTables,
)
from models.tokenizers.errors import UnsupportedTokenizerError
from models.tokenizers.text_tokenizer import TextTokenizer, Vocabulary, as_text_vector
from models.tokenizers.token_decoder import TokenDecoder

# Whitespace classes the graph refines by looking at the next character (RE2 has no lookahead):
# a run's last character before a non-space is _SPACE_BEFORE_WORD when it is U+0020 (it joins
# the following " ?X+" piece) and _LONE_SPACE otherwise; the rest of a run stays WHITESPACE.
_SPACE_BEFORE_WORD, _LONE_SPACE = ord("P"), ord("Q")
# The GPT-2 regex rewritten over class letters: "\s+(?!\S)" became W+ and the trailing single
# space of a run P or Q, so that RE2's leftmost-first alternation splits exactly like Oniguruma.
_WORD_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d|P?[a-z]+|P?0+|P?[!']+|W+|[PQ]"
# Stands in for an added token while the rest of its text is pre-tokenized: one byte, one word.
_PLACEHOLDER = "!"
_NO_RANK = tf.int32.max
_SURROGATE_START, _SURROGATE_COUNT = 0xD800, 0x800
# Ids a word key can spell as code points (see _merge_unique).
MAX_ID_SPACE = 0x110000 - _SURROGATE_COUNT
_UTF8_LEAD_MASK = (0, 0x7F, 0x1F, 0x0F, 0x07)  # by sequence length
_UTF8_LEAD_PREFIX = (0, 0x00, 0xC0, 0xE0, 0xF0)


class _InitialSymbols(NamedTuple):
    symbols: tf.Tensor  # int32 id of each byte's character (or of an added token)
    symbol_word: tf.Tensor  # int64 word of each symbol
    word_piece: tf.Tensor  # int64 piece of each word
    chars: tf.RaggedTensor  # [pieces, (code points)] as pre-tokenized (prefix space included)
    prefixed: tf.Tensor  # bool per piece: the pre-tokenizer prepended a space
    utf8_bytes: tf.Tensor  # int32 byte values of the pre-tokenized pieces
    byte_char: tf.Tensor  # int64 flat index into chars of each byte


class ByteLevelBpeTokenizer(TextTokenizer):
    """Tokenizes raw strings with byte-level BPE exactly like the checkpoint's fast tokenizer.

    Works eagerly and inside ``tf.function``; saves as part of any ``tf.Module`` and loads with
    plain ``tf.saved_model.load`` once ``tensorflow_text`` is imported. Never jit-compile it:
    XLA does not compile string ops.

    Example::

        tokenizer = ByteLevelBpeTokenizer.from_checkpoint(path, max_seq_length=128)
        tokenizer.tokenize(tf.constant(["Hello world"]))  # [[ids of "Hello", "Ġworld"]]
        tokenizer(tf.constant(["Hello world"]))  # <s> Hello Ġworld </s>, padded (RoBERTa)

    Literal added tokens in user text ("<mask>", "</s>", ...) become their ids as in the
    reference, including ``lstrip``/``rstrip`` (RoBERTa's "<mask>" swallows the space before it).
    :meth:`tokenize_with_offsets` gives the reference's ``offset_mapping`` as well.
    """

    @classmethod
    def _load_tables(cls, checkpoint_dir: str | os.PathLike[str]) -> ByteLevelBpeTables:
        # ~5 s for the character classes, once per process.
        return ByteLevelBpeTables.from_checkpoint(checkpoint_dir)

    def _vocabulary(
        self, tables: ByteLevelBpeTables, vocab_file: str | os.PathLike[str] | None
    ) -> Vocabulary:
        if tables.id_space > MAX_ID_SPACE:
            raise UnsupportedTokenizerError(
                f"BPE vocabulary of {tables.id_space} ids: at most {MAX_ID_SPACE} are reproduced"
            )
        return Vocabulary(
            size=tables.id_space,
            pad_id=tables.token_id(tables.pad_token),
            mask_id=tables.token_id(tables.mask_token),
            unk_id=None if tables.unk_token is None else tables.token_id(tables.unk_token),
            file=vocab_file if vocab_file is not None else tables.write_vocab_file(),
        )

    def _build(self, tables: ByteLevelBpeTables) -> None:
        self.add_prefix_space = tables.add_prefix_space
        self.use_regex = tables.use_regex
        self._id_space = tables.id_space

        classes = bytearray(tables.char_classes)
        # The regex's contractions need the actual characters (they are letters or "other").
        for char in CONTRACTION_CHARS:
            classes[ord(char)] = ord(char)
        # One byte per code point: the table adds 1.1 MB to a SavedModel, not 4.5.
        self._char_classes = tf.constant(np.frombuffer(bytes(classes), np.uint8))
        self._byte_ids = tf.constant(tables.byte_ids, tf.int32)
        self._drops_bytes = min(tables.byte_ids) < 0

        merges = tables.merges
        self._merge_ranks = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(
                    [left * self._id_space + right for left, right, _, _ in merges] or [-1],
                    tf.int64,
                ),
                tf.constant([rank for _, _, _, rank in merges] or [_NO_RANK], tf.int32),
            ),
            default_value=_NO_RANK,
        )
        merged_by_rank = [-1] * (max((rank for *_, rank in merges), default=0) + 1)
        for _, _, merged, rank in merges:
            merged_by_rank[rank] = merged
        self._merged_by_rank = tf.constant(merged_by_rank, tf.int32)

        # Two passes as in the reference: tokens matched in the raw text, then "normalized"
        # ones in the text pieces left. Each pass recognizes only its own tokens: a text piece of
        # the first pass may well be a second-pass token with spaces around it.
        whitespace = _re2_class(tables.strip_whitespace or " ")
        self._strip_pattern = f"^{whitespace}+|{whitespace}+$"
        self._lead_pattern = f"^{whitespace}+"
        self._trail_pattern = f"{whitespace}+$"
        self._trim_offsets = tables.trim_offsets
        self._trim_prefix_space = tables.trim_prefix_space
        self._added_patterns: list[str] = []
        self._added_id_tables: list[tf.lookup.StaticHashTable] = []
        for normalized in (False, True):
            tokens = [token for token in tables.added_tokens if token.normalized == normalized]
            if tokens:
                self._added_patterns.append(_added_token_pattern(tokens, tables.strip_whitespace))
                self._added_id_tables.append(
                    tf.lookup.StaticHashTable(
                        tf.lookup.KeyValueTensorInitializer(
                            tf.constant([token.content.encode() for token in tokens], tf.string),
                            tf.constant([token.id for token in tokens], tf.int32),
                        ),
                        default_value=-1,
                    )
                )

    @property
    def token_decoder(self) -> TokenDecoder:
        """The reference's ByteLevel decoder, which entity words are decoded with; any other
        decoder is refused."""
        if not self._tables.byte_level_decoder:
            raise UnsupportedTokenizerError(
                "entity words need the reference's decoder, which is reproduced only as "
                "ByteLevel for a byte-level BPE"
            )
        return TokenDecoder(kind="ByteLevel")

    def token_ids(self, text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[batch] strings -> (flat int32 ids, int64 row splits [batch + 1]), without special
        tokens or truncation."""
        ids, row_splits, _, _ = self._tokens(text, with_offsets=False)
        return ids, row_splits

    def tokenize_with_offsets(
        self, text: tf.Tensor
    ) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        """[batch] strings -> ids, start and end offsets (each [batch, (n)]; int64 code-point
        offsets into the text), as the reference's ``offset_mapping`` without special tokens
        (including its ByteLevel offset trimming, e.g. "Ġ" tokens become empty spans)."""
        if self._drops_bytes:
            raise UnsupportedTokenizerError(
                "offsets of a BPE model that drops bytes missing from its vocabulary are not "
                "reproduced in-graph"
            )
        ids, row_splits, starts, ends = self._tokens(as_text_vector(text), with_offsets=True)
        return tuple(  # type: ignore[return-value]
            tf.RaggedTensor.from_row_splits(values, row_splits, validate=False)
            for values in (ids, starts, ends)
        )

    def _tokens(
        self, text: tf.Tensor, *, with_offsets: bool
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor | None, tf.Tensor | None]:
        """Flat ids, row splits and (with_offsets) flat start and end code-point offsets."""
        pieces = tf.RaggedTensor.from_tensor(text[:, tf.newaxis])
        if not self._added_patterns:
            pieces = tf.ragged.boolean_mask(pieces, pieces != "")
        piece_token = tf.fill(tf.shape(pieces.flat_values), -1)
        piece_start = tf.zeros(tf.shape(pieces.flat_values), tf.int64)
        for pattern, ids in zip(self._added_patterns, self._added_id_tables, strict=True):
            pieces, piece_token, piece_start = self._split_added(
                pieces, piece_token, piece_start, pattern, ids
            )
        initial = self._initial_symbols(pieces.flat_values, piece_token)
        ids, symbol_word, sizes = self._merge_unique(
            initial.symbols, initial.symbol_word, tf.size(initial.word_piece)
        )
        symbol_text = tf.gather(tf.gather(pieces.value_rowids(), initial.word_piece), symbol_word)
        ragged = tf.RaggedTensor.from_value_rowids(
            ids, symbol_text, nrows=tf.shape(text, out_type=tf.int64)[0], validate=False
        )
        if not with_offsets:
            return ragged.flat_values, ragged.row_splits, None, None
        starts, ends = self._offsets(
            text, pieces, piece_token, piece_start, initial, symbol_word, sizes, ragged
        )
        return ragged.flat_values, ragged.row_splits, starts, ends

    def _offsets(
        self,
        text: tf.Tensor,
        pieces: tf.RaggedTensor,
        piece_token: tf.Tensor,
        piece_start: tf.Tensor,
        initial: _InitialSymbols,
        symbol_word: tf.Tensor,
        sizes: tf.Tensor,
        ragged: tf.RaggedTensor,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Code-point offsets of every token, as the reference computes them: a token spans
        the characters of its first to its last byte (a prepended space counts as the piece's
        first character), then the ByteLevel post-processing trims leading/trailing "Ġ"s (an
        added token: the whitespace it swallowed) off the span."""
        flat = pieces.flat_values
        piece_text = tf.gather(text, pieces.value_rowids())
        # Code points of the text before each piece.
        first_char = tf.cast(
            tf.strings.length(
                tf.strings.substr(piece_text, tf.zeros_like(piece_start), piece_start), "UTF8_CHAR"
            ),
            tf.int64,
        )
        # An added token spans its whole match, swallowed whitespace included (the trimming
        # below takes that whitespace off again, as the reference does).
        length = tf.strings.length(flat, "UTF8_CHAR")
        token_end = first_char + tf.cast(length, tf.int64)
        lead_spaces = length - tf.strings.length(
            tf.strings.regex_replace(flat, self._lead_pattern, ""), "UTF8_CHAR"
        )
        trail_spaces = length - tf.strings.length(
            tf.strings.regex_replace(flat, self._trail_pattern, ""), "UTF8_CHAR"
        )
        # Each byte's character in the text: the piece's characters shifted back by the space
        # the pre-tokenizer prepended (which itself stands for the piece's first character).
        char_piece = initial.chars.value_rowids()
        char_in_piece = tf.range(tf.size(char_piece, out_type=tf.int64)) - tf.gather(
            initial.chars.row_splits, char_piece
        )
        prefixed = tf.cast(tf.gather(initial.prefixed, char_piece), tf.int64)
        char_start = tf.gather(first_char, char_piece) + tf.maximum(char_in_piece - prefixed, 0)
        is_token = tf.gather(piece_token, char_piece) >= 0
        char_end = tf.where(is_token, tf.gather(token_end, char_piece), char_start + 1)
        byte_start = tf.gather(char_start, initial.byte_char)
        byte_end = tf.gather(char_end, initial.byte_char)

        # Tokens tile their words' bytes in order (nothing is dropped here).
        sizes = tf.cast(sizes, tf.int64)
        first_byte = tf.cumsum(sizes, exclusive=True)
        last_byte = first_byte + sizes - 1
        raw_start = tf.gather(byte_start, first_byte)
        raw_end = tf.gather(byte_end, last_byte)
        if not self._trim_offsets:
            return raw_start, raw_end
        # ByteLevel.process_offsets: leading/trailing "Ġ" (space bytes) come off the span.
        byte_token = tf.repeat(tf.range(tf.size(sizes, out_type=tf.int64)), sizes)
        in_token = tf.range(tf.size(byte_token, out_type=tf.int64)) - tf.gather(
            first_byte, byte_token
        )
        not_space = initial.utf8_bytes != ord(" ")
        num_tokens = tf.size(sizes)
        first_other = tf.math.unsorted_segment_min(
            tf.where(not_space, in_token, tf.int64.max), byte_token, num_tokens
        )
        last_other = tf.math.unsorted_segment_max(
            tf.where(not_space, in_token, tf.constant(-1, tf.int64)), byte_token, num_tokens
        )
        leading = tf.minimum(first_other, sizes)
        trailing = sizes - 1 - tf.maximum(last_other, -1)
        token_piece = tf.gather(initial.word_piece, symbol_word)
        is_added = tf.gather(piece_token, token_piece) >= 0
        leading = tf.where(
            is_added, tf.cast(tf.gather(lead_spaces, token_piece), tf.int64), leading
        )
        trailing = tf.where(
            is_added, tf.cast(tf.gather(trail_spaces, token_piece), tf.int64), trailing
        )
        position = tf.range(tf.size(sizes, out_type=tf.int64)) - tf.gather(
            ragged.row_splits, ragged.value_rowids()
        )
        is_first = (position == 0) | (raw_start == 0)
        # The space the pre-tokenizer added to the first word is kept.
        keep_added = is_first & (leading == 1) & self._trim_prefix_space
        leading = tf.where(keep_added, tf.constant(0, tf.int64), leading)
        start = tf.where(leading > 0, tf.minimum(raw_start + leading, raw_end), raw_start)
        end = tf.where(
            (trailing > 0) & (raw_end >= trailing), tf.maximum(raw_end - trailing, start), raw_end
        )
        return start, end

    def _split_added(
        self,
        pieces: tf.RaggedTensor,
        piece_token: tf.Tensor,
        piece_start: tf.Tensor,
        pattern: str,
        token_ids: tf.lookup.StaticHashTable,
    ) -> tuple[tf.RaggedTensor, tf.Tensor, tf.Tensor]:
        """Splits the text pieces of [batch, (pieces)] on one pass's added tokens; returns the
        new pieces, each one's token id (-1: text) and its byte offset in the text. Empty
        pieces are dropped, as the reference drops them (an empty text has no pieces at all)."""
        flat = pieces.flat_values
        is_token = piece_token >= 0
        # tensorflow-text's split stops at a NUL byte; a 1-byte stand-in keeps every offset
        # (no added token holds either byte, checked by the tables), and the pieces are then
        # cut from the original strings.
        searched = tf.strings.regex_replace(tf.where(is_token, "", flat), "\\x00", "\x01")
        _, starts, ends = tf_text.regex_split_with_offsets(
            searched, delim_regex_pattern=pattern, keep_delim_regex_pattern=pattern
        )
        split = tf.strings.substr(
            tf.gather(flat, starts.value_rowids()),
            starts.flat_values,
            ends.flat_values - starts.flat_values,
        )
        # A piece of this pass's split is a token exactly when it matched the pattern, and then
        # it is the token with its swallowed whitespace; a text piece holds none of this pass's
        # tokens whole.
        split_token = token_ids.lookup(tf.strings.regex_replace(split, self._strip_pattern, ""))
        split_rows = starts.row_splits
        kept_rows = tf.concat([[0], tf.cumsum(tf.cast(is_token, tf.int64))], axis=0)
        # Each old piece becomes either its split (text) or itself (an earlier token).
        pieces_out = tf.concat(
            [
                tf.RaggedTensor.from_row_splits(split, split_rows, validate=False),
                tf.RaggedTensor.from_row_splits(tf.boolean_mask(flat, is_token), kept_rows),
            ],
            axis=1,
        )
        tokens_out = tf.concat(
            [
                tf.RaggedTensor.from_row_splits(split_token, split_rows, validate=False),
                tf.RaggedTensor.from_row_splits(tf.boolean_mask(piece_token, is_token), kept_rows),
            ],
            axis=1,
        )
        starts_out = tf.concat(
            [
                tf.RaggedTensor.from_row_splits(
                    tf.gather(piece_start, starts.value_rowids()) + starts.flat_values,
                    split_rows,
                    validate=False,
                ),
                tf.RaggedTensor.from_row_splits(tf.boolean_mask(piece_start, is_token), kept_rows),
            ],
            axis=1,
        )
        regrouped = tf.RaggedTensor.from_row_splits(pieces_out, pieces.row_splits, validate=False)
        return regrouped.merge_dims(1, 2), tokens_out.flat_values, starts_out.flat_values

    def _initial_symbols(self, pieces: tf.Tensor, piece_token: tf.Tensor) -> _InitialSymbols:
        """Pieces -> initial symbols (one per UTF-8 byte), their words and what offsets need."""
        is_text = piece_token < 0
        pieces = tf.where(is_text, pieces, _PLACEHOLDER)
        prefixed = tf.zeros_like(is_text)
        if self.add_prefix_space:
            prefixed = is_text & (tf.strings.substr(pieces, 0, 1) != " ")
            pieces = tf.where(prefixed, tf.strings.join([" ", pieces]), pieces)
        # Invalid UTF-8 is read as U+FFFD (the reference only ever sees valid text).
        chars = tf.strings.unicode_decode(pieces, "UTF-8", errors="replace")
        code_points = chars.flat_values
        if self.use_regex:
            words = self._split_words(chars)
            word_char_splits = tf.concat(
                [
                    tf.gather(chars.row_splits, words.value_rowids()) + words.flat_values,
                    tf.shape(code_points, out_type=tf.int64),
                ],
                axis=0,
            )
            word_piece = words.value_rowids()
        else:
            word_char_splits = chars.row_splits
            word_piece = tf.range(tf.size(pieces, out_type=tf.int64))

        utf8_bytes, char_byte_splits, byte_char = _utf8_bytes(code_points)
        word_byte_splits = tf.gather(char_byte_splits, word_char_splits)
        symbols = tf.gather(self._byte_ids, utf8_bytes)
        symbol_word = tf.RaggedTensor.from_row_splits(
            utf8_bytes, word_byte_splits, validate=False
        ).value_rowids()
        symbol_token = tf.gather(tf.gather(piece_token, word_piece), symbol_word)
        symbols = tf.where(symbol_token >= 0, symbol_token, symbols)
        if self._drops_bytes:
            # Bytes whose character is not in the vocabulary (and no unk token): dropped.
            known = symbols >= 0
            symbols = tf.boolean_mask(symbols, known)
            symbol_word = tf.boolean_mask(symbol_word, known)
        return _InitialSymbols(
            symbols=symbols,
            symbol_word=symbol_word,
            word_piece=word_piece,
            chars=chars,
            prefixed=prefixed,
            utf8_bytes=utf8_bytes,
            byte_char=byte_char,
        )

    def _split_words(self, chars: tf.RaggedTensor) -> tf.RaggedTensor:
        """[pieces, (chars)] code points -> [pieces, (words)] char offset where each word starts."""
        code_points = chars.flat_values
        classes = tf.cast(tf.gather(self._char_classes, code_points), tf.int32)
        is_space = classes == WHITESPACE[0]
        rows = chars.value_rowids()
        next_in_row = tf.concat([rows[1:] == rows[:-1], [False]], axis=0)
        next_is_space = tf.concat([is_space[1:], [False]], axis=0)
        run_goes_on = ~next_in_row | next_is_space  # "\s+(?!\S)" may take this character
        classes = tf.where(
            is_space & ~run_goes_on,
            tf.where(code_points == ord(" "), _SPACE_BEFORE_WORD, _LONE_SPACE),
            classes,
        )
        class_strings = tf.strings.unicode_encode(chars.with_flat_values(classes), "UTF-8")
        # One byte per class letter: byte offsets in the class string are character offsets.
        _, starts, _ = tf_text.regex_split_with_offsets(
            class_strings, delim_regex_pattern=_WORD_PATTERN, keep_delim_regex_pattern=_WORD_PATTERN
        )
        return starts

    def _merge_unique(
        self, symbols: tf.Tensor, symbol_word: tf.Tensor, num_words: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """BPE on each distinct word once (the reference caches words the same way): text
        repeats its words, and every merge step costs time in proportion to the symbols.
        Returns ids, their words and the initial symbols each covers."""
        words = tf.RaggedTensor.from_value_rowids(
            symbols, symbol_word, nrows=tf.cast(num_words, tf.int64), validate=False
        )
        # A word's key is its initial symbols spelled as code points (ids from U+D800 on are
        # moved past the surrogates, which UTF-8 cannot encode).
        spelled = symbols + tf.where(symbols >= _SURROGATE_START, _SURROGATE_COUNT, 0)
        keys = tf.strings.unicode_encode(words.with_flat_values(spelled), "UTF-8")
        distinct, index = tf.unique(keys, out_idx=tf.int64)
        first = tf.math.unsorted_segment_min(
            tf.range(tf.size(keys, out_type=tf.int64)), index, tf.size(distinct)
        )
        unique_words = tf.gather(words, first)
        ids, word, sizes = self._merge(unique_words.flat_values, unique_words.value_rowids())
        merged = tf.RaggedTensor.from_value_rowids(
            tf.stack([ids, sizes], axis=1),
            word,
            nrows=tf.size(distinct, out_type=tf.int64),
            validate=False,
        )
        per_word = tf.gather(merged, index)
        return per_word.flat_values[:, 0], per_word.value_rowids(), per_word.flat_values[:, 1]

    def _merge(
        self, symbols: tf.Tensor, symbol_word: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """BPE over every word at once: each step merges, in every word, all non-overlapping
        occurrences (left to right) of that word's lowest-ranked pair; stops when no word has a
        mergeable pair. With merges in creation order (checked by the tables) this is the
        reference's heap order, (rank, position). Returns ids, their words and how many initial
        symbols (bytes) each id covers."""
        num_words = tf.reduce_max(tf.concat([symbol_word, [-1]], axis=0)) + 1

        def step(ids: tf.Tensor, words: tf.Tensor, sizes: tf.Tensor, _: tf.Tensor):
            same_word = words[:-1] == words[1:]
            keys = tf.cast(ids[:-1], tf.int64) * self._id_space + tf.cast(ids[1:], tf.int64)
            ranks = tf.where(same_word, self._merge_ranks.lookup(keys), _NO_RANK)
            lowest = tf.math.unsorted_segment_min(ranks, words[:-1], num_words)
            candidate = (ranks == tf.gather(lowest, words[:-1])) & (ranks < _NO_RANK)
            # Adjacent candidates are the same pair "x x" overlapping: take every other one from
            # the start of each run, as merging left to right does.
            previous = tf.concat([[False], candidate[:-1]], axis=0)
            run_start = candidate & ~previous
            positions = tf.range(tf.size(candidate, out_type=tf.int64))
            starts = tf.boolean_mask(positions, run_start)
            run = tf.maximum(tf.cumsum(tf.cast(run_start, tf.int64)) - 1, 0)
            offset = positions - tf.gather(tf.concat([starts, [0]], axis=0), run)
            selected = tf.concat([candidate & (offset % 2 == 0), [False]], axis=0)
            merged = tf.gather(self._merged_by_rank, tf.where(selected[:-1], ranks, 0))
            ids = tf.where(selected, tf.concat([merged, [0]], 0), ids)
            sizes = tf.where(selected, sizes + tf.concat([sizes[1:], [0]], 0), sizes)
            keep = ~tf.concat([[False], selected[:-1]], axis=0)
            return (
                tf.boolean_mask(ids, keep),
                tf.boolean_mask(words, keep),
                tf.boolean_mask(sizes, keep),
                tf.reduce_any(candidate),
            )

        ids, words, sizes, _ = tf.while_loop(
            lambda ids, words, sizes, go: go,
            step,
            (symbols, symbol_word, tf.ones_like(symbols), tf.size(symbols) > 1),
            shape_invariants=(
                tf.TensorShape([None]),
                tf.TensorShape([None]),
                tf.TensorShape([None]),
                tf.TensorShape([]),
            ),
        )
        return ids, words, sizes


def _utf8_bytes(code_points: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Code points -> (their UTF-8 bytes as int32, byte offset of each character + the end,
    character of each byte)."""
    lengths = (
        1
        + tf.cast(code_points >= 0x80, tf.int32)
        + tf.cast(code_points >= 0x800, tf.int32)
        + tf.cast(code_points >= 0x10000, tf.int32)
    )
    char_splits = tf.concat([[0], tf.cumsum(tf.cast(lengths, tf.int64))], axis=0)
    char_of_byte = tf.repeat(tf.range(tf.size(code_points, out_type=tf.int64)), lengths)
    index = tf.cast(tf.range(char_splits[-1]) - tf.gather(char_splits, char_of_byte), tf.int32)
    code_point = tf.gather(code_points, char_of_byte)
    length = tf.gather(lengths, char_of_byte)
    lead = index == 0
    payload = tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(code_point, 6 * (length - 1 - index)),
        tf.where(lead, tf.gather(_UTF8_LEAD_MASK, length), 0x3F),
    )
    prefix = tf.where(lead, tf.gather(_UTF8_LEAD_PREFIX, length), 0x80)
    return tf.bitwise.bitwise_or(payload, prefix), char_splits, char_of_byte


def _added_token_pattern(tokens: list[AddedToken], whitespace: str) -> str:
    """RE2 alternation that finds the tokens leftmost-longest (longer alternatives first: RE2
    takes the first alternative that matches at the leftmost position), with the whitespace an
    lstrip/rstrip token swallows."""
    space = _re2_class(whitespace) + "*"
    alternatives = [
        (space if token.lstrip else "")
        + _re2_literal(token.content)
        + (space if token.rstrip else "")
        for token in sorted(tokens, key=lambda token: -len(token.content.encode()))
    ]
    return "|".join(alternatives)


def _re2_class(chars: str) -> str:
    return "[" + "".join(f"\\x{{{ord(char):x}}}" for char in chars) + "]"


def _re2_literal(text: str) -> str:
    # Every non-alphanumeric character as \x{...}: RE2 accepts it, and no escaping rule is left
    # to disagree about.
    return "".join(
        char if char.isascii() and char.isalnum() else f"\\x{{{ord(char):x}}}" for char in text
    )
