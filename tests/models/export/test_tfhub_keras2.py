"""``hub.load`` and ``hub.KerasLayer`` (tensorflow-hub under tf-keras, the Keras 2 path) on our
TF Hub encoder export (the end-to-end export's are in test_tfhub_finetune.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)
import tf_keras

from models import contract
from tests.support.tfhub import import_tensorflow_hub
from tests.support.tfhub_exports import tfhub_export

hub = import_tensorflow_hub()
INPUT_NAMES = (contract.INPUT_WORD_IDS, contract.INPUT_MASK, contract.INPUT_TYPE_IDS)


@pytest.fixture(scope="module")
def encoder_path(
    tiny_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> str:
    root = tmp_path_factory.getbasetemp()
    export = tfhub_export(
        checkpoint=tiny_checkpoint("base"), export_type=contract.EXPORT_ENCODER, root=root
    )
    return str(export)


def _batch() -> dict[str, np.ndarray]:
    ids = np.array([[101, 7592, 2088, 102, 0], [101, 2023, 102, 0, 0]], np.int32)
    return {
        contract.INPUT_WORD_IDS: ids,
        contract.INPUT_MASK: (ids > 0).astype(np.int32),
        contract.INPUT_TYPE_IDS: np.zeros_like(ids),
    }


def test_hub_keras_layer_fine_tunes_the_encoder(encoder_path: str) -> None:
    path = encoder_path
    direct = hub.load(path)(_batch())[contract.POOLED_OUTPUT].numpy()
    layer = hub.KerasLayer(path, trainable=True)
    inputs = {name: tf_keras.Input([None], dtype=tf.int32, name=name) for name in INPUT_NAMES}
    pooled = layer(inputs)[contract.POOLED_OUTPUT]
    model = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(pooled))
    encoder_only = tf_keras.Model(inputs, pooled)
    np.testing.assert_allclose(encoder_only.predict(_batch(), verbose=0), direct, atol=1e-6)
    # trainable=True exposes every variable the SavedModel lists as trainable.
    assert len(layer.trainable_weights) == len(hub.load(path).trainable_variables) > 0
    model.compile(
        optimizer=tf_keras.optimizers.Adam(1e-2),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = [w.numpy().copy() for w in layer.trainable_weights]
    model.fit(_batch(), np.array([0, 1]), epochs=2, verbose=0)
    changed = [
        not np.array_equal(b, w.numpy())
        for b, w in zip(before, layer.trainable_weights, strict=True)
    ]
    # Everything the pooled output depends on moves (all weights of this encoder).
    assert all(changed)
    assert not np.allclose(encoder_only.predict(_batch(), verbose=0), direct, atol=1e-6)


def test_hub_keras_layer_frozen_has_no_trainable_weights(encoder_path: str) -> None:
    layer = hub.KerasLayer(encoder_path, trainable=False)
    inputs = {name: tf_keras.Input([None], dtype=tf.int32, name=name) for name in INPUT_NAMES}
    layer(inputs)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) > 0
