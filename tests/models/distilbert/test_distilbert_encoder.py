"""What only DistilBERT has: its own config keys and no pooler (the checks every family shares
are in tests/models/test_family_encoders.py)."""

from __future__ import annotations

import pytest

from models.distilbert.distilbert_config import DistilBertConfig
from tests.support.families import tiny_encoder


@pytest.mark.parametrize("activation", ["relu", "gelu_new"])
def test_activation_is_read_from_distilberts_own_key(activation: str) -> None:
    config = DistilBertConfig.from_dict(
        {
            "model_type": "distilbert",
            "vocab_size": 10,
            "dim": 8,
            "n_layers": 3,
            "n_heads": 2,
            "hidden_dim": 12,
            "activation": activation,
        }
    )
    assert (config.hidden_size, config.num_hidden_layers, config.intermediate_size) == (8, 3, 12)
    assert config.hidden_act == activation and config.type_vocab_size == 0


def test_has_no_pooler_and_no_type_embeddings() -> None:
    with pytest.raises(ValueError, match="no pooler"):
        tiny_encoder("distilbert", use_pooler=True)
    keys = tiny_encoder("distilbert").checkpoint_variables()
    assert "transformer.layer.0.attention.q_lin.weight" in keys
    assert not any("token_type" in k or "pooler" in k for k in keys)
