"""A Keras 3 BERT encoder (post-LN transformer), numerically equal to transformers' BertModel.

Written here rather than taken from transformers' TF classes (removed in transformers 5) or
keras-hub / tf-keras, so the exported graph holds only TF core ops and the weights map one to
one onto Hugging Face checkpoint keys (see :meth:`BertEncoder.checkpoint_variables`).
Inference only: there are no dropout layers, because nothing here trains.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from models import contract
from models.layers.transformer_layer import TransformerLayer

_FLOAT32_MIN = float(np.finfo(np.float32).min)


@keras.saving.register_keras_serializable(package="textserve")
class BertEncoder(keras.Model):
    """BERT encoder: embeddings + N post-LN transformer layers + optional pooler.

    Inputs are a dict with ``input_word_ids``, ``input_mask`` and ``input_type_ids`` (int32
    ``[batch, seq]``, the TF Hub encoder contract); outputs a dict with ``sequence_output``
    ``[batch, seq, hidden]``, ``pooled_output`` ``[batch, hidden]`` and ``encoder_outputs``
    (a list of each layer's output). Without a pooler (``use_pooler=False``, e.g. a
    BertForMaskedLM checkpoint has none) ``pooled_output`` is the [CLS] hidden state.

    Example::

        encoder = BertEncoder(vocab_size=30522, hidden_size=384, num_layers=6, num_heads=12,
                              intermediate_size=1536)
        outputs = encoder({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types})
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        hidden_size: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        layer_norm_epsilon: float = 1e-12,
        use_pooler: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_epsilon = layer_norm_epsilon
        self.use_pooler = use_pooler
        self.word_embeddings = keras.layers.Embedding(
            vocab_size, hidden_size, name="word_embeddings"
        )
        self.position_embeddings = keras.layers.Embedding(
            max_position_embeddings, hidden_size, name="position_embeddings"
        )
        self.token_type_embeddings = keras.layers.Embedding(
            type_vocab_size, hidden_size, name="token_type_embeddings"
        )
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, name="embeddings_layer_norm"
        )
        self.transformer_layers = [
            TransformerLayer(
                hidden_size=hidden_size,
                num_heads=num_heads,
                intermediate_size=intermediate_size,
                hidden_act=hidden_act,
                layer_norm_epsilon=layer_norm_epsilon,
                name=f"transformer_layer_{i}",
            )
            for i in range(num_layers)
        ]
        self.pooler = (
            keras.layers.Dense(hidden_size, activation="tanh", name="pooler")
            if use_pooler
            else None
        )

    def build(self, input_shape: Any = None) -> None:
        self.word_embeddings.build((None, None))
        self.position_embeddings.build((None, None))
        self.token_type_embeddings.build((None, None))
        self.embeddings_layer_norm.build((None, None, self.hidden_size))
        for layer in self.transformer_layers:
            layer.build((None, None, self.hidden_size))
        if self.pooler is not None:
            self.pooler.build((None, self.hidden_size))
        self.built = True

    def call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        word_ids = ops.cast(inputs[contract.INPUT_WORD_IDS], "int32")
        mask = inputs[contract.INPUT_MASK]
        type_ids = ops.cast(inputs[contract.INPUT_TYPE_IDS], "int32")
        seq = ops.shape(word_ids)[1]
        positions = ops.expand_dims(ops.arange(seq, dtype="int32"), 0)
        hidden = (
            self.word_embeddings(word_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(type_ids)
        )
        hidden = self.embeddings_layer_norm(hidden)
        # Additive mask as in transformers: padded keys get the most negative float32, so their
        # softmax weight is exactly 0.
        keep = ops.cast(mask, "float32")[:, None, None, :]
        attention_bias = (1.0 - keep) * _FLOAT32_MIN
        layer_outputs = []
        for layer in self.transformer_layers:
            hidden = layer(hidden, attention_bias)
            layer_outputs.append(hidden)
        cls_state = hidden[:, 0, :]
        pooled = self.pooler(cls_state) if self.pooler is not None else cls_state
        return {
            contract.SEQUENCE_OUTPUT: hidden,
            contract.POOLED_OUTPUT: pooled,
            contract.ENCODER_OUTPUTS: layer_outputs,
        }

    def checkpoint_variables(self) -> dict[str, tuple[keras.Variable, bool]]:
        """Canonical Hugging Face key (without ``bert.``) -> (variable, transpose?).

        Dense kernels are transposed because torch's Linear stores ``[out, in]``.
        """
        if not self.built:
            self.build()
        mapping: dict[str, tuple[keras.Variable, bool]] = {
            "embeddings.word_embeddings.weight": (self.word_embeddings.embeddings, False),
            "embeddings.position_embeddings.weight": (self.position_embeddings.embeddings, False),
            "embeddings.token_type_embeddings.weight": (
                self.token_type_embeddings.embeddings,
                False,
            ),
            "embeddings.LayerNorm.weight": (self.embeddings_layer_norm.gamma, False),
            "embeddings.LayerNorm.bias": (self.embeddings_layer_norm.beta, False),
        }
        for i, layer in enumerate(self.transformer_layers):
            prefix = f"encoder.layer.{i}."
            dense_layers = {
                "attention.self.query": layer.query,
                "attention.self.key": layer.key,
                "attention.self.value": layer.value,
                "attention.output.dense": layer.attention_output,
                "intermediate.dense": layer.intermediate,
                "output.dense": layer.output_dense,
            }
            for name, dense in dense_layers.items():
                mapping[f"{prefix}{name}.weight"] = (dense.kernel, True)
                mapping[f"{prefix}{name}.bias"] = (dense.bias, False)
            for name, norm in (
                ("attention.output.LayerNorm", layer.attention_layer_norm),
                ("output.LayerNorm", layer.output_layer_norm),
            ):
                mapping[f"{prefix}{name}.weight"] = (norm.gamma, False)
                mapping[f"{prefix}{name}.bias"] = (norm.beta, False)
        if self.pooler is not None:
            mapping["pooler.dense.weight"] = (self.pooler.kernel, True)
            mapping["pooler.dense.bias"] = (self.pooler.bias, False)
        return mapping

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            layer_norm_epsilon=self.layer_norm_epsilon,
            use_pooler=self.use_pooler,
        )
        return config
