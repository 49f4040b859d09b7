"""``LayerNorm`` is as exact as ``keras.layers.LayerNormalization`` (float64 torch as the truth)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import torch

from models.layers.layer_norm import LayerNorm


@pytest.mark.parametrize("shape", [(7, 384), (3, 5, 32), (0, 16)])
def test_as_exact_as_keras(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    width = shape[-1]
    # Rows with a large offset and spread: the case a one-pass variance gets wrong.
    x = (rng.normal(size=shape) * 7 + 40).astype(np.float32)
    gamma = rng.normal(size=width).astype(np.float32)
    beta = rng.normal(size=width).astype(np.float32)
    ours, reference = LayerNorm(epsilon=1e-12), keras.layers.LayerNormalization(epsilon=1e-12)
    for layer in (ours, reference):
        layer.build(shape)
        layer.set_weights([gamma, beta])
    got = keras.ops.convert_to_numpy(ours(x))
    keras_out = keras.ops.convert_to_numpy(reference(x))
    exact = torch.nn.functional.layer_norm(  # float64: the error of each float32 computation
        torch.from_numpy(x).double(),
        (width,),
        torch.from_numpy(gamma).double(),
        torch.from_numpy(beta).double(),
        1e-12,
    ).numpy()
    assert got.shape == shape and got.dtype == np.float32
    if not got.size:
        return
    ours_error, keras_error = np.abs(got - exact).max(), np.abs(keras_out - exact).max()
    assert ours_error <= 1.5 * keras_error + 1e-7, (ours_error, keras_error)
    assert ours_error < 5e-6


def test_other_axes_use_keras_computation_and_config_round_trips() -> None:
    x = np.random.default_rng(1).normal(size=(4, 6, 8)).astype(np.float32)
    ours, reference = LayerNorm(axis=1), keras.layers.LayerNormalization(axis=1)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ours(x)), keras.ops.convert_to_numpy(reference(x)), atol=1e-6
    )
    clone = LayerNorm.from_config(LayerNorm(epsilon=1e-5, name="n").get_config())
    assert (clone.epsilon, clone.name) == (1e-5, "n")
