"""The TF Hub text encoder SavedModel (Common SavedModel API for text, "encoder" half).

What ``textserve-export --export-type encoder|encoder-with-mlm`` saves. The API it follows is
tensorflow.org/hub/common_saved_model_apis/text::

    encoder = tf.saved_model.load(path)          # or hub.load / hub.KerasLayer(path)
    outputs = encoder(encoder_inputs, training=False)
    outputs["pooled_output"]     # [batch, width]
    outputs["sequence_output"]   # [batch, seq_length, width]
    outputs["encoder_outputs"]   # list of num_layers tensors [batch, seq_length, width]
    outputs["default"]           # = pooled_output
    mlm = encoder.mlm(dict(encoder_inputs, masked_lm_positions=positions))
    mlm["mlm_logits"]            # [batch, num_positions, vocab_size] (+ the three above)
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf

from models import contract
from models.bert.bert_encoder import BertEncoder
from models.export.tfhub_reusable_module import TfHubReusableModule
from models.layers.masked_lm_head import MaskedLMHead

ENCODER_INPUT_SPECS = {
    name: tf.TensorSpec([None, None], tf.int32, name=name)
    for name in (contract.INPUT_WORD_IDS, contract.INPUT_MASK, contract.INPUT_TYPE_IDS)
}
MLM_INPUT_SPECS = {
    **ENCODER_INPUT_SPECS,
    contract.MASKED_LM_POSITIONS: tf.TensorSpec(
        [None, None], tf.int32, name=contract.MASKED_LM_POSITIONS
    ),
}


class TfHubEncoder(TfHubReusableModule):
    """A BERT encoder as TF Hub's text encoder: callable root, ``mlm``, REUSABLE attributes.

    ``training`` is accepted by every callable (both values are traced, as ``hub.KerasLayer``
    requires); the encoder has no dropout, so both compute the same function.
    Root attributes: ``vocab_file`` (asset) and ``do_lower_case`` as in Model Garden's exports;
    ``checkpoint_keys()`` names the Hugging Face key of each entry of ``variables``.

    Example::

        module = TfHubEncoder(encoder=encoder, mlm_head=None, vocab_file="vocab.txt",
                              do_lower_case=True)
        tf.saved_model.save(module, path)
    """

    def __init__(
        self,
        *,
        encoder: BertEncoder,
        mlm_head: MaskedLMHead | None,
        vocab_file: str | os.PathLike[str],
        do_lower_case: bool,
    ) -> None:
        super().__init__(name="tfhub_encoder")
        self.encoder = encoder
        setattr(self, contract.ATTR_VOCAB_FILE, tf.saved_model.Asset(os.fspath(vocab_file)))
        setattr(
            self,
            contract.ATTR_DO_LOWER_CASE,
            tf.Variable(bool(do_lower_case), trainable=False, dtype=tf.bool),
        )
        targets = dict(encoder.checkpoint_variables())
        if mlm_head is not None:
            targets.update(mlm_head.checkpoint_variables())
        # The tied decoder is the word embedding itself: one variable, listed once.
        self.set_reusable_weights(trainable=[variable for variable, _ in targets.values()])
        keys = tf.constant(list(targets), tf.string)
        transposed = tf.constant([transpose for _, transpose in targets.values()], tf.bool)
        setattr(
            self,
            contract.ATTR_CHECKPOINT_KEYS,
            tf.function(lambda: {"keys": keys, "transposed": transposed}, input_signature=[]),
        )
        if mlm_head is not None:
            self.mlm = _MaskedLM(encoder=self, mlm_head=mlm_head)

    def outputs(self, inputs: dict[str, tf.Tensor], *, training: bool) -> dict[str, Any]:
        """The encoder's four outputs (``encoder_outputs`` a list) for one input dict."""
        outputs = self.encoder(
            {name: inputs[name] for name in ENCODER_INPUT_SPECS}, training=training
        )
        return {
            contract.POOLED_OUTPUT: outputs[contract.POOLED_OUTPUT],
            contract.SEQUENCE_OUTPUT: outputs[contract.SEQUENCE_OUTPUT],
            contract.DEFAULT_OUTPUT: tf.identity(outputs[contract.POOLED_OUTPUT]),
            contract.ENCODER_OUTPUTS: list(outputs[contract.ENCODER_OUTPUTS]),
        }

    @tf.function(autograph=False)
    def __call__(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, Any]:
        return self.outputs(inputs, training=training)

    def trace(self) -> None:
        """Trace every concrete function the SavedModel must hold (before saving)."""
        for training in (False, True):
            self.__call__.get_concrete_function(ENCODER_INPUT_SPECS, training=training)
            if hasattr(self, "mlm"):
                self.mlm.__call__.get_concrete_function(MLM_INPUT_SPECS, training=training)


class _MaskedLM(tf.Module):
    """``encoder.mlm``: the encoder's outputs plus ``mlm_logits`` at ``masked_lm_positions``."""

    def __init__(self, *, encoder: TfHubEncoder, mlm_head: MaskedLMHead) -> None:
        super().__init__(name="mlm")
        self._encoder = encoder
        self.mlm_head = mlm_head

    @tf.function(autograph=False)
    def __call__(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, Any]:
        outputs = self._encoder.outputs(inputs, training=training)
        hidden = tf.gather(
            outputs[contract.SEQUENCE_OUTPUT], inputs[contract.MASKED_LM_POSITIONS], batch_dims=1
        )
        return {
            contract.POOLED_OUTPUT: outputs[contract.POOLED_OUTPUT],
            contract.SEQUENCE_OUTPUT: outputs[contract.SEQUENCE_OUTPUT],
            contract.ENCODER_OUTPUTS: outputs[contract.ENCODER_OUTPUTS],
            contract.MLM_LOGITS: self.mlm_head(hidden, training=training),
        }
