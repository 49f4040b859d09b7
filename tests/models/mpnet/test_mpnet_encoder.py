"""MPNetEncoder + heads against transformers on tiny random checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from transformers.models.mpnet.modeling_mpnet import MPNetEncoder as TorchMPNetEncoder

from models.mpnet.mpnet_encoder import MPNetEncoder, relative_position_buckets
from tests.support.families import (
    TASK_CLASSES,
    TASK_OF,
    FamilyCase,
    assert_matches_torch,
    id_inputs,
    perturbed_model,
    text_parity,
    wordpiece_tokenizer,
    write_checkpoint,
)

_VOCAB = 99
MPNET = FamilyCase(
    config=lambda **kw: transformers.MPNetConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=300,
        **kw,
    ),
    classes={
        "base": transformers.MPNetModel,
        "classification": transformers.MPNetForSequenceClassification,
        "masked_lm": transformers.MPNetForMaskedLM,
    },
    pad_id=1,
    uses_types=False,
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return wordpiece_tokenizer(
        tmp_path_factory.mktemp("mpnet_tokenizer"), transformers.MPNetTokenizer
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> dict[str, Any]:
    made = {}
    for kind in TASK_CLASSES:
        model = perturbed_model(MPNET, kind, vocab_size=len(tokenizer))
        made[kind] = (write_checkpoint(tmp_path_factory.mktemp(f"mpnet_{kind}"), model), model)
    return made


@pytest.mark.parametrize("kind", TASK_CLASSES)
@pytest.mark.parametrize("pairs", [False, True])
def test_matches_pytorch(
    checkpoints: dict[str, Any], tokenizer: Any, kind: str, pairs: bool
) -> None:
    directory, model = checkpoints[kind]
    inputs = id_inputs(MPNET, vocab_size=len(tokenizer), pairs=pairs)
    assert_matches_torch(MPNET, directory, model, TASK_OF[kind], inputs)


@pytest.mark.parametrize("kind", TASK_CLASSES)
def test_matches_pytorch_on_texts(checkpoints: dict[str, Any], tokenizer: Any, kind: str) -> None:
    """PROBE_TEXTS and 300 STS-B sentences, alone and as pairs (<s> A </s></s> B </s>)."""
    directory, model = checkpoints[kind]
    text_parity(MPNET, directory, model, TASK_OF[kind], tokenizer, count=300)


def test_long_inputs_reach_the_logarithmic_buckets(checkpoints: dict[str, Any]) -> None:
    """Offsets beyond 8 use the log buckets, beyond 128 the last one: a 290-token row."""
    directory, model = checkpoints["base"]
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


def test_get_config_round_trip() -> None:
    encoder = MPNetEncoder(
        vocab_size=10,
        hidden_size=8,
        num_layers=1,
        num_heads=2,
        intermediate_size=8,
        relative_attention_num_buckets=16,
    )
    keys = encoder.checkpoint_variables()
    assert keys["encoder.relative_attention_bias.weight"][0].shape == (16, 2)
    assert "encoder.layer.0.attention.attn.q.weight" in keys
    clone = MPNetEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()


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
