"""What only MPNet has: relative position buckets, and sentence-transformers' all-mpnet layout
(the checks every family shares are in tests/models/test_family_encoders.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder as TorchMPNetEncoder

from models.mpnet.mpnet_encoder import relative_position_buckets
from tests.support.families import (
    FAMILY_CASES,
    TASK_OF,
    FamilyCheckpoints,
    assert_matches_torch,
    id_inputs,
    perturbed_model,
    tiny_encoder,
    write_checkpoint,
)

_VOCAB = 99
MPNET = FAMILY_CASES["mpnet"]


def test_long_inputs_reach_the_logarithmic_buckets(family_checkpoints: FamilyCheckpoints) -> None:
    """Offsets beyond 8 use the log buckets, beyond 128 the last one: a 290-token row."""
    directory, model = family_checkpoints.checkpoint("mpnet", "base")
    rng = np.random.default_rng(3)
    ids = rng.integers(3, model.config.vocab_size, size=(2, 290)).astype(np.int32)
    mask = np.ones_like(ids)
    ids[1, 200:], mask[1, 200:] = 1, 0
    inputs = {"input_word_ids": ids, "input_mask": mask, "input_type_ids": np.zeros_like(ids)}
    assert_matches_torch(MPNET, directory, model, TASK_OF["base"], inputs)


def test_buckets_equal_transformers_for_every_offset() -> None:
    offsets = np.arange(-1100, 1101)
    expected = TorchMPNetEncoder.relative_position_bucket(torch.tensor(offsets)).numpy()
    np.testing.assert_array_equal(relative_position_buckets(offsets), expected)


def test_relative_attention_bias_and_attention_keys() -> None:
    keys = tiny_encoder("mpnet", relative_attention_num_buckets=16).checkpoint_variables()
    assert keys["encoder.relative_attention_bias.weight"][0].shape == (16, 2)
    assert "encoder.layer.0.attention.attn.q.weight" in keys


def test_sentence_transformers_pooling_on_mpnet(tmp_path: Path) -> None:
    """all-mpnet-base-v2's layout (MPNet + Pooling + Normalize), here with CLS pooling."""
    from models import contract
    from models.export.model_assembly import build_encoder_and_head
    from models.loading.checkpoint_loader import CheckpointLoader
    from tests.support.families import as_sentence_transformers, torch_outputs

    model = perturbed_model(MPNET, "base", vocab_size=_VOCAB)
    checkpoint = as_sentence_transformers(
        write_checkpoint(tmp_path, model), pooling="cls_token", normalize=True
    )
    loader = CheckpointLoader(checkpoint)
    assert (loader.pooling_mode, loader.normalize) == ("cls", True)
    assert loader.default_task() == contract.TASK_EMBEDDING
    encoder, head, _ = build_encoder_and_head(loader, task=contract.TASK_EMBEDDING)
    inputs = id_inputs(MPNET, vocab_size=_VOCAB, pairs=False)
    ours = np.asarray(head(encoder(inputs)[contract.SEQUENCE_OUTPUT], inputs["input_mask"]))
    hidden = torch_outputs(MPNET, model, contract.TASK_EMBEDDING, inputs)[contract.SEQUENCE_OUTPUT]
    cls = hidden[:, 0]
    expected = cls / np.linalg.norm(cls, axis=1, keepdims=True)
    assert np.abs(ours - expected).max() <= 1e-5
