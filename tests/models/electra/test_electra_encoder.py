"""ElectraEncoder + heads against transformers on tiny random checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import transformers

from models import contract
from models.electra.electra_encoder import ElectraEncoder
from models.errors import CheckpointError
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


def _case(embedding_size: int) -> FamilyCase:
    return FamilyCase(
        config=lambda **kw: transformers.ElectraConfig(
            embedding_size=embedding_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=130,
            **kw,
        ),
        classes={
            "base": transformers.ElectraModel,
            "classification": transformers.ElectraForSequenceClassification,
            "masked_lm": transformers.ElectraForMaskedLM,
            "pretraining": transformers.ElectraForPreTraining,
        },
        pad_id=0,
        uses_types=True,
    )


# 16: factorized embeddings (projected to 32); 32: no projection, as transformers does.
CASES = {16: _case(16), 32: _case(32)}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return wordpiece_tokenizer(
        tmp_path_factory.mktemp("electra_tokenizer"), transformers.ElectraTokenizer
    )


@pytest.fixture(scope="module")
def checkpoints(
    tmp_path_factory: pytest.TempPathFactory, tokenizer: Any
) -> dict[tuple[int, str], Any]:
    made = {}
    for width, case in CASES.items():
        for kind in TASK_CLASSES:
            model = perturbed_model(case, kind, vocab_size=len(tokenizer))
            directory = write_checkpoint(tmp_path_factory.mktemp(f"electra{width}_{kind}"), model)
            made[width, kind] = (directory, model)
    return made


@pytest.mark.parametrize("width", sorted(CASES))
@pytest.mark.parametrize("kind", TASK_CLASSES)
@pytest.mark.parametrize("pairs", [False, True])
def test_matches_pytorch(
    checkpoints: dict[tuple[int, str], Any], tokenizer: Any, width: int, kind: str, pairs: bool
) -> None:
    directory, model = checkpoints[width, kind]
    inputs = id_inputs(CASES[width], vocab_size=len(tokenizer), pairs=pairs)
    assert_matches_torch(CASES[width], directory, model, TASK_OF[kind], inputs)


@pytest.mark.parametrize("kind", TASK_CLASSES)
def test_matches_pytorch_on_texts(
    checkpoints: dict[tuple[int, str], Any], tokenizer: Any, kind: str
) -> None:
    """PROBE_TEXTS and 300 STS-B sentences, alone and as pairs (with type ids)."""
    directory, model = checkpoints[16, kind]
    text_parity(CASES[16], directory, model, TASK_OF[kind], tokenizer, count=300)


def test_pretraining_discriminator_refused_unless_a_task_is_named(tmp_path: Path) -> None:
    """ElectraForPreTraining's head detects replaced tokens: nothing exports that task, but
    its encoder exports as an embedding model when asked to."""
    from models.loading.checkpoint_loader import CheckpointLoader

    model = perturbed_model(CASES[16], "pretraining", vocab_size=_VOCAB)
    loader = CheckpointLoader(write_checkpoint(tmp_path, model))
    with pytest.raises(CheckpointError, match="ElectraForPreTraining is not exportable"):
        loader.default_task()
    inputs = id_inputs(CASES[16], vocab_size=_VOCAB, pairs=True)
    base = transformers.ElectraModel.from_pretrained(str(tmp_path)).eval()
    assert_matches_torch(CASES[16], tmp_path, base, contract.TASK_EMBEDDING, inputs)


def test_projection_only_when_widths_differ() -> None:
    narrow = ElectraEncoder(
        vocab_size=10,
        hidden_size=8,
        embedding_size=4,
        num_layers=1,
        num_heads=2,
        intermediate_size=8,
    )
    assert "embeddings_project.weight" in narrow.checkpoint_variables()
    assert narrow.checkpoint_variables()["embeddings.word_embeddings.weight"][0].shape == (10, 4)
    clone = ElectraEncoder.from_config(narrow.get_config())
    assert clone.get_config() == narrow.get_config()
