"""The family registry and the loader's per-family key handling and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models import contract
from models.errors import CheckpointError
from models.family import FAMILIES, Family
from models.loading.checkpoint_loader import CheckpointLoader, canonical_key


@pytest.mark.parametrize(
    ("model_type", "raw", "canonical"),
    [
        (
            "roberta",
            "roberta.encoder.layer.0.attention.self.query.weight",
            "encoder.layer.0.attention.self.query.weight",
        ),
        ("roberta", "lm_head.decoder.bias", "lm_head.bias"),
        ("xlm-roberta", "module.roberta.embeddings.LayerNorm.gamma", "embeddings.LayerNorm.weight"),
        (
            "distilbert",
            "distilbert.transformer.layer.1.ffn.lin1.weight",
            "transformer.layer.1.ffn.lin1.weight",
        ),
        ("electra", "electra.embeddings_project.bias", "embeddings_project.bias"),
        ("albert", "predictions.decoder.bias", "predictions.bias"),
        ("albert", "albert.pooler.weight", "pooler.weight"),
        (
            "mpnet",
            "0.auto_model.encoder.relative_attention_bias.weight",
            "encoder.relative_attention_bias.weight",
        ),
        ("mpnet", "mpnet.pooler.dense.bias", "pooler.dense.bias"),
    ],
)
def test_canonical_key_per_family(model_type: str, raw: str, canonical: str) -> None:
    assert canonical_key(raw, FAMILIES[model_type]) == canonical


def test_a_family_prefix_is_not_stripped_for_another_family() -> None:
    # A RoBERTa key in a BERT checkpoint stays foreign, so the loader names it as unused.
    assert canonical_key("roberta.embeddings.LayerNorm.weight").startswith("roberta.")


def test_unknown_model_type_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "xlnet", "vocab_size": 5}))
    with pytest.raises(CheckpointError) as error:
        CheckpointLoader(tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert message == (
        "model_type 'xlnet' is not supported (supported: albert, bert, distilbert, electra, "
        "mpnet, roberta, xlm-roberta)"
    )


@pytest.mark.parametrize(
    ("model_type", "architecture"),
    [
        ("roberta", "RobertaForQuestionAnswering"),
        ("bert", "BertForMultipleChoice"),
        ("albert", "AlbertForPreTraining"),
        ("distilbert", "DistilBertForNextSentencePrediction"),
        ("mpnet", "MPNetForCausalLM"),
        ("bert", "BertLMHeadModel"),
    ],
)
def test_unsupported_task_class_refused(model_type: str, architecture: str) -> None:
    with pytest.raises(CheckpointError, match=f"^{architecture} is not exportable"):
        FAMILIES[model_type].default_task((architecture,))


@pytest.mark.parametrize(
    ("model_type", "architecture", "task"),
    [
        ("bert", "BertForPreTraining", contract.TASK_FILL_MASK),
        ("xlm-roberta", "XLMRobertaModel", contract.TASK_EMBEDDING),
        ("mpnet", "MPNetForMaskedLM", contract.TASK_FILL_MASK),
        ("distilbert", "DistilBertForSequenceClassification", contract.TASK_CLASSIFICATION),
        ("electra", "ElectraForTokenClassification", contract.TASK_TOKEN_CLASSIFICATION),
    ],
)
def test_default_task_follows_the_task_class(model_type: str, architecture: str, task: str) -> None:
    assert FAMILIES[model_type].default_task((architecture,)) == task


def test_family_renames_heads_by_longest_prefix() -> None:
    family = Family.for_model_type("distilbert")
    renamed = family.rename(
        {"classifier.dense.weight": 1, "classifier.out_proj.bias": 2, "other": 3},
        family.classifier_renames,
    )
    assert renamed == {"pre_classifier.weight": 1, "classifier.bias": 2, "other": 3}
    assert family.head_prefixes(contract.TASK_FILL_MASK) == (
        "vocab_transform.",
        "vocab_layer_norm.",
        "vocab_projector.bias",
        "vocab_projector.weight",
    )


@pytest.mark.parametrize(
    ("model_type", "positions", "pad", "longest"),
    [
        ("bert", 512, 0, 512),
        ("roberta", 514, 1, 512),
        ("xlm-roberta", 514, 1, 512),
        ("mpnet", 514, 1, 512),
        ("roberta", 40, 3, 36),
    ],
)
def test_max_sequence_length_leaves_room_for_the_position_offset(
    model_type: str, positions: int, pad: int, longest: int
) -> None:
    config = FAMILIES[model_type].config_class.from_dict(
        {
            "model_type": model_type,
            "vocab_size": 10,
            "hidden_size": 8,
            "num_attention_heads": 2,
            "max_position_embeddings": positions,
            "pad_token_id": pad,
        }
    )
    assert config.max_sequence_length == longest
