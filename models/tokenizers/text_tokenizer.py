"""The public surface every in-graph tokenizer shares (WordPiece, byte-level BPE, Unigram)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import tensorflow as tf

from models.tokenizers.segment_packer import LONGEST_FIRST, SegmentPacker
from models.tokenizers.special_tokens_template import SpecialTokensTemplate


class TextTokenizer(tf.Module):
    """Base class: raw strings in, TF Hub encoder inputs out, exact against a reference.

    A subclass implements :meth:`token_ids` and :meth:`tokenize_with_offsets` (``[batch]`` strings -> flat int32 ids and int64
    row splits, without specials or truncation) and a ``from_checkpoint(checkpoint_dir, *,
    max_seq_length, length_buckets=None, pad_to_longest=False)`` classmethod; everything else
    (truncation, special tokens, type ids, padding) is shared and follows the reference's
    post-processor through :class:`SpecialTokensTemplate`.

    Example::

        tokenizer = text_tokenizer_from_checkpoint(path, max_seq_length=128)
        ids = tokenizer.tokenize(tf.constant(["hello world"]))   # [[7592, 2088]]
        inputs = tokenizer(tf.constant(["hello world"]))         # padded, with specials
        hub = tokenizer.pack_inputs([ids], seq_length=128, truncation="round_robin")

    Attributes: ``vocab_size``, ``max_seq_length``, ``length_buckets`` (``()`` with
    ``pad_to_longest``), ``pad_to_longest``, ``pad_id``, ``mask_id``, ``unk_id`` (``None``
    when the model has no unknown token), ``vocab_file`` (one token per line in id order),
    ``do_lower_case``, ``template``.

    Works eagerly and inside ``tf.function``; saves inside any ``tf.Module``. Never
    jit-compile it: XLA does not compile string ops.
    """

    def __init__(
        self,
        *,
        template: SpecialTokensTemplate,
        vocab_size: int,
        pad_id: int,
        mask_id: int,
        unk_id: int | None,
        max_seq_length: int,
        length_buckets: Sequence[int] | None = None,
        pad_to_longest: bool = False,
        vocab_file: str | os.PathLike[str],
        do_lower_case: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.template = template
        self.vocab_size = int(vocab_size)
        self.pad_id = int(pad_id)
        self.mask_id = int(mask_id)
        self.unk_id = None if unk_id is None else int(unk_id)
        self.vocab_file = os.fspath(vocab_file)
        self.do_lower_case = bool(do_lower_case)
        self._packer = SegmentPacker(
            template=template,
            pad_id=pad_id,
            max_seq_length=max_seq_length,
            length_buckets=length_buckets,
            pad_to_longest=pad_to_longest,
        )
        self.max_seq_length = self._packer.max_seq_length
        self.pad_to_longest = self._packer.pad_to_longest
        self.length_buckets = self._packer.length_buckets

    def token_ids(self, text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[batch] strings -> (flat int32 token ids, int64 row splits [batch + 1]), without
        special tokens or truncation. The one method a subclass must implement."""
        raise NotImplementedError(f"{type(self).__name__} must implement token_ids")

    @property
    def metaspace_decoder(self) -> str | None:
        """The replacement char of the reference's Metaspace decoder (SentencePiece models:
        token strings read it as a space), or None for the WordPiece decoder's rules."""
        return None

    def tokenize_with_offsets(
        self, text: tf.Tensor
    ) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        """[batch] strings -> (ids, starts, ends), each ``[batch, (n)]``: the ids of
        :meth:`tokenize` and each token's int64 code-point span in the input text, equal to the
        reference's ``offset_mapping`` (entity spans of token classification come from it)."""
        raise NotImplementedError(f"{type(self).__name__} must implement tokenize_with_offsets")

    def tokenize(self, text: tf.Tensor) -> tf.RaggedTensor:
        """[batch] strings -> [batch, (n)] int32 token ids, without specials or truncation."""
        ids, row_splits = self.token_ids(as_text_vector(text))
        return tf.RaggedTensor.from_row_splits(ids, row_splits, validate=False)

    def pack_inputs(
        self,
        segments: tf.RaggedTensor | Sequence[tf.RaggedTensor],
        *,
        seq_length: int | None = None,
        truncation: str = LONGEST_FIRST,
    ) -> dict[str, tf.Tensor]:
        """1 or 2 ragged id segments -> ``input_word_ids``, ``input_mask``, ``input_type_ids``.

        Segments are ``[batch, (tokens)]`` (what :meth:`tokenize` returns) or ``[batch,
        (words), (pieces)]`` (flattened). ``truncation``: ``"longest_first"`` (the reference's)
        or ``"round_robin"`` (tf-text's RoundRobinTrimmer, TF Hub's ``bert_pack_inputs``).
        ``seq_length`` pads (and truncates) to that fixed width, as TF Hub's API does;
        without it rows fit ``max_seq_length`` and the batch is padded to its longest row or
        to the smallest length bucket that holds it.
        """
        return self._packer.pack(segments, seq_length=seq_length, truncation=truncation)

    def __call__(self, text: tf.Tensor, text_pair: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
        """[batch] strings (and optional second segments) -> padded encoder inputs.

        Same ids as ``reference(text, text_pair, truncation=True, max_length=max_seq_length)``,
        padded with the pad id to the longest row or the smallest length bucket that holds it.
        """
        segments = [self.token_ids(as_text_vector(text))]
        if text_pair is not None:
            segments.append(self.token_ids(as_text_vector(text_pair)))
        return self._packer.pack_flat(segments)

    def bucket_width(self, lengths: tf.Tensor) -> tf.Tensor:
        """The padded width (int64 scalar) for rows of these lengths (specials included)."""
        return self._packer.bucket_width(lengths)

    def special_tokens_dict(self) -> dict[str, int]:
        """The ids TF Hub's Common API names (``tokenize.get_special_tokens_dict()``)."""
        return {
            "vocab_size": self.vocab_size,
            "padding_id": self.pad_id,
            "start_of_sequence_id": self.template.start_of_sequence_id,
            "end_of_segment_id": self.template.end_of_segment_id,
            "mask_id": self.mask_id,
        }


def as_text_vector(text: tf.Tensor) -> tf.Tensor:
    """``text`` as a tf.string tensor; anything but a ``[batch]`` vector is refused."""
    text = tf.convert_to_tensor(text, tf.string)
    if text.shape.rank is not None and text.shape.rank != 1:
        raise ValueError(f"text must be a [batch] vector of strings, got shape {text.shape}")
    return text
