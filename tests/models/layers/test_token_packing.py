"""TokenPacking and the encoders' skip_padding: padding skipped, real tokens unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import torch
import transformers

from models import contract
from models.bert.bert_encoder import BertEncoder
from models.layers.token_packing import TokenPacking

# Holes anywhere (not only trailing padding), an all-padding row, a full row.
MASK = np.array(
    [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [1, 0, 1, 1, 0]], dtype=np.int32
)


def test_pack_keeps_real_tokens_in_order_and_unpack_zeroes_padding() -> None:
    values = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3) + 1.0
    packing = TokenPacking(tf.constant(MASK), skip_padding=True)
    packed = packing.pack(tf.constant(values)).numpy()
    np.testing.assert_array_equal(packed, values[MASK.astype(bool)])
    unpacked = packing.unpack(tf.constant(packed)).numpy()
    np.testing.assert_array_equal(unpacked, values * MASK[:, :, None])


def test_unpack_without_zeros_puts_real_tokens_at_padding() -> None:
    # What attention's keys and values get: real positions exact, padded ones some real token
    # (masked by the attention bias), and no zero row appended.
    values = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3) + 1.0
    packing = TokenPacking(tf.constant(MASK), skip_padding=True)
    packed = packing.pack(tf.constant(values)).numpy()
    unpacked = packing.unpack(tf.constant(packed), zeros_at_padding=False).numpy()
    real = MASK.astype(bool)
    np.testing.assert_array_equal(unpacked[real], values[real])
    packed_rows = {tuple(row) for row in packed}
    assert all(tuple(row) in packed_rows for row in unpacked[~real])


def test_without_skip_padding_every_position_is_a_token() -> None:
    values = np.random.default_rng(0).normal(size=(4, 5, 3)).astype(np.float32)
    packing = TokenPacking(tf.constant(MASK), skip_padding=False)
    packed = packing.pack(tf.constant(values))
    assert packed.shape == (20, 3)
    np.testing.assert_array_equal(packing.unpack(packed).numpy(), values)


def test_pack_inside_tf_function_with_unknown_shapes() -> None:
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)] * 2)
    def roundtrip(mask: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
        packing = TokenPacking(mask, skip_padding=True)
        return packing.unpack(packing.pack(values[:, :, None]))[:, :, 0]

    values = np.arange(20, dtype=np.int32).reshape(4, 5) + 1
    np.testing.assert_array_equal(roundtrip(MASK, values).numpy(), values * MASK)


@pytest.fixture(scope="module")
def reference_and_inputs() -> tuple[transformers.BertModel, dict[str, np.ndarray]]:
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=16,
    )
    torch.manual_seed(0)
    reference = transformers.BertModel(config).eval()
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 50, size=(3, 9)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 4:] = 0
    mask[2, 1:] = 0
    inputs = {
        contract.INPUT_WORD_IDS: ids,
        contract.INPUT_MASK: mask,
        contract.INPUT_TYPE_IDS: np.zeros_like(ids),
    }
    return reference, inputs


def _encoder(reference: transformers.BertModel, *, skip_padding: bool) -> BertEncoder:
    encoder = BertEncoder(
        vocab_size=50,
        hidden_size=16,
        num_layers=2,
        num_heads=2,
        intermediate_size=24,
        max_position_embeddings=16,
        skip_padding=skip_padding,
    )
    state = reference.state_dict()
    for key, (variable, transpose) in encoder.checkpoint_variables().items():
        value = state[key].numpy()
        variable.assign(value.T if transpose else value)
    return encoder


@pytest.mark.parametrize("skip_padding", [True, False])
def test_encoder_matches_pytorch(
    reference_and_inputs: tuple[transformers.BertModel, dict[str, np.ndarray]],
    skip_padding: bool,
) -> None:
    reference, inputs = reference_and_inputs
    with torch.no_grad():
        expected = reference(
            input_ids=torch.tensor(inputs[contract.INPUT_WORD_IDS]).long(),
            attention_mask=torch.tensor(inputs[contract.INPUT_MASK]).long(),
        )
    encoder = _encoder(reference, skip_padding=skip_padding)
    outputs = encoder(inputs)
    real = inputs[contract.INPUT_MASK].astype(bool)
    sequence = outputs[contract.SEQUENCE_OUTPUT].numpy()
    theirs = expected.last_hidden_state.numpy()
    np.testing.assert_allclose(sequence[real], theirs[real], atol=1e-5)
    np.testing.assert_allclose(
        outputs[contract.POOLED_OUTPUT].numpy(), expected.pooler_output.numpy(), atol=1e-5
    )
    if skip_padding:
        assert not sequence[~real].any()
        for layer_output in outputs[contract.ENCODER_OUTPUTS]:
            assert not layer_output.numpy()[~real].any()
    else:
        np.testing.assert_allclose(sequence, theirs, atol=1e-5)
    assert BertEncoder.from_config(encoder.get_config()).skip_padding is skip_padding
