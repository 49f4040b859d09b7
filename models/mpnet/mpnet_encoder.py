"""A Keras 3 MPNet encoder, numerically equal to transformers' MPNetModel."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from models.bert.bert_encoder import BertEncoder

#: TransformerLayer sublayers -> MPNetLayer module names.
MPNET_LAYER_KEYS = {
    "query": "attention.attn.q",
    "key": "attention.attn.k",
    "value": "attention.attn.v",
    "attention_output": "attention.attn.o",
    "attention_layer_norm": "attention.LayerNorm",
    "intermediate": "intermediate.dense",
    "output_dense": "output.dense",
    "output_layer_norm": "output.LayerNorm",
}
# transformers' MPNetEncoder.compute_position_bias buckets with these whatever the config says.
_BUCKETS = 32
_MAX_DISTANCE = 128
_PADDING_ID = 1


def relative_position_buckets(relative_position: np.ndarray) -> np.ndarray:
    """transformers' ``MPNetEncoder.relative_position_bucket``, in float32 as torch computes it.

    Evaluated once per possible offset at construction (not in the graph): a float32 ``log``
    sits within an ulp of an integer at some offsets, where another log implementation could
    truncate to the neighbouring bucket.
    """
    n = -relative_position.astype(np.int64)
    half = _BUCKETS // 2
    buckets = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    scaled = (
        np.log(np.maximum(n, 1).astype(np.float32) / np.float32(max_exact))
        / np.float32(math.log(_MAX_DISTANCE / max_exact))
        * np.float32(half - max_exact)
    )
    large = np.minimum(max_exact + scaled.astype(np.int64), half - 1)
    return buckets + np.where(n < max_exact, n, large)


@keras.saving.register_keras_serializable(package="textserve")
class MPNetEncoder(BertEncoder):
    """BERT's post-LN layers + a relative position bias shared by every layer's attention.

    The bias (``encoder.relative_attention_bias``, one value per bucket and head) is added to
    the padding mask, the one additive ``attention_bias`` every TransformerLayer takes.
    Positions are numbered RoBERTa's way from padding index 1; there are no segment embeddings
    (``input_type_ids`` are ignored).

    Example::

        encoder = MPNetEncoder(vocab_size=30527, max_position_embeddings=514)
    """

    LAYER_KEYS: ClassVar[dict[str, str]] = MPNET_LAYER_KEYS

    def __init__(
        self,
        *,
        relative_attention_num_buckets: int = 32,
        type_vocab_size: int = 0,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("position_padding_id", None)  # always 1 (get_config returns it)
        super().__init__(type_vocab_size=type_vocab_size, position_padding_id=_PADDING_ID, **kwargs)
        self.relative_attention_num_buckets = relative_attention_num_buckets
        self.relative_attention_bias = keras.layers.Embedding(
            relative_attention_num_buckets, self.num_heads, name="relative_attention_bias"
        )
        reach = self.max_position_embeddings
        # Bucket of every offset key - query in [-reach, reach], indexed by offset + reach.
        self._bucket_table = relative_position_buckets(np.arange(-reach, reach + 1)).astype(
            np.int32
        )

    def build(self, input_shape: Any = None) -> None:
        self.relative_attention_bias.build((None, None))
        super().build(input_shape)

    def _attention_bias(self, mask: Any, seq: Any) -> Any:
        positions = ops.arange(seq, dtype="int32")
        offsets = positions[None, :] - positions[:, None] + self.max_position_embeddings
        buckets = ops.take(ops.convert_to_tensor(self._bucket_table), offsets)
        bias = ops.transpose(self.relative_attention_bias(buckets), (2, 0, 1))[None]
        return bias + super()._attention_bias(mask, seq)

    def checkpoint_variables(self) -> dict[str, tuple[keras.Variable, bool]]:
        mapping = super().checkpoint_variables()
        mapping["encoder.relative_attention_bias.weight"] = (
            self.relative_attention_bias.embeddings,
            False,
        )
        return mapping

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(relative_attention_num_buckets=self.relative_attention_num_buckets)
        return config
