"""Entities from per-token predictions, in the graph: what transformers'
``pipeline("token-classification", aggregation_strategy="simple")`` returns, computed with
TensorFlow ops so that no Python runs at serving time."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from models import contract
from models.tokenizers.bpe.byte_level_bpe_tables import byte_level_alphabet
from models.tokenizers.token_decoder import WORDPIECE_DECODER, TokenDecoder

#: Labels the pipeline drops from its answer (its ``ignore_labels`` default).
IGNORED_LABELS = ("O",)
#: tokenizers' WordPiece decoder ``cleanup``: literal replacements on each decoded token.
_CLEANUP = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" do not", " don't"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)


class EntityGrouper(tf.Module):
    """Groups per-token predictions into entities exactly as the pipeline's "simple" strategy:

    every token but the special ones gets its arg-max label and that label's probability;
    adjacent tokens are grouped while their tags (the label without ``B-``/``I-``) agree and
    the newer one is not a ``B-`` (labels without the prefix count as ``I-``); a group is named
    after its first label with everything up to the first ``-`` removed, scored with the mean
    of its tokens' scores, spans from its first token's start to its last token's end
    (code-point offsets into the original text), and its word is its tokens decoded with the
    tokenizer's ``decoder`` (:class:`TokenDecoder`: WordPiece, Metaspace or ByteLevel, as
    ``tokenizer.convert_tokens_to_string`` does); an unknown token reads as the text it covers.
    Groups named ``O`` are dropped.

    Example::

        grouper = EntityGrouper(id2label=["O", "B-PER", "I-PER"], vocab_file=vocab,
                                unk_id=100, decoder=tokenizer.token_decoder)
        entities = grouper(text, word_ids, special, starts, ends, probabilities)
    """

    def __init__(
        self,
        *,
        id2label: Sequence[str],
        vocab_file: tf.saved_model.Asset | str,
        unk_id: int,
        decoder: TokenDecoder = WORDPIECE_DECODER,
    ) -> None:
        super().__init__(name="entity_grouper")
        labels = list(id2label)
        tags = [label[2:] if label.startswith(("B-", "I-")) else label for label in labels]
        unique_tags = sorted(set(tags))
        self._is_begin = tf.constant([label.startswith("B-") for label in labels])
        self._tag_ids = tf.constant([unique_tags.index(tag) for tag in tags], tf.int32)
        self._group_names = tf.constant([label.split("-", 1)[-1] for label in labels])
        self._unk_id = int(unk_id)
        self._decoder = decoder
        if decoder.kind == "ByteLevel":
            alphabet = byte_level_alphabet()
            # Code point -> the byte GPT-2's byte-to-unicode table gave it (-1: none).
            char_bytes = np.full(max(map(ord, alphabet)) + 1, -1, np.int32)
            char_bytes[[ord(char) for char in alphabet]] = np.arange(256)
            self._char_bytes = tf.constant(char_bytes)
            self._byte_strings = tf.constant([bytes([byte]) for byte in range(256)])
        self._id_to_token = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(
                vocab_file,
                key_dtype=tf.int64,
                key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
                value_dtype=tf.string,
                value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            ),
            default_value="",
        )

    def __call__(
        self,
        text: tf.Tensor,
        word_ids: tf.Tensor,
        special: tf.Tensor,
        starts: tf.Tensor,
        ends: tf.Tensor,
        probabilities: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        """``text`` [batch]; the rest [batch, seq] (``probabilities`` [batch, seq, labels]).

        ``special``: tokens the pipeline skips ([CLS], [SEP], padding, literal special
        tokens). Returns the ``contract.ENTITY_*`` outputs, [batch, entities].
        """
        batch = tf.shape(word_ids, out_type=tf.int64)[0]
        keep = tf.logical_not(special)
        labels = tf.ragged.boolean_mask(
            tf.argmax(probabilities, axis=-1, output_type=tf.int32), keep
        )
        rows = labels.value_rowids()
        label = labels.flat_values
        score = tf.boolean_mask(tf.reduce_max(probabilities, axis=-1), keep)
        ids = tf.boolean_mask(word_ids, keep)
        start = tf.boolean_mask(starts, keep)
        end = tf.boolean_mask(ends, keep)

        tag = tf.gather(self._tag_ids, label)
        first_in_row = tf.range(tf.size(label, tf.int64)) == tf.gather(labels.row_splits, rows)
        previous_tag = tf.concat([[-1], tag[:-1]], axis=0)
        opens = first_in_row | (tag != previous_tag) | tf.gather(self._is_begin, label)
        group = tf.cumsum(tf.cast(opens, tf.int32)) - 1
        groups = tf.reduce_sum(tf.cast(opens, tf.int32))
        position = tf.range(tf.size(label, tf.int32))
        first = tf.boolean_mask(position, opens)
        last = tf.math.unsorted_segment_max(position, group, groups)

        token = self._id_to_token.lookup(tf.cast(ids, tf.int64))
        # The pipeline reads an [UNK] token as the text it covers.
        covered = tf.strings.substr(tf.gather(text, rows), start, end - start, unit="UTF8_CHAR")
        token = tf.where(ids == self._unk_id, covered, token)
        word = self._words(token, opens, group, groups)

        name = tf.gather(self._group_names, tf.gather(label, first))
        kept = tf.reduce_all(
            tf.not_equal(name[:, None], tf.constant(IGNORED_LABELS)[None, :]), axis=1
        )
        group_rows = tf.boolean_mask(tf.gather(rows, first), kept)

        def dense(values: tf.Tensor, pad: object) -> tf.Tensor:
            ragged = tf.RaggedTensor.from_value_rowids(
                tf.boolean_mask(values, kept), group_rows, nrows=batch
            )
            return ragged.to_tensor(pad)

        return {
            contract.ENTITY_GROUPS: dense(name, ""),
            contract.ENTITY_SCORES: dense(tf.math.unsorted_segment_mean(score, group, groups), 0.0),
            contract.ENTITY_STARTS: dense(tf.gather(start, first), -1),
            contract.ENTITY_ENDS: dense(tf.gather(end, last), -1),
            contract.ENTITY_WORDS: dense(word, ""),
        }

    def _words(
        self, token: tf.Tensor, opens: tf.Tensor, group: tf.Tensor, groups: tf.Tensor
    ) -> tf.Tensor:
        """Each group's tokens (``opens``: a group's first token) decoded as the reference's
        decoder does; the one place that tells the decoders apart."""
        kind = self._decoder.kind
        if kind == "ByteLevel":
            # tokenizers' ByteLevel decoder: the group's bytes joined, then decoded as UTF-8
            # with U+FFFD for each maximal invalid subsequence (Rust's from_utf8_lossy, as
            # Python's errors="replace"); a character split across tokens joins up again.
            raw = tf.strings.unsorted_segment_join(self._token_bytes(token), group, groups)
            return tf.strings.unicode_transcode(
                raw,
                input_encoding="UTF-8",
                output_encoding="UTF-8",
                errors="replace",
                replacement_char=0xFFFD,
                replace_control_characters=False,
            )
        if kind == "Metaspace":
            # tokenizers' Metaspace decoder: the replacement char reads as a space, except in
            # the first token, where every one of them is dropped.
            pattern = re.escape(self._decoder.replacement)
            piece = tf.where(
                opens,
                tf.strings.regex_replace(token, pattern, ""),
                tf.strings.regex_replace(token, pattern, " "),
            )
        else:
            piece = self._wordpiece_pieces(token, opens)
        return tf.strings.unsorted_segment_join(piece, group, groups)

    def _token_bytes(self, token: tf.Tensor) -> tf.Tensor:
        """The bytes the ByteLevel decoder makes of each token: every character mapped back
        to its byte when all of them are in the byte-level alphabet, else the token's own
        UTF-8 (an unknown token's covered text, a user-added token)."""
        chars = tf.strings.unicode_decode(token, "UTF-8")
        code_points = chars.flat_values
        table_size = tf.size(self._char_bytes)
        byte = tf.where(
            code_points < table_size,
            tf.gather(self._char_bytes, tf.minimum(code_points, table_size - 1)),
            -1,
        )
        mapped = tf.reduce_all(chars.with_flat_values(byte >= 0), axis=1)
        as_bytes = tf.strings.reduce_join(
            chars.with_flat_values(tf.gather(self._byte_strings, tf.maximum(byte, 0))), axis=1
        )
        return tf.where(mapped, as_bytes, token)

    def _wordpiece_pieces(self, token: tf.Tensor, opens: tf.Tensor) -> tf.Tensor:
        """Each token as tokenizers' WordPiece decoder renders it within its group, to be
        joined: the prefix joins a token to the previous one, a space other tokens."""
        prefix = "^" + re.escape(self._decoder.continuing_subword_prefix)
        continues = tf.strings.regex_full_match(token, prefix + "(?s:.*)")
        piece = tf.where(
            opens,
            token,
            tf.where(
                continues,
                tf.strings.regex_replace(token, prefix, "", replace_global=False),
                tf.strings.join([" ", token]),
            ),
        )
        for dirty, clean in _CLEANUP:
            piece = tf.strings.regex_replace(piece, re.escape(dirty), clean.replace("\\", "\\\\"))
        return piece
