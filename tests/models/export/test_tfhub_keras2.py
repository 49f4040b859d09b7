"""``hub.load`` and ``hub.KerasLayer`` (tensorflow-hub under tf-keras, the Keras 2 path) on our
TF Hub encoder export and on the end-to-end export."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)
import tf_keras

from models import contract
from models.export.exporter import export_model
from tests.support.tfhub import import_tensorflow_hub

hub = import_tensorflow_hub()
INPUT_NAMES = (contract.INPUT_WORD_IDS, contract.INPUT_MASK, contract.INPUT_TYPE_IDS)
TEXTS = ["a tiny test", "another, longer sentence for the model", ""]


@pytest.fixture(scope="module")
def exports(
    tiny_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    checkpoint = tiny_checkpoint("base", seed=5)
    base = tmp_path_factory.mktemp("keras2")
    paths = {}
    for export_type in (contract.EXPORT_ENCODER, contract.EXPORT_END_TO_END):
        paths[export_type] = base / export_type / "1"
        # Parity is tested by the export tests; here the TF Hub mechanics are.
        export_model(
            checkpoint=checkpoint,
            output=paths[export_type],
            export_type=export_type,
            verify=False,
            progress=False,
        )
    return paths


def _batch() -> dict[str, np.ndarray]:
    ids = np.array([[101, 7592, 2088, 102, 0], [101, 2023, 102, 0, 0]], np.int32)
    return {
        contract.INPUT_WORD_IDS: ids,
        contract.INPUT_MASK: (ids > 0).astype(np.int32),
        contract.INPUT_TYPE_IDS: np.zeros_like(ids),
    }


def test_hub_keras_layer_fine_tunes_the_encoder(exports: dict[str, Path]) -> None:
    path = str(exports[contract.EXPORT_ENCODER])
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


def test_hub_keras_layer_frozen_has_no_trainable_weights(exports: dict[str, Path]) -> None:
    layer = hub.KerasLayer(str(exports[contract.EXPORT_ENCODER]), trainable=False)
    inputs = {name: tf_keras.Input([None], dtype=tf.int32, name=name) for name in INPUT_NAMES}
    layer(inputs)
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) > 0


def test_end_to_end_export_is_callable_and_reusable(exports: dict[str, Path]) -> None:
    path = str(exports[contract.EXPORT_END_TO_END])
    loaded = hub.load(path)
    by_signature = loaded.signatures[contract.SERVING_DEFAULT](text=tf.constant(TEXTS))
    by_call = loaded(tf.constant(TEXTS))
    np.testing.assert_array_equal(
        by_call[contract.EMBEDDING].numpy(), by_signature[contract.EMBEDDING].numpy()
    )
    # The encoder's weights (the embedding head has none), all trainable; no regularizers.
    assert len(loaded.variables) == len(loaded.trainable_variables) > 0
    assert list(loaded.regularization_losses) == []
    layer = hub.KerasLayer(path, output_key=contract.EMBEDDING)
    text = tf_keras.Input([], dtype=tf.string)
    model = tf_keras.Model(text, layer(text))
    np.testing.assert_allclose(
        model.predict(tf.constant(TEXTS), verbose=0),
        by_signature[contract.EMBEDDING].numpy(),
        atol=1e-6,
    )
