"""What only RoBERTa (and XLM-RoBERTa) has: positions from the padding index, no type ids, its
first-token classifier's key names (the checks every family shares are in
tests/models/test_family_encoders.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import contract
from tests.support.families import (
    FAMILY_CASES,
    FamilyCheckpoints,
    id_inputs,
    perturbed_model,
    tiny_encoder,
    write_checkpoint,
)

ROBERTA = FAMILY_CASES["roberta"]


def test_positions_count_real_tokens_from_the_padding_index() -> None:
    encoder = tiny_encoder("roberta", pad_token_id=1)
    ids = np.array([[0, 5, 6, 2, 1, 1]], dtype=np.int32)
    positions = np.asarray(encoder._position_ids(ids))
    np.testing.assert_array_equal(positions, [[2, 3, 4, 5, 1, 1]])


def test_type_ids_are_ignored(family_checkpoints: FamilyCheckpoints) -> None:
    from tests.support.families import keras_outputs

    directory, model = family_checkpoints.checkpoint("roberta", "base")
    inputs = id_inputs(ROBERTA, vocab_size=model.config.vocab_size, pairs=False)
    with_types = dict(inputs, **{contract.INPUT_TYPE_IDS: np.ones_like(inputs["input_mask"])})
    np.testing.assert_array_equal(
        keras_outputs(directory, contract.TASK_EMBEDDING, inputs)[contract.EMBEDDING],
        keras_outputs(directory, contract.TASK_EMBEDDING, with_types)[contract.EMBEDDING],
    )


def test_padding_index_survives_the_config() -> None:
    encoder = tiny_encoder("roberta", pad_token_id=3)
    assert type(encoder).from_config(encoder.get_config()).position_padding_id == 3


def test_missing_head_refused_with_the_family_key_names(
    family_checkpoints: FamilyCheckpoints,
) -> None:
    """A classification checkpoint exported as fill-mask lacks RoBERTa's lm_head: refused."""
    from models.errors import MissingWeightsError
    from models.export.model_assembly import build_encoder_and_head
    from models.loading.checkpoint_loader import CheckpointLoader

    loader = CheckpointLoader(family_checkpoints.checkpoint("roberta", "classification")[0])
    assert loader.default_task() == contract.TASK_CLASSIFICATION
    with pytest.raises(MissingWeightsError, match=r"lm_head\.bias, lm_head\.dense\.bias"):
        build_encoder_and_head(loader, task=contract.TASK_FILL_MASK)


def test_unused_weights_refused(tmp_path: Path) -> None:
    """A pooler beside RoBERTa's first-token classifier would be silently ignored: refused."""
    import torch
    from safetensors.torch import save_file

    from models.errors import CheckpointError
    from models.export.model_assembly import build_encoder_and_head
    from models.loading.checkpoint_loader import CheckpointLoader

    model = perturbed_model(ROBERTA, "classification", vocab_size=99)
    write_checkpoint(tmp_path, model)
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    state["roberta.pooler.dense.weight"] = torch.zeros(32, 32)
    state["roberta.pooler.dense.bias"] = torch.zeros(32)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="would ignore: pooler.dense.bias"):
        build_encoder_and_head(CheckpointLoader(tmp_path), task=contract.TASK_CLASSIFICATION)
