"""Fine-tune-export-serve: docs/examples/finetune_keras.py fine-tunes our TF Hub encoder export
of a tiny random BERT in Keras 3 on binarised STS-B pairs; the written checkpoint is exported
end-to-end with ``textserve-export`` and served by ``textserve-server``, which must answer
with the fine-tuned Keras model's logits."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)

from models import contract
from models.export.export_cli import main as export_main
from models.export.exporter import export_model
from tests.support.data import REPO_ROOT, STSB_EN
from tests.support.server_process import ServerProcess

SEQ_LENGTH = 64
PAIRS = [
    ("A man is playing a guitar.", "A man plays the guitar."),
    ("A woman is slicing an onion.", "Two dogs run on the beach."),
    ("Straße İstanbul café", ""),
]


def _example() -> ModuleType:
    path = REPO_ROOT / "docs" / "examples" / "finetune_keras.py"
    spec = importlib.util.spec_from_file_location("finetune_keras", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def finetuned(
    tiny_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    checkpoint = tiny_checkpoint("base", seed=7)
    base = tmp_path_factory.mktemp("finetune")
    preprocessor = base / "hub" / "preprocessing" / "1"
    encoder = base / "hub" / "encoder" / "1"
    for export_type, output in (
        (contract.EXPORT_PREPROCESSING, preprocessor),
        (contract.EXPORT_ENCODER, encoder),
    ):
        export_model(checkpoint=checkpoint, output=output, export_type=export_type, progress=False)
    result = _example().finetune(
        checkpoint=checkpoint,
        preprocessor_dir=preprocessor,
        encoder_dir=encoder,
        train=STSB_EN,
        output=base / "finetuned",
        examples=256,
        epochs=8,
        seq_length=SEQ_LENGTH,
    )
    served = base / "exported" / "paraphrase"
    # The CLI, verification on: the exported model must equal PyTorch on the written checkpoint.
    argv = ["--checkpoint", str(base / "finetuned"), "--output", str(served / "1")]
    assert export_main([*argv, "--max-seq-length", str(SEQ_LENGTH), "--quiet"]) == 0
    return {**result, "encoder": encoder, "served": served, "checkpoint": checkpoint}


def test_finetuning_reduces_the_loss_and_changes_the_encoder(finetuned: dict[str, Any]) -> None:
    # Loss on the whole training set, evaluated before and after fit().
    assert finetuned["loss_after"] < 0.5 * finetuned["loss_before"]
    # fit() updated the encoder's weights: all of them but, at most, attention key biases,
    # whose gradient is zero in exact arithmetic (softmax ignores a per-query constant).
    assert finetuned["encoder_weights"] == 39
    unchanged = finetuned["encoder_weights_unchanged"]
    assert all("key_bias" in name for name in unchanged) and len(unchanged) <= 2, unchanged


def test_written_checkpoint_loads_in_transformers(finetuned: dict[str, Any]) -> None:
    import transformers

    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(finetuned["served"].parent.parent / "finetuned")
    )
    assert model.config.id2label == {0: "dissimilar", 1: "similar"}


def test_served_model_gives_the_finetuned_logits(finetuned: dict[str, Any]) -> None:
    preprocessor = finetuned["preprocessor"]
    firsts = tf.constant([a for a, _ in PAIRS])
    seconds = tf.constant([b for _, b in PAIRS])
    inputs = preprocessor.bert_pack_inputs(
        [preprocessor.tokenize(firsts), preprocessor.tokenize(seconds)], seq_length=SEQ_LENGTH
    )
    expected = finetuned["model"].predict(inputs, verbose=0)
    with ServerProcess(model_name="paraphrase", model_base_path=finetuned["served"]) as server:
        response = httpx.post(
            f"{server.rest_url}/v1/models/paraphrase:predict",
            json={
                "signature_name": contract.SERVING_PAIR,
                "instances": [{contract.TEXT: a, contract.TEXT_PAIR: b} for a, b in PAIRS],
            },
            timeout=60,
        )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    logits = np.array([p[contract.LOGITS] for p in predictions])
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)
    assert [p[contract.LABELS] for p in predictions] == [
        ("dissimilar", "similar")[i] for i in expected.argmax(-1)
    ]
