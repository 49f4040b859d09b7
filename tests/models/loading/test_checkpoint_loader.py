"""Strict checkpoint loading: key spellings, formats, tied decoder, refusals."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from models import contract
from models.bert.bert_encoder import BertEncoder
from models.errors import CheckpointError, MissingWeightsError, ShapeMismatchError
from models.layers.masked_lm_head import MaskedLMHead
from models.loading.checkpoint_loader import CheckpointLoader, canonical_key


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("bert.embeddings.LayerNorm.gamma", "embeddings.LayerNorm.weight"),
        ("bert.encoder.layer.3.output.LayerNorm.beta", "encoder.layer.3.output.LayerNorm.bias"),
        (
            "encoder.layer.0.attention.self.query.weight",
            "encoder.layer.0.attention.self.query.weight",
        ),
        ("module.bert.pooler.dense.weight", "pooler.dense.weight"),
        ("model.embeddings.word_embeddings.weight", "embeddings.word_embeddings.weight"),
        ("cls.predictions.decoder.bias", "cls.predictions.bias"),
        ("cls.predictions.transform.LayerNorm.gamma", "cls.predictions.transform.LayerNorm.weight"),
        ("classifier.weight", "classifier.weight"),
    ],
)
def test_canonical_key(raw: str, canonical: str) -> None:
    assert canonical_key(raw) == canonical


def _load_mlm(directory: Path) -> tuple[BertEncoder, MaskedLMHead, CheckpointLoader, object]:
    loader = CheckpointLoader(directory)
    config = loader.config
    encoder = BertEncoder(**config.encoder_kwargs(use_pooler=loader.has_pooler))
    head = MaskedLMHead(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        hidden_act=config.hidden_act,
        layer_norm_epsilon=config.layer_norm_eps,
        token_embedding=encoder.word_embeddings if loader.decoder_is_tied else None,
    )
    targets = {**encoder.checkpoint_variables(), **head.checkpoint_variables()}
    report = loader.assign(targets, task=contract.TASK_FILL_MASK)
    return encoder, head, loader, report


def _mlm_logits(encoder: BertEncoder, head: MaskedLMHead) -> np.ndarray:
    ids = np.array([[101, 7592, 103, 2088, 102, 0]], dtype=np.int32)
    mask = np.array([[1, 1, 1, 1, 1, 0]], dtype=np.int32)
    out = encoder(
        {
            contract.INPUT_WORD_IDS: ids,
            contract.INPUT_MASK: mask,
            contract.INPUT_TYPE_IDS: np.zeros_like(ids),
        }
    )
    return np.asarray(head(out[contract.SEQUENCE_OUTPUT][:, :5]))


def _torch_logits(directory: Path) -> np.ndarray:
    model = transformers.AutoModelForMaskedLM.from_pretrained(str(directory)).eval()
    with torch.no_grad():
        return model(
            input_ids=torch.tensor([[101, 7592, 103, 2088, 102]]),
            attention_mask=torch.ones(1, 5, dtype=torch.long),
        ).logits.numpy()


@pytest.mark.parametrize(
    ("weights_format", "key_style"),
    [
        ("safetensors", "default"),
        ("bin", "default"),
        ("safetensors", "gamma_beta"),
        ("bin", "no_prefix"),
        ("safetensors", "gamma_beta_no_prefix"),
    ],
)
def test_masked_lm_loads_in_every_spelling(
    tiny_checkpoint: Callable[..., Path], weights_format: str, key_style: str
) -> None:
    directory = tiny_checkpoint("masked_lm", weights_format=weights_format, key_style=key_style)
    encoder, head, loader, report = _load_mlm(directory)
    assert not loader.has_pooler  # BertForMaskedLM has none
    assert loader.decoder_is_tied and report.tied_decoder
    expected = _torch_logits(tiny_checkpoint("masked_lm"))
    np.testing.assert_allclose(_mlm_logits(encoder, head), expected, atol=1e-4, rtol=0)
    if weights_format == "bin":
        # torch.save keeps the tied decoder weight and its bias alias: listed, allowed.
        assert "cls.predictions.decoder.weight" in report.unexpected_allowed


def test_default_task_follows_architectures(tiny_checkpoint: Callable[..., Path]) -> None:
    assert CheckpointLoader(tiny_checkpoint("masked_lm")).default_task() == contract.TASK_FILL_MASK
    classifier = CheckpointLoader(tiny_checkpoint("classification"))
    assert classifier.default_task() == contract.TASK_CLASSIFICATION
    assert classifier.config.id2label == ("negative", "neutral", "positive")
    assert CheckpointLoader(tiny_checkpoint("base")).default_task() == contract.TASK_EMBEDDING


def test_sentence_transformers_layout(minilm_checkpoint: Path) -> None:
    loader = CheckpointLoader(minilm_checkpoint)
    assert loader.sentence_transformers
    assert (loader.pooling_mode, loader.normalize) == ("mean", True)
    assert loader.default_max_seq_length == 256
    assert loader.default_task() == contract.TASK_EMBEDDING
    assert loader.has_pooler and loader.config.num_hidden_layers == 6


def test_missing_encoder_weight_is_refused_by_name(tiny_checkpoint: Callable[..., Path]) -> None:
    dropped = "bert.encoder.layer.1.attention.self.key.weight"
    directory = tiny_checkpoint("masked_lm", weights_format="bin", drop_keys=(dropped,))
    with pytest.raises(MissingWeightsError) as info:
        _load_mlm(directory)
    assert info.value.missing == ["encoder.layer.1.attention.self.key.weight"]
    assert "encoder.layer.1.attention.self.key.weight" in str(info.value)


def test_missing_head_weight_is_refused(tiny_checkpoint: Callable[..., Path]) -> None:
    directory = tiny_checkpoint(
        "masked_lm",
        weights_format="safetensors",
        drop_keys=("cls.predictions.bias", "cls.predictions.decoder.bias"),
    )
    with pytest.raises(MissingWeightsError, match=r"cls\.predictions\.bias"):
        _load_mlm(directory)


def test_decoder_bias_alias_is_accepted(tiny_checkpoint: Callable[..., Path]) -> None:
    # Only cls.predictions.decoder.bias remains: it is the same tensor under its other name.
    directory = tiny_checkpoint(
        "masked_lm", weights_format="bin", drop_keys=("cls.predictions.bias",)
    )
    encoder, head, _, _ = _load_mlm(directory)
    expected = _torch_logits(tiny_checkpoint("masked_lm"))
    np.testing.assert_allclose(_mlm_logits(encoder, head), expected, atol=1e-4, rtol=0)


def test_untied_decoder_is_loaded(tiny_checkpoint: Callable[..., Path], tmp_path: Path) -> None:
    import shutil

    source = tiny_checkpoint("masked_lm", weights_format="bin")
    for item in source.iterdir():
        shutil.copy(item, tmp_path / item.name)
    state = torch.load(tmp_path / "pytorch_model.bin", weights_only=True)
    state["cls.predictions.decoder.weight"] = state["cls.predictions.decoder.weight"].clone() * 2
    torch.save(state, tmp_path / "pytorch_model.bin")
    loader = CheckpointLoader(tmp_path)
    assert not loader.decoder_is_tied
    encoder, head, _, report = _load_mlm(tmp_path)
    assert not report.tied_decoder
    np.testing.assert_allclose(
        np.asarray(head.decoder_kernel), state["cls.predictions.decoder.weight"].numpy()
    )


def test_shape_mismatch_names_key_and_shapes(tiny_checkpoint: Callable[..., Path]) -> None:
    loader = CheckpointLoader(tiny_checkpoint("base"))
    kwargs = loader.config.encoder_kwargs(use_pooler=True)
    kwargs["intermediate_size"] = 40  # the checkpoint has 37
    encoder = BertEncoder(**kwargs)
    with pytest.raises(ShapeMismatchError) as info:
        loader.assign(encoder.checkpoint_variables(), task=contract.TASK_EMBEDDING)
    message = str(info.value)
    assert "encoder.layer.0.intermediate.dense.weight" in message
    assert "(37, 32)" in message and "(40, 32)" in message


def test_unknown_checkpoint_weights_are_refused(tiny_checkpoint: Callable[..., Path]) -> None:
    # A classifier head is harmless for an embedding export but must be used for classification.
    loader = CheckpointLoader(tiny_checkpoint("classification"))
    encoder = BertEncoder(**loader.config.encoder_kwargs(use_pooler=True))
    report = loader.assign(encoder.checkpoint_variables(), task=contract.TASK_EMBEDDING)
    assert {"classifier.weight", "classifier.bias"} <= set(report.unexpected_allowed)
    with pytest.raises(CheckpointError, match="would ignore: classifier.bias, classifier.weight"):
        loader.assign(encoder.checkpoint_variables(), task=contract.TASK_CLASSIFICATION)


def test_directory_without_weights_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "bert", "vocab_size": 10}')
    with pytest.raises(CheckpointError, match="no model.safetensors or pytorch_model.bin"):
        CheckpointLoader(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        CheckpointLoader(tmp_path / "nowhere")
