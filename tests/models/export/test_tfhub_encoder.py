"""TF Hub encoder exports (``--export-type encoder|encoder-with-mlm``) of tiny random BERTs,
every documented call run on the saved directory and compared with PyTorch."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)
import torch
import transformers

from models import contract
from models.errors import ExportConfigError
from models.export.export_cli import main as export_main
from models.export.exporter import export_model
from tests.support.tfhub_exports import tfhub_export

TEXTS = ["The movie was surprisingly good.", "Straße İstanbul ＡＢＣ café", "a", "word " * 60]
PAIRS = ["Is it?", "", "b c d", "short"]
INPUT_NAMES = (contract.INPUT_WORD_IDS, contract.INPUT_MASK, contract.INPUT_TYPE_IDS)


@pytest.fixture(scope="module")
def base_encoder(
    tiny_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A BertModel checkpoint (with pooler) exported as ``encoder`` (shared, verified)."""
    checkpoint = tiny_checkpoint("base")
    root = tmp_path_factory.getbasetemp()
    return checkpoint, tfhub_export(
        checkpoint=checkpoint, export_type=contract.EXPORT_ENCODER, root=root
    )


@pytest.fixture(scope="module")
def mlm_encoder(
    tiny_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """A BertForMaskedLM checkpoint (no pooler, tied decoder) exported as encoder-with-mlm."""
    checkpoint = tiny_checkpoint("masked_lm", seed=3)
    root = tmp_path_factory.getbasetemp()
    output = tfhub_export(
        checkpoint=checkpoint, export_type=contract.EXPORT_ENCODER_WITH_MLM, root=root
    )
    card = json.loads((output / contract.MODEL_CARD_FILE).read_text(encoding="utf-8"))
    assert card["export_type"] == contract.EXPORT_ENCODER_WITH_MLM
    assert card["verification"]["max_abs_diff"] <= 1e-4
    return checkpoint, output


def _inputs(checkpoint: Path, texts: list[str], pairs: list[str] | None = None) -> dict:
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    return dict(tokenizer(texts, pairs, padding=True, return_tensors="pt"))


def _as_tfhub(batch: dict) -> dict[str, np.ndarray]:
    names = ("input_ids", "attention_mask", "token_type_ids")
    return {
        ours: batch[theirs].numpy().astype(np.int32)
        for ours, theirs in zip(INPUT_NAMES, names, strict=True)
    }


@pytest.mark.parametrize("pairs", [None, PAIRS], ids=["texts", "pairs"])
def test_encoder_call_matches_pytorch(base_encoder: tuple[Path, Path], pairs: list | None) -> None:
    checkpoint, output = base_encoder
    batch = _inputs(checkpoint, TEXTS, pairs)
    with torch.no_grad():
        expected = transformers.BertModel.from_pretrained(str(checkpoint)).eval()(
            **batch, output_hidden_states=True
        )
    encoder = tf.saved_model.load(str(output))
    outputs = encoder(_as_tfhub(batch))
    assert sorted(outputs) == sorted(
        [
            contract.POOLED_OUTPUT,
            contract.SEQUENCE_OUTPUT,
            contract.DEFAULT_OUTPUT,
            contract.ENCODER_OUTPUTS,
        ]
    )
    np.testing.assert_allclose(
        outputs[contract.SEQUENCE_OUTPUT].numpy(), expected.last_hidden_state.numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        outputs[contract.POOLED_OUTPUT].numpy(), expected.pooler_output.numpy(), atol=1e-5
    )
    np.testing.assert_array_equal(
        outputs[contract.DEFAULT_OUTPUT].numpy(), outputs[contract.POOLED_OUTPUT].numpy()
    )
    layers = outputs[contract.ENCODER_OUTPUTS]
    assert isinstance(layers, list) and len(layers) == 2
    for ours, theirs in zip(layers, expected.hidden_states[1:], strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)
    # training=True is accepted; there is no dropout, so it computes the same function.
    trained = encoder(_as_tfhub(batch), training=True)
    np.testing.assert_array_equal(
        trained[contract.POOLED_OUTPUT].numpy(), outputs[contract.POOLED_OUTPUT].numpy()
    )


def test_encoder_reusable_attributes(base_encoder: tuple[Path, Path]) -> None:
    checkpoint, output = base_encoder
    encoder = tf.saved_model.load(str(output))
    model = transformers.BertModel.from_pretrained(str(checkpoint))
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    variables = encoder.variables
    # Every BertModel weight (2 layers + embeddings + pooler) is one variable, all trainable.
    assert len(variables) == len(state)
    assert [id(v) for v in encoder.trainable_variables] == [id(v) for v in variables]
    assert all(isinstance(v, tf.Variable) for v in variables)
    assert list(encoder.regularization_losses) == []
    # checkpoint_keys() maps each variable back onto its Hugging Face tensor.
    keys = encoder.checkpoint_keys()
    for key, transposed, variable in zip(
        keys["keys"].numpy(), keys["transposed"].numpy(), variables, strict=True
    ):
        value = variable.numpy().T if transposed else variable.numpy()
        np.testing.assert_array_equal(value, state[key.decode()])
    vocab = Path(encoder.vocab_file.asset_path.numpy().decode()).read_text(encoding="utf-8")
    assert vocab == (checkpoint / "vocab.txt").read_text(encoding="utf-8")
    assert bool(encoder.do_lower_case.numpy()) is True
    assert not hasattr(encoder, contract.MLM)  # a plain encoder export has no MLM head


def test_mlm_returns_four_outputs_matching_pytorch(mlm_encoder: tuple[Path, Path]) -> None:
    checkpoint, output = mlm_encoder
    masked = ["The capital of France is [MASK].", "[MASK] and [MASK] went up", "no mask"]
    batch = _inputs(checkpoint, masked)
    model = transformers.BertForMaskedLM.from_pretrained(str(checkpoint)).eval()
    with torch.no_grad():
        expected = model(**batch, output_hidden_states=True)
    positions = np.array([[6, 1, 0], [1, 3, 5], [2, 0, 1]], np.int32)
    encoder = tf.saved_model.load(str(output))
    mlm = encoder.mlm({**_as_tfhub(batch), contract.MASKED_LM_POSITIONS: positions})
    assert sorted(mlm) == sorted(
        [
            contract.POOLED_OUTPUT,
            contract.SEQUENCE_OUTPUT,
            contract.ENCODER_OUTPUTS,
            contract.MLM_LOGITS,
        ]
    )
    logits = mlm[contract.MLM_LOGITS].numpy()
    assert logits.shape == (3, 3, model.config.vocab_size)
    gathered = np.take_along_axis(expected.logits.numpy(), positions[:, :, None], axis=1)
    np.testing.assert_allclose(logits, gathered, atol=1e-4, rtol=0)
    hidden = expected.hidden_states[-1].numpy()
    np.testing.assert_allclose(mlm[contract.SEQUENCE_OUTPUT].numpy(), hidden, atol=1e-5)
    # A BertForMaskedLM checkpoint has no pooler: pooled_output is the [CLS] state.
    np.testing.assert_allclose(mlm[contract.POOLED_OUTPUT].numpy(), hidden[:, 0], atol=1e-5)
    assert len(mlm[contract.ENCODER_OUTPUTS]) == 2
    # The MLM head's weights are part of the REUSABLE lists (tied ones once, as in torch).
    assert len(encoder.variables) == len(list(model.parameters()))
    trained = encoder.mlm(
        {**_as_tfhub(batch), contract.MASKED_LM_POSITIONS: positions}, training=True
    )
    np.testing.assert_array_equal(trained[contract.MLM_LOGITS].numpy(), logits)


def test_encoder_with_mlm_needs_an_mlm_head(
    tiny_checkpoint: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "m" / "1"
    argv = ["--checkpoint", str(tiny_checkpoint("base")), "--output", str(output)]
    assert export_main([*argv, "--export-type", contract.EXPORT_ENCODER_WITH_MLM, "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "needs a checkpoint with a masked-LM head" in error
    assert not output.exists()


def test_end_to_end_options_are_refused_for_tfhub_exports(tmp_path: Path) -> None:
    with pytest.raises(ExportConfigError, match=r"apply to end-to-end exports only"):
        export_model(
            checkpoint=None,
            output=tmp_path / "m" / "1",
            export_type=contract.EXPORT_ENCODER,
            task=contract.TASK_CLASSIFICATION,
        )


@pytest.mark.slow
def test_bundled_minilm_encoder_matches_sentence_transformers(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The bundled all-MiniLM-L6-v2 as a TF Hub encoder: mean-pooling its ``sequence_output``
    gives sentence-transformers' embeddings (the export itself verified every layer)."""
    from sentence_transformers import SentenceTransformer

    from models.bundled import bundled_checkpoint

    output = tmp_path_factory.mktemp("minilm_hub") / "encoder" / "1"
    report = export_model(
        checkpoint=None, output=output, export_type=contract.EXPORT_ENCODER, progress=False
    )
    assert report.verified and report.max_abs_diff is not None and report.max_abs_diff <= 1e-5
    texts = ["A man is playing a guitar.", "Straße İstanbul café", "a"]
    batch = _inputs(bundled_checkpoint(), texts)
    outputs = tf.saved_model.load(str(output))(_as_tfhub(batch))
    mask = batch["attention_mask"].numpy()[:, :, None]
    sequence = outputs[contract.SEQUENCE_OUTPUT].numpy()
    pooled = (sequence * mask).sum(1) / mask.sum(1)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    expected = SentenceTransformer(str(bundled_checkpoint()), device="cpu").encode(texts)
    np.testing.assert_allclose(pooled, expected, atol=1e-5, rtol=0)
    assert len(outputs[contract.ENCODER_OUTPUTS]) == 6


def test_roberta_encoder_with_mlm_matches_pytorch(tmp_path: Path) -> None:
    """Every family exports through the same code: a tiny RobertaForMaskedLM (byte-level BPE,
    no pooler, no token types, lm_head.* keys) as encoder-with-mlm."""
    from tests.support.families import bpe_tokenizer

    checkpoint = tmp_path / "roberta"
    tokenizer = bpe_tokenizer(checkpoint)
    config = transformers.RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=514,  # RoBERTa's: 512 tokens after its 2-position offset
        type_vocab_size=1,
        layer_norm_eps=1e-5,
    )
    torch.manual_seed(0)
    model = transformers.RobertaForMaskedLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                param.add_(torch.randn_like(param) * 0.1)
    model.save_pretrained(checkpoint)
    output = tmp_path / "hub" / "1"
    report = export_model(
        checkpoint=checkpoint,
        output=output,
        export_type=contract.EXPORT_ENCODER_WITH_MLM,
        progress=False,
    )
    assert report.verified and report.max_abs_diff is not None and report.max_abs_diff <= 1e-4
    batch = dict(tokenizer(TEXTS[:3], padding=True, return_tensors="pt"))
    inputs = {
        contract.INPUT_WORD_IDS: batch["input_ids"].numpy().astype(np.int32),
        contract.INPUT_MASK: batch["attention_mask"].numpy().astype(np.int32),
        contract.INPUT_TYPE_IDS: np.zeros_like(batch["input_ids"].numpy(), np.int32),
    }
    positions = np.array([[1, 2], [0, 3], [1, 1]], np.int32)
    mlm = tf.saved_model.load(str(output)).mlm({**inputs, contract.MASKED_LM_POSITIONS: positions})
    with torch.no_grad():
        expected = model(**batch).logits.numpy()
    gathered = np.take_along_axis(expected, positions[:, :, None], axis=1)
    np.testing.assert_allclose(mlm[contract.MLM_LOGITS].numpy(), gathered, atol=1e-4, rtol=0)
