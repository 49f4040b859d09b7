"""BertForSequenceClassification's head: a dense layer on the pooled output."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from models import contract


@keras.saving.register_keras_serializable(package="textserve")
class ClassificationHead(keras.layers.Layer):
    """``pooled_output`` -> ``logits`` and ``probabilities``.

    Probabilities are a softmax over the labels, or an independent sigmoid per label when the
    checkpoint's ``problem_type`` is ``multi_label_classification`` (``multi_label=True``).

    Example::

        head = ClassificationHead(num_labels=3, hidden_size=768)
        outputs = head(encoder_outputs["pooled_output"])  # {"logits": ..., "probabilities": ...}
    """

    def __init__(
        self, *, num_labels: int, hidden_size: int, multi_label: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.num_labels = num_labels
        self.hidden_size = hidden_size
        self.multi_label = multi_label
        self.classifier = keras.layers.Dense(num_labels, name="classifier")

    def build(self, input_shape: Any = None) -> None:
        self.classifier.build((None, self.hidden_size))
        self.built = True

    def call(self, pooled_output: Any) -> dict[str, Any]:
        logits = self.classifier(pooled_output)
        probabilities = ops.sigmoid(logits) if self.multi_label else ops.softmax(logits, axis=-1)
        return {contract.LOGITS: logits, contract.PROBABILITIES: probabilities}

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
        config.update(
            num_labels=self.num_labels, hidden_size=self.hidden_size, multi_label=self.multi_label
        )
        return config
