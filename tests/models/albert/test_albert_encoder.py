"""What only ALBERT has: layers shared across depth, in groups (the checks every family shares
are in tests/models/test_family_encoders.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.albert.albert_config import AlbertConfig
from models.errors import CheckpointError
from tests.support.families import (
    ALBERT_GROUPED,
    TASK_OF,
    FamilyCheckpoints,
    assert_matches_torch,
    id_inputs,
    perturbed_model,
    tiny_encoder,
    write_checkpoint,
)


def test_groups_of_several_layers_match_pytorch(
    family_checkpoints: FamilyCheckpoints, tmp_path: Path
) -> None:
    vocab_size = len(family_checkpoints.tokenizer("albert"))
    model = perturbed_model(ALBERT_GROUPED, "base", vocab_size=vocab_size)
    inputs = id_inputs(ALBERT_GROUPED, vocab_size=vocab_size, pairs=True)
    assert_matches_torch(
        ALBERT_GROUPED, write_checkpoint(tmp_path, model), model, TASK_OF["base"], inputs
    )


def test_one_layer_owns_the_weights_of_all() -> None:
    encoder = tiny_encoder("albert", num_layers=6)
    assert len(encoder.transformer_layers) == 1
    assert len(encoder._layer_schedule()) == 6
    keys = encoder.checkpoint_variables()
    assert not any("albert_layers.1" in k or "albert_layer_groups.1" in k for k in keys)


def test_uneven_groups_refused() -> None:
    with pytest.raises(CheckpointError, match="not a multiple of num_hidden_groups"):
        AlbertConfig.from_dict(
            {
                "model_type": "albert",
                "vocab_size": 10,
                "hidden_size": 8,
                "num_attention_heads": 2,
                "num_hidden_layers": 3,
                "num_hidden_groups": 2,
            }
        )
