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
from tests.support.data import REPO_ROOT, STSB_EN
from tests.support.server_process import ServerProcess
from tests.support.tfhub import import_tensorflow_hub
from tests.support.tfhub_exports import tfhub_export

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
    checkpoint = tiny_checkpoint("base")
    base = tmp_path_factory.mktemp("finetune")
    root = tmp_path_factory.getbasetemp()
    preprocessor, encoder = (
        tfhub_export(checkpoint=checkpoint, export_type=export_type, root=root)
        for export_type in (contract.EXPORT_PREPROCESSING, contract.EXPORT_ENCODER)
    )
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


def test_end_to_end_export_is_callable_and_reusable(finetuned: dict[str, Any]) -> None:
    import tf_keras

    hub = import_tensorflow_hub()
    path = str(finetuned["served"] / "1")
    loaded = hub.load(path)
    texts = tf.constant([a for a, _ in PAIRS])
    by_signature = loaded.signatures[contract.SERVING_DEFAULT](text=texts)
    by_call = loaded(texts)
    np.testing.assert_array_equal(
        by_call[contract.LOGITS].numpy(), by_signature[contract.LOGITS].numpy()
    )
    # The encoder's 39 weights and the classifier's 2, all trainable; no regularizers.
    assert len(loaded.variables) == len(loaded.trainable_variables) == 41
    assert list(loaded.regularization_losses) == []
    layer = hub.KerasLayer(path, output_key=contract.LOGITS)
    text = tf_keras.Input([], dtype=tf.string)
    model = tf_keras.Model(text, layer(text))
    np.testing.assert_allclose(
        model.predict(texts, verbose=0), by_signature[contract.LOGITS].numpy(), atol=1e-6
    )
