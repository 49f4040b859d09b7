"""BertEncoder against transformers' PyTorch BertModel on random weights (the checks every
family shares are in tests/models/test_family_encoders.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

from models import contract
from models.bert.bert_encoder import BertEncoder
from tests.support.families import tiny_encoder


def _random_pair(hidden_act: str, *, seed: int = 0) -> tuple[transformers.BertModel, BertEncoder]:
    config = transformers.BertConfig(
        vocab_size=97,
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=40,
        type_vocab_size=2,
        hidden_act=hidden_act,
        layer_norm_eps=1e-7,
    )
    torch.manual_seed(seed)
    reference = transformers.BertModel(config).eval()
    with torch.no_grad():
        for name, param in reference.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                param.add_(torch.randn_like(param) * 0.1)
    encoder = BertEncoder(
        vocab_size=97,
        hidden_size=32,
        num_layers=3,
        num_heads=4,
        intermediate_size=37,
        hidden_act=hidden_act,
        max_position_embeddings=40,
        layer_norm_epsilon=1e-7,
    )
    state = reference.state_dict()
    for key, (variable, transpose) in encoder.checkpoint_variables().items():
        value = state[key].numpy()
        variable.assign(value.T if transpose else value)
    return reference, encoder


def _inputs(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 97, size=(4, 23)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 15:] = 0
    mask[2, 4:] = 0
    types = np.zeros_like(ids)
    types[0, 10:] = 1
    types[3, 5:] = 1
    return {contract.INPUT_WORD_IDS: ids, contract.INPUT_MASK: mask, contract.INPUT_TYPE_IDS: types}


@pytest.mark.parametrize("hidden_act", ["gelu", "gelu_new", "relu"])
def test_matches_pytorch_bert_model(hidden_act: str) -> None:
    reference, encoder = _random_pair(hidden_act)
    inputs = _inputs()
    outputs = encoder(inputs)
    with torch.no_grad():
        expected = reference(
            input_ids=torch.tensor(inputs[contract.INPUT_WORD_IDS], dtype=torch.long),
            attention_mask=torch.tensor(inputs[contract.INPUT_MASK], dtype=torch.long),
            token_type_ids=torch.tensor(inputs[contract.INPUT_TYPE_IDS], dtype=torch.long),
            output_hidden_states=True,
        )
    keep = inputs[contract.INPUT_MASK][..., None]
    # Padded positions are garbage in both implementations; only real tokens are compared.
    sequence_diff = np.abs(
        np.asarray(outputs[contract.SEQUENCE_OUTPUT]) - expected.last_hidden_state.numpy()
    )
    assert (sequence_diff * keep).max() < 2e-6
    pooled = np.asarray(outputs[contract.POOLED_OUTPUT])
    np.testing.assert_allclose(pooled, expected.pooler_output.numpy(), atol=2e-6, rtol=0)
    assert len(outputs[contract.ENCODER_OUTPUTS]) == 3
    for ours, theirs in zip(
        outputs[contract.ENCODER_OUTPUTS], expected.hidden_states[1:], strict=True
    ):
        assert (np.abs(np.asarray(ours) - theirs.numpy()) * keep).max() < 2e-6


def test_padding_does_not_change_real_tokens() -> None:
    _, encoder = _random_pair("gelu")
    inputs = _inputs()
    short = {k: v[2:3, :4] for k, v in inputs.items()}
    padded = encoder({k: v[2:3] for k, v in inputs.items()})
    alone = encoder(short)
    np.testing.assert_allclose(
        np.asarray(padded[contract.SEQUENCE_OUTPUT])[:, :4],
        np.asarray(alone[contract.SEQUENCE_OUTPUT]),
        atol=1e-6,
    )


def test_without_pooler_pooled_output_is_cls_state() -> None:
    encoder = tiny_encoder(
        "bert", vocab_size=97, hidden_size=16, intermediate_size=20, use_pooler=False
    )
    outputs = encoder(_inputs())
    np.testing.assert_array_equal(
        np.asarray(outputs[contract.POOLED_OUTPUT]),
        np.asarray(outputs[contract.SEQUENCE_OUTPUT])[:, 0],
    )
    assert not any(k.startswith("pooler.") for k in encoder.checkpoint_variables())


def test_config_keeps_activation_and_type_vocabulary() -> None:
    """(The round trip itself is checked for every family in test_family_encoders.py.)"""
    encoder = tiny_encoder(
        "bert", num_layers=2, hidden_act="relu", type_vocab_size=3, use_pooler=False
    )
    config = BertEncoder.from_config(encoder.get_config()).get_config()
    assert config["hidden_act"] == "relu" and config["type_vocab_size"] == 3
    # 5 embedding tensors + 16 per layer
    assert len(encoder.checkpoint_variables()) == 5 + 2 * 16
