"""The in-graph WordPiece tokenizer: raw strings in, encoder input ids out, exact against the
reference.

Built only from TensorFlow core ops and tensorflow-text's FastWordpieceTokenizer, so it saves
inside a SavedModel and runs in TF Serving. Exactness comes from
:class:`ReferenceTables`: the reference tokenizer is queried for every code point at
construction, and the graph applies the answers with one hash-table lookup per input character.

Pipeline for one text (all vectorized over the batch)::

    split off literal special tokens ("[MASK]", "<mask>" with the whitespace it strips)
        (one RE2 pass on the raw text, like the reference's added-token matching)
    split the other pieces into characters -> look each one up -> join
        (normalizer + pre-tokenizer in one map)
    split on " ", drop empty pieces                    (words)
    literal pieces -> their ids; words over 100 chars -> [UNK]; others -> FastWordpiece
    then the shared packer (models.tokenizers.segment_packer): truncate (longest_first), add the
    reference's special tokens and type ids, mask, pad to the longest row (or to the smallest
    length bucket that holds it)

Offsets (:meth:`BertTextTokenizer.tokenize_with_offsets`) follow every byte the map emits back
to the input character it came from, which is what the reference's alignments do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf
import tensorflow_text as tf_text

from models.tokenizers.errors import UnsupportedTokenizerError
from models.tokenizers.reference_tables import WHITESPACE, WORD_BREAK, ReferenceTables
from models.tokenizers.text_tokenizer import (
    TextTokenizer,
    Vocabulary,
    as_text_vector,
    write_vocab_file,
)

# The lookup's default: invalid UTF-8, so no real replacement string can be equal to it.
_UNMAPPED = b"\xff"
# Fences literal special tokens in the (valid UTF-8) text; no character can contain it.
_FENCE = b"\xff"


class BertTextTokenizer(TextTokenizer):
    """Tokenizes raw strings into BERT inputs exactly like the checkpoint's own fast tokenizer.

    Works eagerly and inside ``tf.function``; saves as part of any ``tf.Module`` and loads with
    plain ``tf.saved_model.load`` once ``tensorflow_text`` is imported. Never jit-compile it:
    XLA does not compile string ops.

    Example::

        tokenizer = BertTextTokenizer.from_checkpoint(path, max_seq_length=128)
        inputs = tokenizer(tf.constant(["hello world"]))
        inputs["input_word_ids"]  # int32 [1, 16]: [CLS] hello world [SEP] then [PAD]s

    The public surface is :class:`TextTokenizer`'s. Each batch is padded to the smallest of
    ``length_buckets`` that holds its longest row, or, with ``pad_to_longest=True``, to that
    row's length exactly (``length_buckets`` is then ``()``). Buckets bound the shapes the
    encoder sees, which XLA needs (one compilation per shape); without XLA a dynamic length
    costs nothing, and padding to the longest row saves the bucket's padding work (37% more
    tokens than needed on length-sorted STS-B batches).

    Literal special tokens in user text ("[MASK]", "[SEP]", ...) are honoured, as the reference
    tokenizer does: they become their ids, which is what fill-mask relies on.
    """

    @classmethod
    def _load_tables(cls, checkpoint_dir: str | os.PathLike[str]) -> ReferenceTables:
        # ~5 s; refuses a non-BERT normalizer, pre-tokenizer, model or post-processor.
        return ReferenceTables.from_checkpoint(checkpoint_dir)

    @classmethod
    def _checkpoint_vocab_file(
        cls, checkpoint_dir: str | os.PathLike[str], tables: ReferenceTables
    ) -> Path | None:
        vocab_txt = Path(checkpoint_dir) / "vocab.txt"
        return vocab_txt if _holds_vocab(vocab_txt, tables.vocab) else None

    def _vocabulary(
        self, tables: ReferenceTables, vocab_file: str | os.PathLike[str] | None
    ) -> Vocabulary:
        return Vocabulary(
            size=len(tables.vocab),
            pad_id=tables.token_id(tables.pad_token),
            mask_id=tables.token_id(tables.mask_token),
            unk_id=tables.token_id(tables.unk_token),
            file=vocab_file if vocab_file is not None else write_vocab_file(tables.vocab),
            do_lower_case=tables.do_lower_case,
        )

    def _build(self, tables: ReferenceTables) -> None:
        self.strip_accents = tables.strip_accents
        self.cls_id = tables.token_id(tables.cls_token)
        self.sep_id = tables.token_id(tables.sep_token)
        self.max_input_chars_per_word = tables.max_input_chars_per_word

        # Longest first: RE2's alternation is leftmost-first, the reference's matcher
        # leftmost-longest; with the longer alternative tried first they agree.
        literal = sorted(tables.literal_tokens, key=lambda token: (-len(token), token))
        whitespace = "[" + "".join(_re2_literal(char) for char in WHITESPACE) + "]*"
        self._whitespace = whitespace
        alternatives = []
        for token in literal:
            lstrip, rstrip = tables.literal_strip.get(token, (False, False))
            alternatives.append(
                (whitespace if lstrip else "")
                + _re2_literal(token)
                + (whitespace if rstrip else "")
            )
        self._literal_pattern = "|".join(alternatives) if alternatives else None
        # A literal piece (with the whitespace it strips) -> the token itself, for the lookup.
        self._literal_core = (
            (
                f"^{whitespace}("
                + "|".join(_re2_literal(token) for token in literal)
                + f"){whitespace}$"
            )
            if tables.literal_strip
            else None
        )
        self._char_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([key.encode() for key in tables.char_map], tf.string),
                tf.constant([value.encode() for value in tables.char_map.values()], tf.string),
            ),
            default_value=_UNMAPPED,
        )
        self._literal_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([token.encode() for token in literal] or [b""], tf.string),
                tf.constant([tables.literal_tokens[token] for token in literal] or [-1], tf.int32),
            ),
            default_value=-1,
        )
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            list(tables.vocab),
            suffix_indicator=tables.continuing_subword_prefix,
            unknown_token=tables.unk_token,
            no_pretokenization=True,
            support_detokenization=False,
            # The reference's limit counts characters and is enforced in tokenize(); this byte
            # limit only has to let every word of up to that many (4-byte) characters through.
            max_bytes_per_word=4 * tables.max_input_chars_per_word + 4,
            token_out_type=tf.int32,
        )
        self._single_piece_word = tables.unk_token
        pieces = self._wordpiece.tokenize(tf.constant([self._single_piece_word])).to_list()
        if pieces != [[self.unk_id]]:
            raise UnsupportedTokenizerError(
                f"WordPiece splits the unknown token {tables.unk_token!r} into {pieces}"
            )

    @property
    def vocab(self) -> list[str]:
        """The word-piece vocabulary in id order (a fresh list: tf.Module would otherwise track
        and wrap a list attribute)."""
        return list(self._tables.vocab)

    def token_ids(self, text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[batch] strings -> (flat int32 word-piece ids, int64 row splits [batch + 1])."""
        pieces, literal_ids = self._literal_pieces(text)
        chars = tf.strings.unicode_split(pieces.flat_values, "UTF-8")
        joined = tf.strings.reduce_join(chars.with_flat_values(self._map(chars.flat_values)), -1)
        words = tf.strings.split(self._literal_words(joined, literal_ids), sep=WORD_BREAK)
        # Words = the non-empty pieces; their offsets per piece follow from a running count.
        non_empty = words.flat_values != ""
        kept = tf.boolean_mask(words.flat_values, non_empty)
        running = tf.concat([[0], tf.cumsum(tf.cast(non_empty, tf.int64))], axis=0)
        word_splits = tf.gather(running, words.row_splits)
        word_piece = tf.ragged.row_splits_to_segment_ids(word_splits, out_type=tf.int64)
        override = self._override(kept, tf.gather(literal_ids, word_piece))
        pieces_per_word = self._wordpiece.tokenize(self._fed_words(kept, override))
        ids = self._overridden(pieces_per_word, override)
        return ids, tf.gather(pieces_per_word.row_splits, tf.gather(word_splits, pieces.row_splits))

    def tokenize_with_offsets(
        self, text: tf.Tensor
    ) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        """[batch] strings -> (ids, starts, ends), each ``[batch, (n)]``: the token ids of
        :meth:`tokenize` and where each token starts and ends (int64, exclusive end) in CODE
        POINTS of the input text, as the reference's ``offset_mapping`` gives them.

        Every byte the character map emits is traced back to the input character it came from
        (a word piece's start is its first byte's character, its end one past its last byte's
        character), so a character that expands ("ﬀ" -> "ff" under NFKD) gives all its pieces
        its own span, and removed characters belong to no token. A literal special token spans
        its match, a word over the length limit ([UNK]) the whole word.
        """
        pieces, literal_ids = self._literal_pieces(text)
        flat = pieces.flat_values
        # Code point where each piece starts in its text: pieces tile the text, so it is the
        # running count of the row's earlier pieces' characters.
        piece_chars = _char_length(flat)
        running_chars = tf.cumsum(piece_chars, exclusive=True)
        piece_start = running_chars - tf.gather(
            tf.concat([running_chars, [0]], 0), tf.gather(pieces.row_splits, pieces.value_rowids())
        )
        chars = tf.strings.unicode_split(flat, "UTF-8")
        mapped = self._map(chars.flat_values)
        char_piece = chars.value_rowids()
        char_start = tf.gather(piece_start, char_piece) + (
            tf.range(tf.size(mapped, tf.int64)) - tf.gather(chars.row_splits, char_piece)
        )
        # Where each character's output starts in the concatenation of all joined pieces.
        out_bytes = tf.cast(tf.strings.length(mapped), tf.int64)
        out_start = tf.cumsum(out_bytes, exclusive=True)
        piece_base = tf.gather(tf.concat([[0], tf.cumsum(out_bytes)], 0), chars.row_splits)

        joined = tf.strings.reduce_join(chars.with_flat_values(mapped), -1)
        # Words with their byte ranges in the joined piece: split on the single-byte break and
        # count (tf-text's RegexSplit would stop at NUL), then drop the empty ones.
        split = tf.strings.split(self._literal_words(joined, literal_ids), sep=WORD_BREAK)
        lengths = tf.cast(tf.strings.length(split.flat_values), tf.int64)
        running = tf.cumsum(lengths + 1, exclusive=True)
        begin_all = running - tf.gather(running, tf.gather(split.row_splits, split.value_rowids()))
        non_empty = lengths > 0
        words = tf.RaggedTensor.from_row_splits(
            tf.boolean_mask(split.flat_values, non_empty),
            tf.gather(
                tf.concat([[0], tf.cumsum(tf.cast(non_empty, tf.int64))], 0), split.row_splits
            ),
            validate=False,
        )
        word_begin = tf.boolean_mask(begin_all, non_empty)
        word_end = word_begin + tf.boolean_mask(lengths, non_empty)
        word_piece = words.value_rowids()
        kept = words.flat_values
        override = self._override(kept, tf.gather(literal_ids, word_piece))
        pieces_per_word, begin, end = self._wordpiece.tokenize_with_offsets(
            self._fed_words(kept, override)
        )
        ids = self._overridden(pieces_per_word, override)
        # Byte range of each word piece in the concatenated output; overridden words ([UNK]
        # for a long word) span the whole word.
        token_word = pieces_per_word.value_rowids()
        whole = tf.gather(override >= 0, token_word)
        base = tf.gather(tf.gather(piece_base, word_piece), token_word)
        word_start = tf.gather(word_begin, token_word)
        first_byte = (
            base + word_start + tf.where(whole, tf.zeros_like(begin.flat_values), begin.flat_values)
        )
        last_byte = (
            base
            + tf.where(whole, tf.gather(word_end, token_word), word_start + end.flat_values)
            - 1
        )
        last_char = tf.maximum(tf.size(out_start, tf.int64) - 1, 0)

        def source(byte: tf.Tensor) -> tf.Tensor:
            # The character whose output holds this byte: the last one starting at or before
            # it (characters that emit nothing start where the next one does).
            index = tf.searchsorted(out_start, byte, side="right", out_type=tf.int64) - 1
            return tf.gather(char_start, tf.clip_by_value(index, 0, last_char))

        starts = source(first_byte)
        ends = source(last_byte) + 1
        # A literal special token spans its match without the whitespace it strips.
        token_start, token_end = piece_start, piece_start + piece_chars
        if self._literal_core is not None:
            token_start += piece_chars - _char_length(
                tf.strings.regex_replace(flat, f"^{self._whitespace}", "")
            )
            token_end -= piece_chars - _char_length(
                tf.strings.regex_replace(flat, f"{self._whitespace}$", "")
            )
        token_piece = tf.gather(word_piece, token_word)
        literal = tf.gather(literal_ids, token_piece) >= 0
        starts = tf.where(literal, tf.gather(token_start, token_piece), starts)
        ends = tf.where(literal, tf.gather(token_end, token_piece), ends)
        splits = tf.gather(
            pieces_per_word.row_splits, tf.gather(words.row_splits, pieces.row_splits)
        )
        return tuple(
            tf.RaggedTensor.from_row_splits(values, splits, validate=False)
            for values in (ids, starts, ends)
        )

    # --- shared steps ---------------------------------------------------------------------
    def _literal_pieces(self, text: tf.Tensor) -> tuple[tf.RaggedTensor, tf.Tensor]:
        """Pieces that tile each text ([batch, (pieces)]): literal special tokens (with the
        whitespace they strip) and the text between them; the id of each literal piece, -1 for
        the others."""
        # Invalid UTF-8 becomes U+FFFD, which the reference removes.
        text = tf.strings.unicode_transcode(
            as_text_vector(text), "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        if self._literal_pattern is None:
            pieces = tf.RaggedTensor.from_row_lengths(text, tf.ones(tf.shape(text), tf.int64))
            return pieces, tf.fill(tf.shape(text), -1)
        # Each match is fenced with a byte valid UTF-8 never holds, then the text is split at
        # the fences (empty pieces are harmless). Not tf-text's RegexSplit: it stops at NUL.
        fenced = tf.strings.regex_replace(
            text, f"({self._literal_pattern})", _FENCE + rb"\1" + _FENCE
        )
        pieces = tf.strings.split(fenced, sep=_FENCE)
        keys = pieces.flat_values
        if self._literal_core is not None:
            keys = tf.strings.regex_replace(keys, self._literal_core, r"\1")
        return pieces, self._literal_table.lookup(keys)

    def _map(self, chars: tf.Tensor) -> tf.Tensor:
        mapped = self._char_table.lookup(chars)
        return tf.where(mapped == _UNMAPPED, chars, mapped)

    def _literal_words(self, joined: tf.Tensor, literal_ids: tf.Tensor) -> tf.Tensor:
        # A literal piece becomes one word (the unknown token, a single word piece); its id is
        # put back after WordPiece.
        return tf.where(literal_ids >= 0, self._single_piece_word, joined)

    def _override(self, words: tf.Tensor, literal_ids: tf.Tensor) -> tf.Tensor:
        """Per word: the id it must become regardless of WordPiece (-1: none)."""
        too_long = tf.strings.length(words, unit="UTF8_CHAR") > self.max_input_chars_per_word
        return tf.where(literal_ids >= 0, literal_ids, tf.where(too_long, self.unk_id, -1))

    def _fed_words(self, words: tf.Tensor, override: tf.Tensor) -> tf.Tensor:
        # An overridden word is fed to WordPiece as the unknown token, which comes back as
        # exactly one piece (checked in __init__); that piece then takes the word's id.
        return tf.where(override >= 0, self._single_piece_word, words)

    def _overridden(self, pieces_per_word: tf.RaggedTensor, override: tf.Tensor) -> tf.Tensor:
        piece_override = tf.gather(override, pieces_per_word.value_rowids())
        return tf.where(piece_override >= 0, piece_override, pieces_per_word.flat_values)


def _char_length(text: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.strings.length(text, unit="UTF8_CHAR"), tf.int64)


def _re2_literal(text: str) -> str:
    # Every non-alphanumeric character as \x{...}: RE2 accepts it, and no escaping rule is left
    # to disagree about.
    return "".join(
        char if char.isascii() and char.isalnum() else f"\\x{{{ord(char):x}}}" for char in text
    )


def _holds_vocab(path: Path, vocab: Sequence[str]) -> bool:
    try:
        return path.read_text(encoding="utf-8").splitlines() == list(vocab)
    except (OSError, UnicodeDecodeError):
        return False
