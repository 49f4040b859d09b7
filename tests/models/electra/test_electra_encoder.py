"""What only ELECTRA has: the pre-training discriminator and the embedding projection (the
checks every family shares are in tests/models/test_family_encoders.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import transformers

from models import contract
from models.errors import CheckpointError
from tests.support.families import (
    FAMILY_CASES,
    assert_matches_torch,
    id_inputs,
    perturbed_model,
    tiny_encoder,
    write_checkpoint,
)

_VOCAB = 99


def test_pretraining_discriminator_refused_unless_a_task_is_named(tmp_path: Path) -> None:
    """ElectraForPreTraining's head detects replaced tokens: nothing exports that task, but
    its encoder exports as an embedding model when asked to."""
    from models.loading.checkpoint_loader import CheckpointLoader

    case = FAMILY_CASES["electra"]
    model = perturbed_model(case, "pretraining", vocab_size=_VOCAB)
    loader = CheckpointLoader(write_checkpoint(tmp_path, model))
    with pytest.raises(CheckpointError, match="ElectraForPreTraining is not exportable"):
        loader.default_task()
    inputs = id_inputs(case, vocab_size=_VOCAB, pairs=True)
    base = transformers.ElectraModel.from_pretrained(str(tmp_path)).eval()
    assert_matches_torch(case, tmp_path, base, contract.TASK_EMBEDDING, inputs)


def test_projection_only_when_widths_differ() -> None:
    narrow = tiny_encoder("electra", embedding_size=4)
    assert "embeddings_project.weight" in narrow.checkpoint_variables()
    assert narrow.checkpoint_variables()["embeddings.word_embeddings.weight"][0].shape == (10, 4)
    wide = tiny_encoder("electra", embedding_size=None)
    assert "embeddings_project.weight" not in wide.checkpoint_variables()
