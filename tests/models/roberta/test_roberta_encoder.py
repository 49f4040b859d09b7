"""RobertaEncoder (and XLM-RoBERTa) + heads against transformers on tiny random checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import transformers

from models import contract
from models.roberta.roberta_encoder import RobertaEncoder
from tests.support.families import (
    TASK_CLASSES,
    TASK_OF,
    FamilyCase,
    assert_matches_torch,
    bpe_tokenizer,
    id_inputs,
    perturbed_model,
    sentencepiece_tokenizer,
    text_parity,
    write_checkpoint,
)

_SIZES = dict(
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=130,
    type_vocab_size=1,
    layer_norm_eps=1e-5,
)
ROBERTA = FamilyCase(
    config=lambda **kw: transformers.RobertaConfig(**_SIZES, **kw),
    classes={
        "base": transformers.RobertaModel,
        "classification": transformers.RobertaForSequenceClassification,
        "masked_lm": transformers.RobertaForMaskedLM,
    },
    pad_id=1,
    uses_types=False,
)
XLM_ROBERTA = FamilyCase(
    config=lambda **kw: transformers.XLMRobertaConfig(**_SIZES, **kw),
    classes={
        "base": transformers.XLMRobertaModel,
        "classification": transformers.XLMRobertaForSequenceClassification,
        "masked_lm": transformers.XLMRobertaForMaskedLM,
    },
    pad_id=1,
    uses_types=False,
)
CASES = {"roberta": ROBERTA, "xlm-roberta": XLM_ROBERTA}


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {
        "roberta": bpe_tokenizer(tmp_path_factory.mktemp("roberta_tokenizer")),
        "xlm-roberta": sentencepiece_tokenizer(
            tmp_path_factory.mktemp("xlmr_tokenizer"), family="xlm-roberta"
        ),
    }


@pytest.fixture(scope="module")
def checkpoints(
    tmp_path_factory: pytest.TempPathFactory, tokenizers: dict[str, Any]
) -> dict[tuple[str, str], Any]:
    made = {}
    for name, case in CASES.items():
        for kind in TASK_CLASSES:
            model = perturbed_model(case, kind, vocab_size=len(tokenizers[name]))
            directory = write_checkpoint(tmp_path_factory.mktemp(f"{name}_{kind}"), model)
            made[name, kind] = (directory, model)
    return made


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("kind", TASK_CLASSES)
@pytest.mark.parametrize("pairs", [False, True])
def test_matches_pytorch(
    checkpoints: dict[tuple[str, str], Any],
    tokenizers: dict[str, Any],
    name: str,
    kind: str,
    pairs: bool,
) -> None:
    directory, model = checkpoints[name, kind]
    inputs = id_inputs(CASES[name], vocab_size=len(tokenizers[name]), pairs=pairs)
    assert_matches_torch(CASES[name], directory, model, TASK_OF[kind], inputs)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("kind", TASK_CLASSES)
def test_matches_pytorch_on_texts(
    checkpoints: dict[tuple[str, str], Any], tokenizers: dict[str, Any], name: str, kind: str
) -> None:
    """PROBE_TEXTS and 300 STS-B sentences, alone and as pairs, through the reference
    tokenizer (BPE for RoBERTa, SentencePiece for XLM-R)."""
    directory, model = checkpoints[name, kind]
    task = TASK_OF[kind]
    text_parity(CASES[name], directory, model, task, tokenizers[name], count=300)


def test_positions_count_real_tokens_from_the_padding_index() -> None:
    encoder = RobertaEncoder(
        vocab_size=10, hidden_size=8, num_layers=1, num_heads=2, intermediate_size=8
    )
    ids = np.array([[0, 5, 6, 2, 1, 1]], dtype=np.int32)
    positions = np.asarray(encoder._position_ids(ids))
    np.testing.assert_array_equal(positions, [[2, 3, 4, 5, 1, 1]])


def test_type_ids_are_ignored(checkpoints: dict[tuple[str, str], Any]) -> None:
    from tests.support.families import keras_outputs

    directory, model = checkpoints["roberta", "base"]
    inputs = id_inputs(ROBERTA, vocab_size=model.config.vocab_size, pairs=False)
    with_types = dict(inputs, **{contract.INPUT_TYPE_IDS: np.ones_like(inputs["input_mask"])})
    np.testing.assert_array_equal(
        keras_outputs(directory, contract.TASK_EMBEDDING, inputs)[contract.EMBEDDING],
        keras_outputs(directory, contract.TASK_EMBEDDING, with_types)[contract.EMBEDDING],
    )


def test_get_config_round_trip() -> None:
    encoder = RobertaEncoder(
        vocab_size=50,
        hidden_size=16,
        num_layers=1,
        num_heads=2,
        intermediate_size=20,
        pad_token_id=3,
    )
    clone = RobertaEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
    assert clone.position_padding_id == 3


def test_missing_head_refused_with_the_family_key_names(
    checkpoints: dict[tuple[str, str], Any],
) -> None:
    """A classification checkpoint exported as fill-mask lacks RoBERTa's lm_head: refused."""
    from models.errors import MissingWeightsError
    from models.export.model_assembly import build_encoder_and_head
    from models.loading.checkpoint_loader import CheckpointLoader

    loader = CheckpointLoader(checkpoints["roberta", "classification"][0])
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
