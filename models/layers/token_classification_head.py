"""BertForTokenClassification's head: a dense layer on every token's hidden state."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from models import contract


@keras.saving.register_keras_serializable(package="textserve")
class TokenClassificationHead(keras.layers.Layer):
    """``sequence_output`` ``[batch, seq, hidden]`` -> per-token ``token_logits`` and
    ``token_probabilities`` ``[batch, seq, num_labels]`` (softmax over the labels, as
    transformers' token-classification pipeline scores them).

    Example::

        head = TokenClassificationHead(num_labels=9, hidden_size=768)
        outputs = head(encoder_outputs["sequence_output"])
    """

    def __init__(self, *, num_labels: int, hidden_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.num_labels = num_labels
        self.hidden_size = hidden_size
        self.classifier = keras.layers.Dense(num_labels, name="classifier")

    def build(self, input_shape: Any = None) -> None:
        self.classifier.build((None, None, self.hidden_size))
        self.built = True

    def call(self, sequence_output: Any) -> dict[str, Any]:
        logits = self.classifier(sequence_output)
        return {
            contract.TOKEN_LOGITS: logits,
            contract.TOKEN_PROBABILITIES: ops.softmax(logits, axis=-1),
        }

    def checkpoint_variables(self) -> dict[str, tuple[keras.Variable, bool]]:
        """Canonical Hugging Face key -> (variable, transpose?)."""
        if not self.built:
            self.build()
        return {
            "classifier.weight": (self.classifier.kernel, True),
            "classifier.bias": (self.classifier.bias, False),
        }

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(num_labels=self.num_labels, hidden_size=self.hidden_size)
        return config
