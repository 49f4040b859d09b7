"""AlbertEncoder + heads against transformers on tiny random checkpoints."""

from __future__ import annotations

from typing import Any

import pytest
import transformers

from models.albert.albert_config import AlbertConfig
from models.albert.albert_encoder import AlbertEncoder
from models.errors import CheckpointError
from tests.support.families import (
    TASK_CLASSES,
    TASK_OF,
    FamilyCase,
    assert_matches_torch,
    id_inputs,
    perturbed_model,
    sentencepiece_tokenizer,
    text_parity,
    write_checkpoint,
)


def _case(groups: int, inner: int) -> FamilyCase:
    return FamilyCase(
        config=lambda **kw: transformers.AlbertConfig(
            embedding_size=16,
            hidden_size=32,
            num_hidden_layers=4,
            num_hidden_groups=groups,
            inner_group_num=inner,
            num_attention_heads=4,
            intermediate_size=37,
            max_position_embeddings=130,
            **kw,
        ),
        classes={
            "base": transformers.AlbertModel,
            "classification": transformers.AlbertForSequenceClassification,
            "masked_lm": transformers.AlbertForMaskedLM,
        },
        pad_id=0,
        uses_types=True,
    )


# (1, 1): released ALBERTs, one layer applied 4 times; (2, 2): two groups of two layers.
CASES = {(1, 1): _case(1, 1), (2, 2): _case(2, 2)}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return sentencepiece_tokenizer(tmp_path_factory.mktemp("albert_tokenizer"), family="albert")


@pytest.fixture(scope="module")
def checkpoints(
    tmp_path_factory: pytest.TempPathFactory, tokenizer: Any
) -> dict[tuple[Any, str], Any]:
    made = {}
    for sharing, case in CASES.items():
        for kind in TASK_CLASSES:
            if sharing != (1, 1) and kind != "base":
                continue  # heads do not depend on the layer sharing
            model = perturbed_model(case, kind, vocab_size=len(tokenizer))
            directory = write_checkpoint(tmp_path_factory.mktemp(f"albert_{kind}"), model)
            made[sharing, kind] = (directory, model)
    return made


@pytest.mark.parametrize("kind", TASK_CLASSES)
@pytest.mark.parametrize("pairs", [False, True])
def test_matches_pytorch(
    checkpoints: dict[tuple[Any, str], Any], tokenizer: Any, kind: str, pairs: bool
) -> None:
    directory, model = checkpoints[(1, 1), kind]
    inputs = id_inputs(CASES[1, 1], vocab_size=len(tokenizer), pairs=pairs)
    assert_matches_torch(CASES[1, 1], directory, model, TASK_OF[kind], inputs)


@pytest.mark.parametrize("kind", TASK_CLASSES)
def test_matches_pytorch_on_texts(
    checkpoints: dict[tuple[Any, str], Any], tokenizer: Any, kind: str
) -> None:
    """PROBE_TEXTS and 300 STS-B sentences, alone and as pairs (SentencePiece tokenizer)."""
    directory, model = checkpoints[(1, 1), kind]
    text_parity(CASES[1, 1], directory, model, TASK_OF[kind], tokenizer, count=300)


def test_groups_of_several_layers_match_pytorch(
    checkpoints: dict[tuple[Any, str], Any], tokenizer: Any
) -> None:
    directory, model = checkpoints[(2, 2), "base"]
    inputs = id_inputs(CASES[2, 2], vocab_size=len(tokenizer), pairs=True)
    assert_matches_torch(CASES[2, 2], directory, model, TASK_OF["base"], inputs)


def test_one_layer_owns_the_weights_of_all() -> None:
    encoder = AlbertEncoder(
        vocab_size=10,
        hidden_size=8,
        embedding_size=4,
        num_layers=6,
        num_heads=2,
        intermediate_size=8,
    )
    assert len(encoder.transformer_layers) == 1
    assert len(encoder._layer_schedule()) == 6
    keys = encoder.checkpoint_variables()
    assert not any("albert_layers.1" in k or "albert_layer_groups.1" in k for k in keys)
    clone = AlbertEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()


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
