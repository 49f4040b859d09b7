"""Token classification as a task: per-token logits vs PyTorch, entities vs transformers'
pipeline, the guard that keeps a fine-tuned head from being exported as another task, and
serving over REST."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)
import torch
import transformers

from models import contract
from models.errors import (
    CheckpointError,
    ExportConfigError,
    MissingWeightsError,
    VerificationError,
)
from models.export.entity_grouper import EntityGrouper
from models.export.export_verification import check_entity_parity
from models.export.exporter import export_model
from models.export.reference import TorchReference
from tests.conftest import TINY_TOKEN_ID2LABEL
from tests.support.entity_inputs import reference_grouper_inputs
from tests.support.server_process import ServerProcess

# PROBE_TEXTS-like: names, places, punctuation, accents, CJK, an unknown character, a literal
# special token, empty and whitespace-only texts.
SENTENCES = [
    "My name is Wolfgang and I live in Berlin.",
    "Angela Merkel visited Paris, France, on Tuesday!",
    "Straße İstanbul café naïve Zürich",
    "Hello, world. Isn't it nice? You're 're 've n't 's",
    "東京 and 北京 are cities; ＡＢＣ corp. ☃ (unknown here)",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "The capital of France is [MASK].",
    "",
    "   ",
]


@pytest.fixture(scope="module")
def token_checkpoint(tiny_checkpoint: Callable[..., Path]) -> Path:
    return tiny_checkpoint("token_classification")


@pytest.fixture(scope="module")
def token_export(token_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("token") / "ner" / "1"
    # Verified by the exporter too: token parity and per-token logits vs PyTorch.
    report = export_model(checkpoint=token_checkpoint, output=output, progress=False)
    assert report.task == contract.TASK_TOKEN_CLASSIFICATION and report.verified
    assert report.labels == tuple(TINY_TOKEN_ID2LABEL.values())
    return output


def test_token_logits_and_labels_match_pytorch(token_export: Path, token_checkpoint: Path) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(token_checkpoint))
    model = transformers.AutoModelForTokenClassification.from_pretrained(str(token_checkpoint))
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model.eval()(**batch).logits.numpy()
    loaded = tf.saved_model.load(str(token_export))
    ours = loaded.signatures[contract.SERVING_DEFAULT](text=tf.constant(SENTENCES))
    logits = ours[contract.TOKEN_LOGITS].numpy()
    assert logits.shape == expected.shape  # padded to the longest text, like the reference
    real = batch["attention_mask"].numpy().astype(bool)
    np.testing.assert_allclose(logits[real], expected[real], atol=1e-4, rtol=0)
    probabilities = ours[contract.TOKEN_PROBABILITIES].numpy()
    np.testing.assert_allclose(
        probabilities[real], torch.softmax(torch.tensor(expected), -1).numpy()[real], atol=1e-5
    )
    labels = ours[contract.TOKEN_LABELS].numpy()[real].astype(str)
    assert labels.tolist() == [TINY_TOKEN_ID2LABEL[i] for i in expected.argmax(-1)[real]]
    card = json.loads((token_export / contract.MODEL_CARD_FILE).read_text())
    assert card["task"] == contract.TASK_TOKEN_CLASSIFICATION
    assert card["labels"] == list(TINY_TOKEN_ID2LABEL.values()) and card["output_dim"] == 6
    # The export's own verification compared the entities with the pipeline on the probe texts.
    assert card["verification"]["entity_texts"] >= 200


def test_entity_parity_failure_names_the_text(
    token_export: Path, tiny_checkpoint: Callable[..., Path]
) -> None:
    # A reference with other weights predicts other entities: verification must see it.
    other = TorchReference(
        tiny_checkpoint("token_classification", seed=1),
        task=contract.TASK_TOKEN_CLASSIFICATION,
        max_seq_length=128,
    )
    loaded = tf.saved_model.load(str(token_export))
    with pytest.raises(VerificationError, match="entity parity failed on 'My name is Wolfgang"):
        check_entity_parity(loaded, other, texts=SENTENCES[:1])


def _pipeline_entities(checkpoint: Path) -> list[list[dict[str, Any]]]:
    ner = transformers.pipeline(
        "token-classification", model=str(checkpoint), aggregation_strategy="simple"
    )
    return [ner(text) if text.strip() else [] for text in SENTENCES]


def test_entity_grouper_matches_the_pipeline(token_checkpoint: Path) -> None:
    """The grouper, fed the reference tokenizer's offsets, answers what the pipeline does."""
    expected = _pipeline_entities(token_checkpoint)
    groups = [e for row in expected for e in row]
    # Non-trivial spans: several entities, multi-token ones, several entity kinds.
    assert len(groups) >= 8 and len({e["entity_group"] for e in groups}) >= 3
    assert any(" " in e["word"] or e["end"] - e["start"] > 4 for e in groups)

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(token_checkpoint))
    model = transformers.AutoModelForTokenClassification.from_pretrained(str(token_checkpoint))
    grouper = EntityGrouper(
        id2label=list(TINY_TOKEN_ID2LABEL.values()),
        vocab_file=str(token_checkpoint / "vocab.txt"),
        unk_id=tokenizer.unk_token_id,
    )
    run = tf.function(grouper, autograph=False)  # as in the served graph
    ours = run(*reference_grouper_inputs(tokenizer, model, SENTENCES))
    _assert_same_entities(ours, expected)


def _assert_same_entities(ours: dict[str, tf.Tensor], expected: list[list[dict[str, Any]]]) -> None:
    names = ours[contract.ENTITY_GROUPS].numpy()
    assert names.shape[1] == max(len(row) for row in expected)
    for row, entities in enumerate(expected):
        got = [
            {
                "entity_group": names[row, i].decode(),
                "word": ours[contract.ENTITY_WORDS].numpy()[row, i].decode(),
                "start": int(ours[contract.ENTITY_STARTS].numpy()[row, i]),
                "end": int(ours[contract.ENTITY_ENDS].numpy()[row, i]),
            }
            for i in range(len(entities))
        ]
        want = [{k: e[k] for k in ("entity_group", "word", "start", "end")} for e in entities]
        assert got == want, SENTENCES[row]
        np.testing.assert_allclose(
            ours[contract.ENTITY_SCORES].numpy()[row, : len(entities)],
            [e["score"] for e in entities],
            atol=1e-5,
        )
        padding = slice(len(entities), None)
        assert set(names[row, padding].tolist()) <= {b""}
        assert set(ours[contract.ENTITY_STARTS].numpy()[row, padding].tolist()) <= {-1}


def test_served_entities_match_the_pipeline(token_export: Path, token_checkpoint: Path) -> None:
    """serving_default computes the entities in the graph, from its own tokenizer's offsets."""
    loaded = tf.saved_model.load(str(token_export))
    ours = loaded.signatures[contract.SERVING_DEFAULT](text=tf.constant(SENTENCES))
    _assert_same_entities(ours, _pipeline_entities(token_checkpoint))


@pytest.mark.parametrize(
    ("kind", "task", "message"),
    [
        ("token_classification", "classification", "would drop its head (classifier.bias"),
        ("token_classification", "embedding", "would drop its head (classifier.bias"),
        ("token_classification", "fill-mask", "would drop its head (classifier.bias"),
        ("classification", "token-classification", "would drop its head (classifier.bias"),
        ("classification", "embedding", "would drop its head (classifier.bias"),
        ("question_answering", None, "BertForQuestionAnswering checkpoints are not supported"),
        ("question_answering", "embedding", "BertForQuestionAnswering checkpoints are not"),
    ],
)
def test_a_fine_tuned_head_is_never_exported_as_another_task(
    kind: str,
    task: str | None,
    message: str,
    tiny_checkpoint: Callable[..., Path],
    tmp_path: Path,
) -> None:
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(")) as info:
        export_model(
            checkpoint=tiny_checkpoint(kind), output=tmp_path / "1", task=task, progress=False
        )
    assert "\n" not in str(info.value)


def test_pretraining_heads_give_no_token_classifier(
    tiny_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    checkpoint = tiny_checkpoint("masked_lm")
    with pytest.raises(ExportConfigError, match="token-classification export needs .*id2label"):
        export_model(
            checkpoint=checkpoint,
            output=tmp_path / "1",
            task=contract.TASK_TOKEN_CLASSIFICATION,
            progress=False,
        )
    # Even with labels in its config, the classifier it lacks is named.
    labelled = tmp_path / "labelled"
    shutil.copytree(checkpoint, labelled)
    config = json.loads((labelled / "config.json").read_text())
    config["id2label"] = {"0": "O", "1": "B-PER"}
    (labelled / "config.json").write_text(json.dumps(config))
    with pytest.raises(MissingWeightsError) as info:
        export_model(
            checkpoint=labelled,
            output=tmp_path / "2",
            task=contract.TASK_TOKEN_CLASSIFICATION,
            progress=False,
        )
    assert info.value.missing == ["classifier.bias", "classifier.weight"]


def test_classifier_without_architectures_is_refused(
    tiny_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    checkpoint = tmp_path / "anonymous"
    shutil.copytree(tiny_checkpoint("token_classification"), checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    del config["architectures"]
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="names no .*ForTokenClassification"):
        export_model(checkpoint=checkpoint, output=tmp_path / "out" / "1", progress=False)


def test_token_classification_serves_over_rest(token_export: Path, token_checkpoint: Path) -> None:
    loaded = tf.saved_model.load(str(token_export))
    expected = loaded.signatures[contract.SERVING_DEFAULT](text=tf.constant(SENTENCES[:2]))
    with ServerProcess(model_name="ner", model_base_path=token_export.parent) as server:
        answer = httpx.post(
            f"{server.rest_url}/v1/models/ner:predict",
            json={"instances": SENTENCES[:2]},
            timeout=60,
        )
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    for row, prediction in enumerate(predictions):
        assert prediction[contract.TOKEN_LABELS] == [
            label.decode() for label in expected[contract.TOKEN_LABELS].numpy()[row]
        ]
        np.testing.assert_allclose(
            prediction[contract.TOKEN_LOGITS],
            expected[contract.TOKEN_LOGITS].numpy()[row],
            atol=1e-5,
        )
