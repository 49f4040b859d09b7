"""The sequence-classification heads of the BERT family: one or two dense layers on one vector."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from models import contract
from models.layers.transformer_layer import activation_fn


@keras.saving.register_keras_serializable(package="textserve")
class ClassificationHead(keras.layers.Layer):
    """``pooled_output`` -> ``logits`` and ``probabilities``.

    BERT and ALBERT classify the pooler's output with one dense layer (``classifier``). With
    ``inner_activation`` the head first applies ``dense`` (hidden -> hidden) and that activation,
    then ``out_proj``: RoBERTa, XLM-R and MPNet (``tanh``), ELECTRA (``gelu``) and DistilBERT
    (``relu``, named ``pre_classifier``/``classifier`` there) on the first token's state, which
    is ``pooled_output`` for their encoders (they have no pooler).

    Probabilities are a softmax over the labels, or an independent sigmoid per label when the
    checkpoint's ``problem_type`` is ``multi_label_classification`` (``multi_label=True``).

    Example::

        head = ClassificationHead(num_labels=3, hidden_size=768)
        outputs = head(encoder_outputs["pooled_output"])  # {"logits": ..., "probabilities": ...}
    """

    def __init__(
        self,
        *,
        num_labels: int,
        hidden_size: int,
        multi_label: bool = False,
        inner_activation: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_labels = num_labels
        self.hidden_size = hidden_size
        self.multi_label = multi_label
        self.inner_activation = inner_activation
        self.dense = (
            keras.layers.Dense(hidden_size, name="dense") if inner_activation is not None else None
        )
        self._act = activation_fn(inner_activation) if inner_activation is not None else None
        self.classifier = keras.layers.Dense(num_labels, name="classifier")

    def build(self, input_shape: Any = None) -> None:
        if self.dense is not None:
            self.dense.build((None, self.hidden_size))
        self.classifier.build((None, self.hidden_size))
        self.built = True

    def call(self, pooled_output: Any) -> dict[str, Any]:
        hidden = pooled_output
        if self.dense is not None and self._act is not None:
            hidden = self._act(self.dense(hidden))
        logits = self.classifier(hidden)
        probabilities = ops.sigmoid(logits) if self.multi_label else ops.softmax(logits, axis=-1)
        return {contract.LOGITS: logits, contract.PROBABILITIES: probabilities}

    def checkpoint_variables(self) -> dict[str, tuple[keras.Variable, bool]]:
        """Hugging Face key -> (variable, transpose?): BERT's ``classifier``, or with
        ``inner_activation`` RoBERTa's ``classifier.dense``/``classifier.out_proj``."""
        if not self.built:
            self.build()
        if self.dense is None:
            return {
                "classifier.weight": (self.classifier.kernel, True),
                "classifier.bias": (self.classifier.bias, False),
            }
        return {
            "classifier.dense.weight": (self.dense.kernel, True),
            "classifier.dense.bias": (self.dense.bias, False),
            "classifier.out_proj.weight": (self.classifier.kernel, True),
            "classifier.out_proj.bias": (self.classifier.bias, False),
        }

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_labels=self.num_labels,
            hidden_size=self.hidden_size,
            multi_label=self.multi_label,
            inner_activation=self.inner_activation,
        )
        return config
