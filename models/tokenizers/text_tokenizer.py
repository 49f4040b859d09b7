"""The public surface every in-graph tokenizer shares (WordPiece, byte-level BPE, Unigram)."""

from __future__ import annotations

import abc
import dataclasses
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import tensorflow as tf

from models.tokenizers.segment_packer import LONGEST_FIRST, SegmentPacker
from models.tokenizers.token_decoder import WORDPIECE_DECODER, TokenDecoder


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """What the shared surface needs of a tokenizer's vocabulary."""

    size: int
    pad_id: int
    mask_id: int
    unk_id: int | None  # None: the model has no unknown token
    file: str | os.PathLike[str]  # one token per line in id order (the SavedModel asset)
    do_lower_case: bool = False


class TextTokenizer(tf.Module, metaclass=abc.ABCMeta):
    """Base class: raw strings in, TF Hub encoder inputs out, exact against a reference.

    A subclass says only what its algorithm adds: how its tables load (``_load_tables``),
    their :class:`Vocabulary` (``_vocabulary``), its own graph tables (``_build``), and
    :meth:`token_ids` and :meth:`tokenize_with_offsets`. Construction, ``from_checkpoint``,
    truncation, special tokens, type ids and padding are shared (the latter follow the
    reference's post-processor through :class:`SpecialTokensTemplate`).

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
        tables: Any,
        *,
        max_seq_length: int,
        length_buckets: Sequence[int] | None = None,
        pad_to_longest: bool = False,
        vocab_file: str | os.PathLike[str] | None = None,
        name: str | None = None,
    ) -> None:
        """``tables``: what the subclass derived from the reference (its ``from_checkpoint``
        tables); ``vocab_file``: an existing one-token-per-line file in id order to use as the
        vocabulary asset (default: the subclass writes one)."""
        super().__init__(name=name)
        self._tables = tables
        vocabulary = self._vocabulary(tables, vocab_file)
        self.template = tables.template
        self.vocab_size = int(vocabulary.size)
        self.pad_id = int(vocabulary.pad_id)
        self.mask_id = int(vocabulary.mask_id)
        self.unk_id = None if vocabulary.unk_id is None else int(vocabulary.unk_id)
        self.vocab_file = os.fspath(vocabulary.file)
        self.do_lower_case = bool(vocabulary.do_lower_case)
        self._packer = SegmentPacker(
            template=tables.template,
            pad_id=self.pad_id,
            max_seq_length=max_seq_length,
            length_buckets=length_buckets,
            pad_to_longest=pad_to_longest,
        )
        self.max_seq_length = self._packer.max_seq_length
        self.pad_to_longest = self._packer.pad_to_longest
        self.length_buckets = self._packer.length_buckets
        self._build(tables)

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint_dir: str | os.PathLike[str],
        *,
        max_seq_length: int,
        length_buckets: Sequence[int] | None = None,
        pad_to_longest: bool = False,
    ) -> Self:
        """Builds the tokenizer from a Hugging Face checkpoint directory's tokenizer files
        (``transformers.AutoTokenizer.from_pretrained``, offline; seconds, to derive the
        tables). Raises :class:`UnsupportedTokenizerError` for a reference it cannot
        reproduce exactly, naming the component."""
        tables = cls._load_tables(checkpoint_dir)
        return cls(
            tables,
            max_seq_length=max_seq_length,
            length_buckets=length_buckets,
            pad_to_longest=pad_to_longest,
            vocab_file=cls._checkpoint_vocab_file(checkpoint_dir, tables),
        )

    # --- what each algorithm says ------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def _load_tables(cls, checkpoint_dir: str | os.PathLike[str]) -> Any:
        """The subclass's tables derived from the checkpoint's reference tokenizer."""

    @classmethod
    def _checkpoint_vocab_file(
        cls, checkpoint_dir: str | os.PathLike[str], tables: Any
    ) -> str | os.PathLike[str] | None:
        """A file of the checkpoint usable as the vocabulary asset as it is (default: none)."""
        del checkpoint_dir, tables
        return None

    @abc.abstractmethod
    def _vocabulary(self, tables: Any, vocab_file: str | os.PathLike[str] | None) -> Vocabulary:
        """The vocabulary facts of ``tables`` (``vocab_file``: see :meth:`__init__`)."""

    @abc.abstractmethod
    def _build(self, tables: Any) -> None:
        """Builds the algorithm's own lookup tables (after the shared attributes are set)."""

    @abc.abstractmethod
    def token_ids(self, text: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """[batch] strings -> (flat int32 token ids, int64 row splits [batch + 1]), without
        special tokens or truncation."""

    @property
    def token_decoder(self) -> TokenDecoder:
        """The reference's decoder, which entity words are decoded with (default: WordPiece's
        rules; a subclass whose reference decodes otherwise says so, or refuses)."""
        return WORDPIECE_DECODER

    @abc.abstractmethod
    def tokenize_with_offsets(
        self, text: tf.Tensor
    ) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        """[batch] strings -> (ids, starts, ends), each ``[batch, (n)]``: the ids of
        :meth:`tokenize` and each token's int64 code-point span in the input text, equal to the
        reference's ``offset_mapping`` (entity spans of token classification come from it)."""

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


def write_vocab_file(tokens: Sequence[str]) -> str:
    """Writes ``tokens`` one per line (id order) to a new vocab.txt; returns its path (for a
    checkpoint without one: the SavedModel needs its vocabulary as an asset file)."""
    path = Path(tempfile.mkdtemp(prefix="textserve-vocab-")) / "vocab.txt"
    path.write_text("".join(token + "\n" for token in tokens), encoding="utf-8")
    return os.fspath(path)
