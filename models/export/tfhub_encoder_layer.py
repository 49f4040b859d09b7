"""A Keras 3 layer that runs a TF Hub text encoder SavedModel, with its weights trainable."""

from __future__ import annotations

import os
import re
from typing import Any

import keras
import tensorflow as tf

from models import contract


@keras.saving.register_keras_serializable(package="textserve")
class TfHubEncoderLayer(keras.layers.Layer):
    """``encoder_inputs`` dict -> the encoder's outputs, for fine-tuning in Keras 3.

    Loads a SavedModel that follows TF Hub's text encoder API (``textserve-export
    --export-type encoder``, or Model Garden's) and tracks the variables its callable root
    reads as this layer's weights, so ``fit`` updates the encoder itself (``trainable=False``
    freezes it). ``training`` is passed on to the SavedModel.

    ``hub.KerasLayer`` does not compose with Keras 3 models, and Keras 3's own ``TFSMLayer``
    names its weights after the tf.Variables (``...:0``), which optimizers refuse as scope
    names, and never passes ``training``; hence this layer.

    Example::

        encoder = TfHubEncoderLayer(filepath="exported/encoder/1")
        inputs = {name: keras.Input([None], dtype="int32", name=name)
                  for name in ("input_word_ids", "input_mask", "input_type_ids")}
        pooled = encoder(inputs)["pooled_output"]
        model = keras.Model(inputs, keras.layers.Dense(2)(pooled))
    """

    def __init__(self, *, filepath: str | os.PathLike[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filepath = os.fspath(filepath)
        self._loaded = tf.saved_model.load(self.filepath)
        used = _variables_read_by(self._loaded.__call__)
        declared = {id(v) for v in getattr(self._loaded, contract.ATTR_TRAINABLE_VARIABLES)}
        for variable in used:
            # Keras wraps the SavedModel's own tf.Variable (no copy): what the optimizer
            # updates is what the loaded functions read.
            weight = keras.Variable(
                initializer=variable,
                trainable=id(variable) in declared,
                dtype=variable.dtype,
                shape=variable.shape,
                name=re.sub(r"[^A-Za-z0-9_.-]", "_", variable.name.removesuffix(":0")),
            )
            self._track_variable(weight)
        self.built = True

    @property
    def saved_model(self) -> Any:
        """The loaded SavedModel; its ``variables`` are this layer's weights (same objects)."""
        return self._loaded

    def call(self, inputs: dict[str, Any], training: bool = False) -> dict[str, Any]:
        return dict(self._loaded(inputs, training=bool(training)))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(filepath=self.filepath)
        return config


def _variables_read_by(function: Any) -> list[tf.Variable]:
    """The variables the restored function's traces read, in first-use order, each once."""
    seen: dict[int, tf.Variable] = {}
    for concrete in function.concrete_functions:
        for variable in concrete.variables:
            seen.setdefault(id(variable), variable)
    return list(seen.values())
