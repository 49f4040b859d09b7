"""Sentence-transformers' Pooling (+ Normalize) as a Keras layer."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

POOLING_MODES = ("mean", "cls", "max")


@keras.saving.register_keras_serializable(package="textserve")
class SentenceEmbeddingHead(keras.layers.Layer):
    """Pools ``sequence_output`` to one vector per text, optionally L2-normalized.

    Mirrors sentence-transformers exactly: ``mean`` divides the masked sum by the token count
    clamped at 1e-9, ``max`` fills padding with -1e9 first, ``cls`` takes position 0, and
    Normalize divides by the L2 norm clamped at 1e-12 (torch's ``F.normalize``).

    Example::

        head = SentenceEmbeddingHead(pooling_mode="mean", normalize=True)
        embedding = head(outputs["sequence_output"], input_mask)
    """

    def __init__(self, *, pooling_mode: str = "mean", normalize: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if pooling_mode not in POOLING_MODES:
            raise ValueError(f"pooling_mode must be one of {POOLING_MODES}, not {pooling_mode!r}")
        self.pooling_mode = pooling_mode
        self.normalize = normalize

    def call(self, sequence_output: Any, input_mask: Any) -> Any:
        mask = ops.cast(input_mask, sequence_output.dtype)[:, :, None]
        if self.pooling_mode == "cls":
            pooled = sequence_output[:, 0, :]
        elif self.pooling_mode == "max":
            pooled = ops.max(ops.where(mask > 0, sequence_output, -1e9), axis=1)
        else:
            summed = ops.sum(sequence_output * mask, axis=1)
            pooled = summed / ops.maximum(ops.sum(mask, axis=1), 1e-9)
        if self.normalize:
            norm = ops.sqrt(ops.sum(ops.square(pooled), axis=-1, keepdims=True))
            pooled = pooled / ops.maximum(norm, 1e-12)
        return pooled

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(pooling_mode=self.pooling_mode, normalize=self.normalize)
        return config
