"""Classification and fill-mask exports of tiny random checkpoints, against PyTorch."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)
import torch
import transformers

from models import contract
from models.errors import VerificationError
from models.export.export_verification import check_output_parity, check_token_parity
from models.export.exporter import export_model
from models.export.reference import TorchReference

TEXTS = [
    "The movie was surprisingly good.",
    "Straße İstanbul ＡＢＣ café",
    "a",
    "",
    "word " * 200,
]
MASKED = [
    "The capital of France is [MASK].",
    "[MASK] and [MASK] went up the hill [MASK]",
    "no mask here",
    "Straße [MASK] ＡＢＣ café",
]


@pytest.fixture(scope="module")
def classifier_export(
    tiny_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    checkpoint = tiny_checkpoint("classification", key_style="no_prefix")
    output = tmp_path_factory.mktemp("classifier") / "tiny" / "3"
    # jit_compile: the verification then also covers the XLA-compiled encoder.
    report = export_model(checkpoint=checkpoint, output=output, jit_compile=True, progress=False)
    assert report.task == contract.TASK_CLASSIFICATION and report.verified
    assert report.labels == ("negative", "neutral", "positive")
    return checkpoint, output


@pytest.fixture(scope="module")
def fill_mask_export(
    tiny_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    checkpoint = tiny_checkpoint("masked_lm", weights_format="bin", key_style="gamma_beta")
    output = tmp_path_factory.mktemp("fill_mask") / "tiny" / "1"
    report = export_model(
        checkpoint=checkpoint, output=output, max_seq_length=64, top_k=3, progress=False
    )
    assert report.task == contract.TASK_FILL_MASK and report.verified and report.tied_decoder
    return checkpoint, output


def _reference(checkpoint: Path, model_class: type, max_length: int) -> tuple[object, object]:
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
    model = model_class.from_pretrained(str(checkpoint)).eval()
    return tokenizer, model


def test_classification_matches_pytorch(classifier_export: tuple[Path, Path]) -> None:
    checkpoint, output = classifier_export
    tokenizer, model = _reference(checkpoint, transformers.AutoModelForSequenceClassification, 128)
    loaded = tf.saved_model.load(str(output))
    ours = loaded.signatures[contract.SERVING_DEFAULT](text=tf.constant(TEXTS))
    batch = tokenizer(TEXTS, truncation=True, max_length=128, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits.numpy()
    logits = ours[contract.LOGITS].numpy()
    assert logits.shape == (len(TEXTS), 3)
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
    probabilities = ours[contract.PROBABILITIES].numpy()
    np.testing.assert_allclose(
        probabilities, torch.softmax(torch.tensor(expected), -1).numpy(), atol=1e-5
    )
    labels = [label.decode() for label in ours[contract.LABELS].numpy()]
    id2label = model.config.id2label
    assert labels == [id2label[int(i)] for i in expected.argmax(-1)]

    pair = loaded.signatures[contract.SERVING_PAIR](
        text=tf.constant(TEXTS), text_pair=tf.constant(TEXTS[::-1])
    )
    batch = tokenizer(
        TEXTS, TEXTS[::-1], truncation=True, max_length=128, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        expected_pair = model(**batch).logits.numpy()
    np.testing.assert_allclose(pair[contract.LOGITS].numpy(), expected_pair, atol=1e-4, rtol=0)


def test_classification_model_card(classifier_export: tuple[Path, Path]) -> None:
    card = json.loads((classifier_export[1] / contract.MODEL_CARD_FILE).read_text())
    assert card["task"] == contract.TASK_CLASSIFICATION
    assert card["labels"] == ["negative", "neutral", "positive"] and card["output_dim"] == 3
    assert card["max_seq_length"] == 128  # max_position_embeddings of the tiny config
    assert card["source"]["pooler_in_checkpoint"] is True
    assert card["jit_compile_encoder"] is True
    assert card["skips_padding"] is False  # XLA: static bucket shapes, padding computed
    # XLA compiles once per shape, so a jit_compile export keeps the default length buckets.
    assert card["length_buckets"] == [16, 24, 32, 48, 64, 96, 128]
    assert card["padding"] == "bucket"
    assert card["verification"]["max_abs_diff"] <= 1e-4


def test_fill_mask_matches_pytorch(fill_mask_export: tuple[Path, Path]) -> None:
    checkpoint, output = fill_mask_export
    tokenizer, model = _reference(checkpoint, transformers.AutoModelForMaskedLM, 64)
    loaded = tf.saved_model.load(str(output))
    assert contract.MLM in loaded.signatures
    ours = loaded.signatures[contract.SERVING_DEFAULT](text=tf.constant(MASKED))
    batch = tokenizer(MASKED, truncation=True, max_length=64, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    ids = batch["input_ids"].numpy()
    positions = ours[contract.MASK_POSITIONS].numpy()
    assert positions.shape == (4, 3)  # the most [MASK]s in one text
    top_ids = ours[contract.TOP_K_IDS].numpy()
    top_tokens = ours[contract.TOP_K_TOKENS].numpy()
    top_scores = ours[contract.TOP_K_SCORES].numpy()
    assert top_ids.shape == top_tokens.shape == top_scores.shape == (4, 3, 3)
    for row in range(len(MASKED)):
        expected_positions = np.flatnonzero(ids[row] == tokenizer.mask_token_id).tolist()
        padded = expected_positions + [-1] * (3 - len(expected_positions))
        assert positions[row].tolist() == padded
        for slot, position in enumerate(expected_positions):
            probs = torch.softmax(logits[row, position], -1)
            scores, best = torch.topk(probs, 3)
            assert top_ids[row, slot].tolist() == best.tolist()
            assert [t.decode() for t in top_tokens[row, slot]] == (
                tokenizer.convert_ids_to_tokens(best.tolist())
            )
            np.testing.assert_allclose(top_scores[row, slot], scores.numpy(), atol=1e-5)
        for slot in range(len(expected_positions), 3):
            assert top_ids[row, slot].tolist() == [-1, -1, -1]
            assert top_tokens[row, slot].tolist() == [b"", b"", b""]
            assert top_scores[row, slot].tolist() == [0.0, 0.0, 0.0]

    mlm = loaded.signatures[contract.MLM](
        input_word_ids=tf.constant(ids, tf.int32),
        input_mask=tf.constant(batch["attention_mask"].numpy(), tf.int32),
        input_type_ids=tf.constant(batch["token_type_ids"].numpy(), tf.int32),
        masked_lm_positions=tf.constant([[1, 2, 3]] * len(MASKED), tf.int32),
    )[contract.MLM_LOGITS].numpy()
    np.testing.assert_allclose(mlm, logits.numpy()[:, 1:4], atol=1e-4, rtol=0)


def test_fill_mask_batch_without_masks(fill_mask_export: tuple[Path, Path]) -> None:
    loaded = tf.saved_model.load(str(fill_mask_export[1]))
    ours = loaded.signatures[contract.SERVING_DEFAULT](text=tf.constant(["no", "masks"]))
    assert ours[contract.MASK_POSITIONS].shape == (2, 0)
    assert ours[contract.TOP_K_TOKENS].shape == (2, 0, 3)


def test_output_parity_failure_names_worst_text_and_diff(
    classifier_export: tuple[Path, Path], tiny_checkpoint: Callable[..., Path]
) -> None:
    # The export checked against a reference with other weights: must fail, loudly.
    other = tiny_checkpoint("classification", seed=1)
    reference = TorchReference(other, task=contract.TASK_CLASSIFICATION, max_seq_length=128)
    loaded = tf.saved_model.load(str(classifier_export[1]))
    with pytest.raises(VerificationError, match=r"max abs diff \S+ > tolerance 0.0001 on '"):
        check_output_parity(
            loaded,
            reference,
            task=contract.TASK_CLASSIFICATION,
            mask_id=103,
            id2label=("negative", "neutral", "positive"),
            texts=TEXTS,
        )


def test_token_parity_failure_names_the_text(
    classifier_export: tuple[Path, Path], tmp_path: Path
) -> None:
    # A reference that keeps case disagrees with the exported (lowercasing) tokenizer.
    checkpoint = classifier_export[0]
    for item in checkpoint.iterdir():
        shutil.copy(item, tmp_path / item.name)
    transformers.BertTokenizer.from_pretrained(str(tmp_path), do_lower_case=False).save_pretrained(
        tmp_path
    )
    reference = TorchReference(tmp_path, task=contract.TASK_CLASSIFICATION, max_seq_length=128)
    loaded = tf.saved_model.load(str(classifier_export[1]))
    with pytest.raises(VerificationError, match="token parity failed on 'The movie"):
        check_token_parity(loaded, reference, ["the movie", "The movie was surprisingly good."])
    assert check_token_parity(loaded, reference, ["the movie", "a b c"]) == 2
