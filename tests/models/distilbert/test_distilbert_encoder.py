"""DistilBertEncoder + heads against transformers on tiny random checkpoints."""

from __future__ import annotations

from typing import Any

import pytest
import transformers

from models.distilbert.distilbert_config import DistilBertConfig
from models.distilbert.distilbert_encoder import DistilBertEncoder
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

DISTILBERT = FamilyCase(
    config=lambda **kw: transformers.DistilBertConfig(
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=37,
        max_position_embeddings=130,
        **kw,
    ),
    classes={
        "base": transformers.DistilBertModel,
        "classification": transformers.DistilBertForSequenceClassification,
        "masked_lm": transformers.DistilBertForMaskedLM,
    },
    pad_id=0,
    uses_types=False,
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return wordpiece_tokenizer(
        tmp_path_factory.mktemp("distilbert_tokenizer"), transformers.DistilBertTokenizer
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory, tokenizer: Any) -> dict[str, Any]:
    made = {}
    for kind in TASK_CLASSES:
        model = perturbed_model(DISTILBERT, kind, vocab_size=len(tokenizer))
        made[kind] = (write_checkpoint(tmp_path_factory.mktemp(f"distilbert_{kind}"), model), model)
    return made


@pytest.mark.parametrize("kind", TASK_CLASSES)
@pytest.mark.parametrize("pairs", [False, True])
def test_matches_pytorch(
    checkpoints: dict[str, Any], tokenizer: Any, kind: str, pairs: bool
) -> None:
    directory, model = checkpoints[kind]
    inputs = id_inputs(DISTILBERT, vocab_size=len(tokenizer), pairs=pairs)
    assert_matches_torch(DISTILBERT, directory, model, TASK_OF[kind], inputs)


@pytest.mark.parametrize("kind", TASK_CLASSES)
def test_matches_pytorch_on_texts(checkpoints: dict[str, Any], tokenizer: Any, kind: str) -> None:
    """PROBE_TEXTS and 300 STS-B sentences, alone and as pairs (DistilBERT's tokenizer
    emits no type ids)."""
    directory, model = checkpoints[kind]
    text_parity(DISTILBERT, directory, model, TASK_OF[kind], tokenizer, count=300)


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


def test_has_no_pooler_and_round_trips() -> None:
    with pytest.raises(ValueError, match="no pooler"):
        DistilBertEncoder(
            vocab_size=10,
            hidden_size=8,
            num_layers=1,
            num_heads=2,
            intermediate_size=8,
            use_pooler=True,
        )
    encoder = DistilBertEncoder(
        vocab_size=10, hidden_size=8, num_layers=1, num_heads=2, intermediate_size=8
    )
    keys = encoder.checkpoint_variables()
    assert "transformer.layer.0.attention.q_lin.weight" in keys
    assert not any("token_type" in k or "pooler" in k for k in keys)
    clone = DistilBertEncoder.from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
