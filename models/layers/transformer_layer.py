"""The post-LN transformer block shared by every BERT-family encoder (BERT, RoBERTa, ELECTRA, ...).

Numerically equal to transformers' ``BertLayer``: self-attention + residual + LayerNorm, then
FFN + residual + LayerNorm. The attention bias is additive (``[batch, 1|heads, 1|q, k]``), so a
family's relative position bias (MPNet) or padding mask is one tensor added before the softmax.
Inference only: there are no dropout layers.

The layer works on the batch's real tokens only (``[tokens, hidden]``, see
:mod:`models.layers.token_packing`): the projections and the FFN are 2-D matmuls over the real
tokens, which TensorFlow's oneDNN remapper fuses with their bias add and GELU; only attention,
which mixes the tokens of one text, runs on the ``[batch, heads, seq, seq]`` padded layout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
from keras import ops

from models.layers.layer_norm import LayerNorm
from models.layers.token_packing import TokenPacking


def activation_fn(name: str) -> Callable[[Any], Any]:
    """The activation Hugging Face means by ``hidden_act`` (``gelu`` is the exact erf form)."""
    if name == "gelu":
        return lambda x: ops.gelu(x, approximate=False)
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda x: ops.gelu(x, approximate=True)
    if name == "relu":
        return ops.relu
    if name == "tanh":
        # Not a hidden_act of any family; the RoBERTa/MPNet classification heads use it.
        return ops.tanh
    raise ValueError(f"unsupported activation {name!r}")


@keras.saving.register_keras_serializable(package="textserve")
class TransformerLayer(keras.layers.Layer):
    """One post-LN block: self-attention + residual + LN, FFN + residual + LN."""

    def __init__(
        self,
        *,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        hidden_act: str,
        layer_norm_epsilon: float,
        matmul_dtype: str = "float32",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.layer_norm_epsilon = layer_norm_epsilon
        # precision: the Keras dtype policy of the projections and FFN ("bfloat16": weights and
        # matmuls in bf16); attention's matmuls follow it, the rest stays float32.
        self.matmul_dtype = matmul_dtype
        self.head_size = hidden_size // num_heads
        self._act = activation_fn(hidden_act)
        self.query = keras.layers.Dense(hidden_size, name="query", dtype=matmul_dtype)
        self.key = keras.layers.Dense(hidden_size, name="key", dtype=matmul_dtype)
        self.value = keras.layers.Dense(hidden_size, name="value", dtype=matmul_dtype)
        self.attention_output = keras.layers.Dense(
            hidden_size, name="attention_output", dtype=matmul_dtype
        )
        self.attention_layer_norm = LayerNorm(
            epsilon=layer_norm_epsilon, name="attention_layer_norm"
        )
        self.intermediate = keras.layers.Dense(
            intermediate_size, name="intermediate", dtype=matmul_dtype
        )
        self.output_dense = keras.layers.Dense(hidden_size, name="output_dense", dtype=matmul_dtype)
        self.output_layer_norm = LayerNorm(epsilon=layer_norm_epsilon, name="output_layer_norm")

    def build(self, input_shape: Any) -> None:
        hidden_shape = (None, self.hidden_size)
        for dense in (self.query, self.key, self.value, self.attention_output, self.intermediate):
            dense.build(hidden_shape)
        self.output_dense.build((None, self.intermediate_size))
        self.attention_layer_norm.build(hidden_shape)
        self.output_layer_norm.build(hidden_shape)
        self.built = True

    def call(self, hidden: Any, attention_bias: Any, *, packing: TokenPacking) -> Any:
        """``hidden`` is ``[tokens, hidden]`` (packed); returns the same layout."""
        batch, seq = packing.batch_size, packing.seq_length

        def heads(dense: keras.layers.Dense) -> Any:
            # [tokens, hidden] -> [batch, heads, seq, head]; padded slots hold copies of a real
            # token: masked as keys, dropped as queries.
            projected = packing.unpack(dense(hidden), zeros_at_padding=False)
            split = ops.reshape(projected, (batch, seq, self.num_heads, self.head_size))
            return ops.transpose(split, (0, 2, 1, 3))

        q, k, v = heads(self.query), heads(self.key), heads(self.value)
        # precision: with bf16 projections the scores are cast up for the mask and softmax, and
        # the probabilities down for the context matmul (no-op casts in float32).
        scores = ops.cast(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))), "float32")
        probs = ops.softmax(scores * (1.0 / math.sqrt(self.head_size)) + attention_bias, axis=-1)
        context = ops.transpose(ops.matmul(ops.cast(probs, v.dtype), v), (0, 2, 1, 3))
        context = packing.pack(ops.reshape(context, (batch, seq, self.hidden_size)))
        hidden = self.attention_layer_norm(
            hidden + ops.cast(self.attention_output(context), "float32")
        )
        ffn = ops.cast(self.output_dense(self._act(self.intermediate(hidden))), "float32")
        return self.output_layer_norm(hidden + ffn)

    def checkpoint_variables(
        self, *, prefix: str, names: dict[str, str]
    ) -> dict[str, tuple[keras.Variable, bool]]:
        """Hugging Face key -> (variable, transpose?) for one layer.

        ``names`` maps this layer's sublayer attributes (``query``, ``attention_layer_norm``...)
        to the family's module names (BERT: ``attention.self.query``...); every family spells
        the same block differently. Dense kernels are transposed (torch stores ``[out, in]``).
        """
        if not self.built:
            self.build((None, self.hidden_size))
        mapping: dict[str, tuple[keras.Variable, bool]] = {}
        for attribute, module in names.items():
            sublayer = getattr(self, attribute)
            if isinstance(sublayer, keras.layers.Dense):
                mapping[f"{prefix}{module}.weight"] = (sublayer.kernel, True)
                mapping[f"{prefix}{module}.bias"] = (sublayer.bias, False)
            else:
                mapping[f"{prefix}{module}.weight"] = (sublayer.gamma, False)
                mapping[f"{prefix}{module}.bias"] = (sublayer.beta, False)
        return mapping

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            layer_norm_epsilon=self.layer_norm_epsilon,
            matmul_dtype=self.matmul_dtype,
        )
        return config
