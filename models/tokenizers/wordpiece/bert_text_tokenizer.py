"""The in-graph BERT tokenizer: raw strings in, BERT input ids out, exact against the reference.

Built only from TensorFlow core ops and tensorflow-text's FastWordpieceTokenizer, so it saves
inside a SavedModel and runs in TF Serving. Exactness comes from :class:`ReferenceTables`: the
reference tokenizer is queried for every code point at construction, and the graph applies the
answers with one hash-table lookup per input character.

Pipeline for one text (all vectorized over the batch)::

    literal special tokens -> marker characters        (regex_replace, raw text, like the reference)
    split into characters -> look each one up -> join  (normalizer + pre-tokenizer in one map)
    split on " ", drop empty pieces                    (words)
    marker words -> special ids; words over 100 chars -> [UNK]; others -> FastWordpiece
    then the shared packer (models.tokenizers.segment_packer): truncate (longest_first), add the
    reference's special tokens and type ids, mask, pad to the longest row (or to the smallest
    length bucket that holds it)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import tensorflow as tf
import tensorflow_text as tf_text

from models.tokenizers.errors import UnsupportedTokenizerError
from models.tokenizers.reference_tables import WORD_BREAK, ReferenceTables
from models.tokenizers.text_tokenizer import TextTokenizer

# The lookup's default: invalid UTF-8, so no real replacement string can be equal to it.
_UNMAPPED = b"\xff"
# Literal special tokens are turned into private-use characters before normalization; characters
# already in the text at those code points are first turned into _ESCAPE (all of them must be
# characters the reference removes, so this is invisible in the output).
_MARKER_CANDIDATES = range(0xE000, 0xF900)


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

    def __init__(
        self,
        tables: ReferenceTables,
        *,
        max_seq_length: int,
        length_buckets: Sequence[int] | None = None,
        pad_to_longest: bool = False,
        vocab_file: str | os.PathLike[str] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(
            template=tables.template,
            vocab_size=len(tables.vocab),
            pad_id=tables.token_id(tables.pad_token),
            mask_id=tables.token_id(tables.mask_token),
            unk_id=tables.token_id(tables.unk_token),
            max_seq_length=max_seq_length,
            length_buckets=length_buckets,
            pad_to_longest=pad_to_longest,
            vocab_file=_vocab_file(tables.vocab, vocab_file),
            do_lower_case=tables.do_lower_case,
            name=name,
        )
        self._tables = tables
        self.strip_accents = tables.strip_accents
        self.cls_id = tables.token_id(tables.cls_token)
        self.sep_id = tables.token_id(tables.sep_token)
        self.max_input_chars_per_word = tables.max_input_chars_per_word

        literal = sorted(tables.literal_tokens.items(), key=lambda item: -len(item[0]))
        markers, escape = _pick_markers(tables, count=len(literal))
        self._literal_patterns = [
            (_re2_literal(token), marker)
            for (token, _), marker in zip(literal, markers, strict=True)
        ]
        self._marker_pattern = (
            "[" + "".join(_re2_literal(marker) for marker in markers) + "]" if markers else None
        )
        self._escape = escape

        char_map = dict(tables.char_map)
        for marker in markers:
            char_map[marker] = WORD_BREAK + marker + WORD_BREAK
        self._char_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([key.encode() for key in char_map], tf.string),
                tf.constant([value.encode() for value in char_map.values()], tf.string),
            ),
            default_value=_UNMAPPED,
        )
        self._marker_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([marker.encode() for marker in markers] or [b""], tf.string),
                tf.constant([token_id for _, token_id in literal] or [-1], tf.int32),
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

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint_dir: str | os.PathLike[str],
        *,
        max_seq_length: int,
        length_buckets: Sequence[int] | None = None,
        pad_to_longest: bool = False,
    ) -> BertTextTokenizer:
        """Builds the tokenizer from a Hugging Face checkpoint directory's tokenizer files.

        Derives its tables from ``transformers.AutoTokenizer.from_pretrained(checkpoint_dir)``
        (offline, ~5 s). Raises :class:`UnsupportedTokenizerError` for a reference it cannot
        reproduce exactly (a non-BERT normalizer, pre-tokenizer, model or post-processor).
        """
        tables = ReferenceTables.from_checkpoint(checkpoint_dir)
        vocab_txt = Path(checkpoint_dir) / "vocab.txt"
        return cls(
            tables,
            max_seq_length=max_seq_length,
            length_buckets=length_buckets,
            pad_to_longest=pad_to_longest,
            vocab_file=vocab_txt if _holds_vocab(vocab_txt, tables.vocab) else None,
        )

    def token_ids(self, text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[batch] strings -> (flat int32 word-piece ids, int64 row splits [batch + 1])."""
        if self._marker_pattern is not None:
            text = tf.strings.regex_replace(text, self._marker_pattern, self._escape)
            for pattern, marker in self._literal_patterns:
                text = tf.strings.regex_replace(text, pattern, marker)
        # Invalid UTF-8 becomes U+FFFD, which the reference removes.
        chars = tf.strings.unicode_split(text, "UTF-8", errors="replace")
        mapped = self._char_table.lookup(chars.flat_values)
        mapped = tf.where(mapped == _UNMAPPED, chars.flat_values, mapped)
        joined = tf.strings.reduce_join(chars.with_flat_values(mapped), axis=-1)
        pieces = tf.strings.split(joined, sep=WORD_BREAK)
        # Words = the non-empty pieces; row offsets follow from a running count of them.
        non_empty = pieces.flat_values != ""
        words = tf.boolean_mask(pieces.flat_values, non_empty)
        running = tf.concat([[0], tf.cumsum(tf.cast(non_empty, tf.int64))], axis=0)
        word_splits = tf.gather(running, pieces.row_splits)

        special = self._marker_table.lookup(words)
        too_long = tf.strings.length(words, unit="UTF8_CHAR") > self.max_input_chars_per_word
        override = tf.where(too_long, self.unk_id, special)
        overridden = override >= 0
        # An overridden word is fed to WordPiece as the unknown token, which comes back as
        # exactly one piece (checked in __init__); that piece then takes the word's id.
        pieces_per_word = self._wordpiece.tokenize(
            tf.where(overridden, self._single_piece_word, words)
        )
        piece_word = pieces_per_word.value_rowids()
        piece_override = tf.gather(override, piece_word)
        ids = tf.where(piece_override >= 0, piece_override, pieces_per_word.flat_values)
        return ids, tf.gather(pieces_per_word.row_splits, word_splits)


def _pick_markers(tables: ReferenceTables, *, count: int) -> tuple[list[str], str]:
    literal_chars = set("".join(tables.literal_tokens))
    removed = [
        chr(cp)
        for cp in _MARKER_CANDIDATES
        if tables.char_map.get(chr(cp)) == "" and chr(cp) not in literal_chars
    ]
    if len(removed) < count + 1:
        raise UnsupportedTokenizerError(
            "the reference keeps private-use characters, so literal special tokens cannot be "
            "marked in-graph without changing other text"
        )
    return removed[:count], removed[count]


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


def _vocab_file(vocab: Sequence[str], given: str | os.PathLike[str] | None) -> str:
    if given is not None:
        return os.fspath(given)
    # A tokenizer.json-only checkpoint has no vocab.txt; write one for the SavedModel asset.
    directory = tempfile.mkdtemp(prefix="textserve-vocab-")
    path = Path(directory) / "vocab.txt"
    path.write_text("".join(token + "\n" for token in vocab), encoding="utf-8")
    return os.fspath(path)
