"""The fill-mask heads of the BERT family: transform, then a decoder over the vocabulary."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from models.layers.transformer_layer import activation_fn


@keras.saving.register_keras_serializable(package="textserve")
class MaskedLMHead(keras.layers.Layer):
    """Hidden states at masked positions ``[batch, P, hidden]`` -> logits ``[batch, P, vocab]``.

    ``dense -> hidden_act -> LayerNorm -> decoder + bias``. The decoder is tied to the word
    embeddings (BERT's default; checkpoints then omit ``cls.predictions.decoder.weight``) when
    ``token_embedding`` (the encoder's ``keras.layers.Embedding``) is given; otherwise the head
    owns a decoder kernel. Like keras-hub's ``MaskedLMHead``, the tied layer is a live reference
    and is not part of ``get_config()``: whoever rebuilds the model passes it again.

    RoBERTa/XLM-R/MPNet's ``lm_head``, DistilBERT's ``vocab_*`` and ALBERT's ``predictions``
    have the same shape (keys renamed by the family); ALBERT's and the ELECTRA generator's
    transform narrows to ``embedding_size``, the width of their (tied) embedding table.

    Example::

        head = MaskedLMHead(vocab_size=30522, hidden_size=768,
                            token_embedding=encoder.word_embeddings)
        logits = head(gathered_hidden_states)
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        hidden_size: int,
        hidden_act: str = "gelu",
        layer_norm_epsilon: float = 1e-12,
        token_embedding: keras.layers.Embedding | None = None,
        embedding_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.embedding_size = embedding_size
        width = embedding_size or hidden_size
        self.hidden_act = hidden_act
        self.layer_norm_epsilon = layer_norm_epsilon
        self.token_embedding = token_embedding
        self._act = activation_fn(hidden_act)
        self.transform = keras.layers.Dense(width, name="transform")
        self.transform_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="transform_layer_norm"
        )

    def build(self, input_shape: Any = None) -> None:
        width = self.embedding_size or self.hidden_size
        self.transform.build((None, None, self.hidden_size))
        self.transform_layer_norm.build((None, None, width))
        self.decoder_kernel = (
            None
            if self.token_embedding is not None
            else self.add_weight(shape=(self.vocab_size, width), name="decoder_kernel")
        )
        self.decoder_bias = self.add_weight(
            shape=(self.vocab_size,), initializer="zeros", name="decoder_bias"
        )
        self.built = True

    def call(self, hidden: Any) -> Any:
        hidden = self.transform_layer_norm(self._act(self.transform(hidden)))
        kernel = (
            self.token_embedding.embeddings
            if self.token_embedding is not None
            else self.decoder_kernel
        )
        return ops.matmul(hidden, ops.transpose(kernel)) + self.decoder_bias

    def checkpoint_variables(self) -> dict[str, tuple[keras.Variable, bool]]:
        """Canonical Hugging Face key -> (variable, transpose?); the tied decoder is not listed."""
        if not self.built:
            self.build()
        mapping = {
            "cls.predictions.transform.dense.weight": (self.transform.kernel, True),
            "cls.predictions.transform.dense.bias": (self.transform.bias, False),
            "cls.predictions.transform.LayerNorm.weight": (self.transform_layer_norm.gamma, False),
            "cls.predictions.transform.LayerNorm.bias": (self.transform_layer_norm.beta, False),
            "cls.predictions.bias": (self.decoder_bias, False),
        }
        if self.decoder_kernel is not None:
            mapping["cls.predictions.decoder.weight"] = (self.decoder_kernel, False)
        return mapping

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            hidden_act=self.hidden_act,
            layer_norm_epsilon=self.layer_norm_epsilon,
            embedding_size=self.embedding_size,
        )
        return config
