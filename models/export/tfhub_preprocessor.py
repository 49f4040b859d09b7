"""The TF Hub text preprocessor SavedModel (Common SavedModel API for text, "preprocessor" half).

What ``textserve-export --export-type preprocessing`` saves, built on the same in-graph
tokenizer as the end-to-end export (any tokenizer family with the shared surface
``tokenize`` / ``pack_inputs`` / ``special_tokens_dict``). The API it follows is
tensorflow.org/hub/common_saved_model_apis/text::

    preprocessor = tf.saved_model.load(path)     # or hub.load / hub.KerasLayer(path)
    encoder_inputs = preprocessor(text)          # [batch] strings -> 3 x int32 [batch, 128]
    tokens = preprocessor.tokenize(text)         # RaggedTensor int32 [batch, (tokens)]
    preprocessor.tokenize.get_special_tokens_dict()  # vocab_size, padding_id, ... (scalars)
    encoder_inputs = preprocessor.bert_pack_inputs([tokens_a, tokens_b], seq_length=64)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf

from models import contract
from models.export.tfhub_reusable_module import TfHubReusableModule

#: ``bert_pack_inputs`` is traced for these ``seq_length`` values (those up to the model's
#: max_position_embeddings) besides the export's own: the packer sizes its output with Python
#: integers, so a SavedModel answers only the lengths traced at export. Each costs one small
#: packing graph per input structure (1-2 segments x ragged rank 1-2).
PACK_SEQ_LENGTHS = (16, 32, 64, 128, 256, 384, 512)
# Pairs are truncated as the reference tokenizer does (longest first), so bert_pack_inputs
# gives the ids of the checkpoint's own tokenizer and of the end-to-end export. Model Garden's
# BertPackInputs defaults to round-robin; the Common API does not fix the rule.
_TRUNCATION = "longest_first"
_TEXT_SPEC = tf.TensorSpec([None], tf.string, name=contract.TEXT)


class TfHubPreprocessor(TfHubReusableModule):
    """An in-graph tokenizer as TF Hub's text preprocessor: callable root, ``tokenize``,
    ``tokenize.get_special_tokens_dict``, ``bert_pack_inputs``.

    ``seq_length`` is the fixed width of ``preprocessor(text)`` and the default of
    ``bert_pack_inputs``. REUSABLE attributes are present and empty (nothing to train).

    Example::

        module = TfHubPreprocessor(tokenizer=tokenizer, seq_length=128, max_seq_length=512)
        module.trace()
        tf.saved_model.save(module, path)
    """

    def __init__(self, *, tokenizer: Any, seq_length: int, max_seq_length: int) -> None:
        super().__init__(name="tfhub_preprocessor")
        self.tokenizer = tokenizer
        self.seq_length = int(seq_length)
        self.tokenize = _Tokenize(tokenizer=tokenizer)
        lengths = sorted({self.seq_length, *(n for n in PACK_SEQ_LENGTHS if n <= max_seq_length)})
        self.bert_pack_inputs = _BertPackInputs(
            tokenizer=tokenizer, seq_length=self.seq_length, traced_lengths=lengths
        )
        setattr(self, contract.ATTR_VOCAB_FILE, tf.saved_model.Asset(tokenizer.vocab_file))
        setattr(
            self,
            contract.ATTR_DO_LOWER_CASE,
            tf.Variable(bool(tokenizer.do_lower_case), trainable=False, dtype=tf.bool),
        )
        self.set_reusable_weights(trainable=[])

    @tf.function(autograph=False, input_signature=[_TEXT_SPEC])
    def __call__(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        # An instance attribute __call__ is saved (and makes the loaded object callable) but
        # Python calls only a class's __call__, hence the explicit attribute here.
        return self.bert_pack_inputs.__call__([self.tokenize(text)])

    def trace(self) -> None:
        """Trace every concrete function the SavedModel must hold (before saving)."""
        self.tokenize.get_special_tokens_dict.get_concrete_function()
        self.bert_pack_inputs.trace()


class _Tokenize(tf.Module):
    """``preprocessor.tokenize``: [batch] strings -> RaggedTensor int32 [batch, (tokens)]."""

    def __init__(self, *, tokenizer: Any) -> None:
        super().__init__(name="tokenize")
        self._tokenizer = tokenizer
        special = {key: int(value) for key, value in tokenizer.special_tokens_dict().items()}
        missing = {
            contract.VOCAB_SIZE,
            contract.PADDING_ID,
            contract.START_OF_SEQUENCE_ID,
            contract.END_OF_SEGMENT_ID,
            contract.MASK_ID,
        } - set(special)
        if missing:
            raise ValueError(f"the tokenizer's special_tokens_dict lacks {sorted(missing)}")
        self._special = special

    @tf.function(autograph=False, input_signature=[_TEXT_SPEC])
    def __call__(self, text: tf.Tensor) -> tf.RaggedTensor:
        return self._tokenizer.tokenize(text)

    @tf.function(autograph=False, input_signature=[])
    def get_special_tokens_dict(self) -> dict[str, tf.Tensor]:
        return {key: tf.constant(value, tf.int32) for key, value in self._special.items()}


class _BertPackInputs(tf.Module):
    """``preprocessor.bert_pack_inputs(segments, seq_length=...)``: 1-2 ragged segments (rank 1
    ``[batch, (tokens)]`` or rank 2 ``[batch, (words), (tokens)]``) -> int32 [batch, seq_length]
    encoder inputs, truncated longest-first like the reference tokenizer."""

    def __init__(self, *, tokenizer: Any, seq_length: int, traced_lengths: Sequence[int]) -> None:
        super().__init__(name="bert_pack_inputs")
        self._tokenizer = tokenizer
        self._traced_lengths = tuple(traced_lengths)
        default = int(seq_length)

        # The default must be bound when the function is defined (it is part of the saved
        # function's signature), hence a closure rather than a method.
        @tf.function(autograph=False)
        def call(
            inputs: Sequence[tf.RaggedTensor], seq_length: int = default
        ) -> dict[str, tf.Tensor]:
            packed = self._tokenizer.pack_inputs(
                list(inputs), seq_length=seq_length, truncation=_TRUNCATION
            )
            # Fixed widths are part of the API: Keras and tf.data see [batch, seq_length].
            return {
                name: tf.ensure_shape(tensor, [None, seq_length]) for name, tensor in packed.items()
            }

        self.__call__ = call

    def trace(self) -> None:
        for seq_length in self._traced_lengths:
            for ragged_rank in (1, 2):
                for segments in (1, 2):
                    spec = tf.RaggedTensorSpec(
                        [None] * (ragged_rank + 1), tf.int32, ragged_rank=ragged_rank
                    )
                    self.__call__.get_concrete_function([spec] * segments, seq_length=seq_length)


def check_preprocessor_parity(
    loaded: Any,
    model_dir: str | os.PathLike[str] | Path,
    *,
    texts: Sequence[str],
    pairs: tuple[Sequence[str], Sequence[str]],
    seq_length: int,
) -> int:
    """``loaded(text)`` and ``loaded.bert_pack_inputs`` on pairs against the Hugging Face
    tokenizer (truncating to ``seq_length``), id for id; returns the number of rows checked.

    Raises :class:`models.errors.VerificationError` naming the first differing text.
    """
    import transformers

    from models.errors import VerificationError

    reference = transformers.AutoTokenizer.from_pretrained(os.fspath(model_dir))
    checked = 0
    for start in range(0, len(texts), 64):
        batch = list(texts[start : start + 64])
        ours = loaded(tf.constant(batch))
        theirs = reference(
            batch, truncation=True, max_length=seq_length, padding="max_length", return_tensors="np"
        )
        _compare(ours, theirs, batch, VerificationError)
        checked += len(batch)
    firsts, seconds = pairs
    for start in range(0, len(firsts), 64):
        a, b = list(firsts[start : start + 64]), list(seconds[start : start + 64])
        ours = loaded.bert_pack_inputs(
            [loaded.tokenize(tf.constant(a)), loaded.tokenize(tf.constant(b))],
            seq_length=seq_length,
        )
        theirs = reference(
            a,
            b,
            truncation=True,
            max_length=seq_length,
            padding="max_length",
            return_tensors="np",
        )
        _compare(
            ours, theirs, [f"{x} || {y}" for x, y in zip(a, b, strict=True)], VerificationError
        )
        checked += len(a)
    return checked


def _compare(ours: Any, theirs: Any, texts: Sequence[str], error: type[Exception]) -> None:
    import numpy as np

    for name, key in (
        (contract.INPUT_WORD_IDS, "input_ids"),
        (contract.INPUT_MASK, "attention_mask"),
        (contract.INPUT_TYPE_IDS, "token_type_ids"),
    ):
        got = ours[name].numpy()
        expected = theirs[key] if key in theirs else np.zeros_like(got)
        bad = np.flatnonzero((got != expected).any(axis=1))
        if bad.size:
            raise error(f"{name} differs from the reference tokenizer on {texts[bad[0]]!r}")
